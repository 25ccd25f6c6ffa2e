#!/usr/bin/env bash
# Builds the agent's native helpers next to the compiled agent (dist/node-agent/), where it looks for them:
#   vipwarden-dataplane  node-agent/native/dataplane.c: the data path (addresses over rtnetlink, gratuitous ARP,
#                        unsolicited NA), one long-running process per agent, each request checked against its
#                        monotonic deadline (node-agent/dataplane.ts)
#   vw-before            node-agent/native/before.c: runs a command only before a monotonic deadline (the command
#                        path, kept for agents without the data-path helper)
#   vipwarden-ndsend     node-agent/ndsend.c: unsolicited IPv6 neighbour advertisements (the command path)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist/node-agent
build() { # OUT SRC
  if [ ! -x "$1" ] || [ "$2" -nt "$1" ] || [ "$0" -nt "$1" ]; then
    cc -O2 -Wall -Wextra -Werror -o "$1.tmp" "$2"
    mv -f "$1.tmp" "$1"
  fi
}
build dist/node-agent/vipwarden-dataplane node-agent/native/dataplane.c
build dist/node-agent/vw-before node-agent/native/before.c
build dist/node-agent/vipwarden-ndsend node-agent/ndsend.c
