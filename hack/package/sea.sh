#!/usr/bin/env bash
# Single executable: vipwarden, vipwarden-agent and vipwarden-controller without Node.js on the host.
#
#   bash hack/package/sea.sh            (after `npm run build`)
#
# One Node.js single executable application (SEA: the node binary with the esbuild bundles of
# hack/package/bundle.mjs injected by postject, one per command as an asset) holds the three commands and runs the
# one named by the name it runs under; vipwarden-agent and vipwarden-controller are symlinks to it
# (hack/package/multicall.cjs). Three binaries would be three copies of the same ~100 MB node runtime.
#
# Output, in dist/sea/:
#   vipwarden, vipwarden-agent -> vipwarden, vipwarden-controller -> vipwarden
#   vipwarden-dataplane, vw-before, vipwarden-ndsend   the agent's native helpers, which it finds next to the
#                                 binary's real path
#
# Cache: the injected binary is kept in ${VIPWARDEN_CACHE:-/var/cache/vipwarden}/sea/<key>/, keyed by the bundles'
# content, the node binary and the SEA configuration; a run with the same inputs only bundles (a few seconds) and
# copies. stdout gets exactly one line, for scripts (the tests read it): SEA_DIR=/abs/path/dist/sea
set -euo pipefail
# shellcheck source=../lib/package.sh
source "$(dirname "$0")/../lib/package.sh" package/sea

for f in dist/cli/main.js dist/node-agent/main.js dist/controller/main.js dist/node-agent/vw-before dist/node-agent/vipwarden-ndsend dist/node-agent/vipwarden-dataplane; do
  [[ -e "${f}" ]] || die "${f} is missing: run npm run build first"
done

NODE="${NODE:-$(command -v node)}"
FUSE=NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2
grep -q "${FUSE}" "$(readlink -f "${NODE}")" || die "${NODE} has no SEA fuse (not an official-style build of Node.js >= 20)"

start=${SECONDS}
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
nice -n 10 "${NODE}" hack/package/bundle.mjs "${work}" >&2

# No code cache: it would hold only the dispatcher's (the commands are assets, compiled when run), and a code
# cache costs resident memory for every function it materializes.
cat > "${work}/sea-config.json" <<JSON
{ "main": "${work}/vipwarden.cjs", "output": "${work}/sea-prep.blob", "disableExperimentalSEAWarning": true,
  "assets": { "agent.cjs": "${work}/agent.cjs", "controller.cjs": "${work}/controller.cjs", "cli.cjs": "${work}/cli.cjs" } }
JSON

node_sum="$(sha256sum "$(readlink -f "${NODE}")" | cut -d' ' -f1)"
postject_version="$("${NODE}" -p 'require("./node_modules/postject/package.json").version')"
cache="$(
  {
    (cd "${work}" && sha256sum vipwarden.cjs agent.cjs controller.cjs cli.cjs)
    echo "node ${node_sum}"
    echo "postject ${postject_version}"
    sed "s|${work}|WORK|g" "${work}/sea-config.json"
  } | cache_dir sea 32
)"

if cache_miss "${cache}" -x vipwarden; then
  # The blob is made by this node binary (in the key).
  (cd "${work}" && nice -n 10 "${NODE}" --experimental-sea-config sea-config.json >&2)
  cp "$(readlink -f "${NODE}")" "${work}/vipwarden"
  chmod u+w "${work}/vipwarden"
  nice -n 10 "${NODE}" node_modules/postject/dist/cli.js "${work}/vipwarden" NODE_SEA_BLOB "${work}/sea-prep.blob" \
    --sentinel-fuse "${FUSE}" >&2
  chmod 0755 "${work}/vipwarden"
  # A smoke run before it enters the cache: a broken injection must not be cached.
  "${work}/vipwarden" --help >/dev/null 2>&1 || [[ $? -le 2 ]] || die "the injected binary does not start"
  mv -f "${work}/vipwarden" "${cache}/.vipwarden.tmp"
  mv -f "${cache}/.vipwarden.tmp" "${cache}/vipwarden"
  log "built ${cache}/vipwarden"
fi

prune_cache "${cache}"
out="${root}/dist/sea"
rm -rf "${out}"
mkdir -p "${out}"
cp "${cache}/vipwarden" "${out}/vipwarden"
ln -s vipwarden "${out}/vipwarden-agent"
ln -s vipwarden "${out}/vipwarden-controller"
cp dist/node-agent/vipwarden-dataplane dist/node-agent/vw-before dist/node-agent/vipwarden-ndsend "${out}/"
log "dist/sea ready in $(( SECONDS - start ))s"
printf 'SEA_DIR=%s\n' "${out}"
