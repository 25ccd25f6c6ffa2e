#!/usr/bin/env bash
# Builds the agent's native helpers next to the compiled agent (dist/node-agent/), where it looks for them:
#   vipwarden-dataplane  node-agent/native/dataplane.c and the parts listed in dataplane.h: the data path (addresses
#                        over rtnetlink, gratuitous ARP, unsolicited NA), one long-running process per agent, each
#                        request checked against its monotonic deadline (node-agent/dataplane.ts); fence.c: the
#                        fast fence's nf_tables set elements (node-agent/fence/)
#   vw-before            node-agent/native/before.c: runs a command only before a monotonic deadline (the command
#                        path, kept for agents without the data-path helper)
#   vipwarden-ndsend     node-agent/ndsend.c (with node-agent/native/nd.h): unsolicited IPv6 neighbour
#                        advertisements (the command path)
# A helper is rebuilt when one of its sources, any header in node-agent/native/, or this script is newer than it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist/node-agent
headers=(node-agent/native/*.h)
build() { # OUT SRC.c...
  local out=$1 f stale=0
  shift
  [ -x "$out" ] || stale=1
  for f in "$0" "${headers[@]}" "$@"; do
    [ "$f" -nt "$out" ] && stale=1
  done
  if [ "$stale" = 1 ]; then
    cc -O2 -Wall -Wextra -Werror -o "$out.tmp" "$@"
    mv -f "$out.tmp" "$out"
  fi
}
build dist/node-agent/vipwarden-dataplane node-agent/native/{dataplane,answer,parse,ops,netlink,announce,fence,fencewatch,sweep}.c
build dist/node-agent/vw-before node-agent/native/before.c
build dist/node-agent/vipwarden-ndsend node-agent/ndsend.c
