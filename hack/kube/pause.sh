#!/usr/bin/env bash
# The pause image for the kubelet tier (test/e2e/kubelet.test.ts), built here: hack/kube/pause.c compiled static,
# the only file of a one-layer OCI image (umoci, like hack/image/build.sh), written as an OCI archive that
# `ctr -n k8s.io images import` loads. containerd's sandbox_image names it; nothing is pulled.
#
# Cache: ${VIPWARDEN_CACHE:-/var/cache/vipwarden}/kube/pause/<key>/pause-oci.tar, keyed by pause.c and this script.
# stdout: PAUSE_IMAGE=<name:tag>, PAUSE_ARCHIVE=<abs path>
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log() { printf '[kube/pause] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
command -v umoci >/dev/null || die "umoci is missing: apt-get install umoci"
command -v gcc >/dev/null || die "gcc is missing: apt-get install gcc libc6-dev"

IMAGE="localhost/vipwarden/pause:1"
cache="${VIPWARDEN_CACHE:-/var/cache/vipwarden}/kube/pause/$(cat "${here}/pause.c" "${here}/pause.sh" | sha256sum | cut -c1-16)"
archive="${cache}/pause-oci.tar"

build() { # WORKDIR
  local w="$1" layout="$1/oci" t="1970-01-01T00:00:00Z"
  gcc -static -Os -s -o "${w}/pause" "${here}/pause.c"
  umoci init --layout "${layout}"
  umoci new --image "${layout}:1"
  umoci unpack --rootless --image "${layout}:1" "${w}/b" >&2
  install -m 0755 "${w}/pause" "${w}/b/rootfs/pause"
  umoci repack --image "${layout}:1" --history.created "${t}" --history.created_by "hack/kube/pause.sh" "${w}/b" >&2
  umoci config --image "${layout}:1" --created "${t}" --config.user 65535:65535 --config.entrypoint /pause \
    --config.workingdir / --history.created "${t}" --history.created_by "umoci config" >&2
  umoci gc --layout "${layout}"
  # The name containerd gives the image on import.
  node -e '
    const fs = require("fs"); const [f, name] = process.argv.slice(1);
    const idx = JSON.parse(fs.readFileSync(f, "utf8"));
    for (const m of idx.manifests) m.annotations = { ...m.annotations, "io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1" };
    fs.writeFileSync(f, JSON.stringify(idx));
  ' "${layout}/index.json" "${IMAGE}"
  tar -C "${layout}" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "${w}/pause-oci.tar" .
}

if [[ ! -s "${archive}" ]]; then
  mkdir -p "${cache}" 2>/dev/null && [[ -w "${cache}" ]] || die "cannot write ${cache}: run as root or set VIPWARDEN_CACHE"
  work="$(mktemp -d /var/tmp/vw-pause.XXXXXX)"
  trap 'rm -rf "${work}"' EXIT
  build "${work}"
  mv -f "${work}/pause-oci.tar" "${archive}"
  log "built ${IMAGE} in ${cache}"
fi
printf 'PAUSE_IMAGE=%s\nPAUSE_ARCHIVE=%s\n' "${IMAGE}" "${archive}"
