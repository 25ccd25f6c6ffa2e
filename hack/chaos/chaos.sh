#!/usr/bin/env bash
# npm run chaos [-- --iterations N --seed S --profile default|fast|both --max-minutes M --kinds ... --out DIR]
# Builds vipwarden, then runs the chaos run (hack/chaos/main.ts) on the netns testbed. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "chaos: needs root (it creates network namespaces); run: sudo npm run chaos" >&2
  exit 1
fi
for c in nginx iptables ip setpriv gcc; do
  command -v "$c" >/dev/null 2>&1 || { echo "chaos: missing command: $c" >&2; exit 1; }
done
npm run --silent build
exec node dist/hack/chaos/main.js "$@"
