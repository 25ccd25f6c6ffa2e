#!/usr/bin/env bash
# Builds the agent's native helpers next to the compiled agent (dist/node-agent/), where it looks for them:
#   vw-before         node-agent/native/before.c: runs a command only before a monotonic deadline
#   vipwarden-ndsend  node-agent/ndsend.c: unsolicited IPv6 neighbour advertisements
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist/node-agent
out=dist/node-agent/vw-before
if [ ! -x "$out" ] || [ node-agent/native/before.c -nt "$out" ]; then
  cc -O2 -Wall -Wextra -Werror -o "$out" node-agent/native/before.c
fi
nd=dist/node-agent/vipwarden-ndsend
if [ ! -x "$nd" ] || [ node-agent/ndsend.c -nt "$nd" ]; then
  cc -O2 -Wall -Wextra -o "$nd" node-agent/ndsend.c
fi
