#!/usr/bin/env bash
# The demo (README, npm run demo): installs what it needs, builds, runs hack/demo.ts. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "demo: needs root (network namespaces)" >&2; exit 1; fi
bash hack/install-deps.sh
npm run --silent build
# The pinned etcd (hack/etcd/build.sh): built once into the shared cache, a no-op afterwards.
bash hack/etcd/build.sh >/dev/null
exec node dist/hack/demo.js "$@"
