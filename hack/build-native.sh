#!/usr/bin/env bash
# Builds the agent's one native helper (node-agent/native/before.c) next to the compiled agent.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist/node-agent
out=dist/node-agent/vw-before
if [ ! -x "$out" ] || [ node-agent/native/before.c -nt "$out" ]; then
  cc -O2 -Wall -Wextra -Werror -o "$out" node-agent/native/before.c
fi
