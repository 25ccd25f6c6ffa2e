#!/usr/bin/env bash
# npm run bench [-- --quick | --iterations N | --modes ... | --profiles ... | --out DIR | --no-scale ...]
# Builds vipwarden, then runs the failover benchmark (vipwarden and keepalived on the netns testbed) and the
# scale benchmark. Needs root (network namespaces), Go (to build etcd once), keepalived, nginx, arping, curl, gcc.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "bench: needs root (it creates network namespaces); run: sudo npm run bench" >&2
  exit 1
fi
missing=()
for c in keepalived nginx arping curl gcc setsid setpriv ip; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench: missing commands: ${missing[*]}" >&2
  exit 1
fi

npm run --silent build
# The pinned etcd (hack/etcd/build.sh): built once into the shared cache, a no-op afterwards.
bash hack/etcd/build.sh >/dev/null
exec node dist/hack/bench/main.js "$@"
