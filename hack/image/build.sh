#!/usr/bin/env bash
# The container image, built here without pulling anything: the Debian root of hack/package/debroot.sh image
# (mmdebstrap, Debian packages hack/image/packages.txt) plus the single executable of hack/package/sea.sh,
# assembled with umoci (Debian package) into an OCI image layout, written as an OCI archive. The Containerfile at
# the top of the tree builds the same image with docker or podman (same packages, files, user and entrypoint).
#
#   bash hack/image/build.sh          (after `npm run build`)
#
# Image: ghcr.io/vipwarden/vipwarden:<package.json version>; two layers (the Debian root, then vipwarden):
#   /usr/lib/vipwarden/{vipwarden,vipwarden-dataplane,vw-before,vipwarden-ndsend}, /usr/bin/vipwarden{,-agent,-controller} -> it
#   user 65532:65532 (vipwarden), entrypoint /usr/bin/vipwarden. The controller runs as that user with no
#   capability; the agent's pod runs as uid 0 with only NET_ADMIN and NET_RAW (ip, arping and iptables are its
#   children and need them in their effective set, which Kubernetes gives a non-root process only through file
#   capabilities and privilege escalation).
#
# Load it: podman load -i FILE, skopeo copy oci-archive:FILE docker-daemon:NAME, ctr -n k8s.io images import FILE.
# Cache: ${VIPWARDEN_CACHE:-/var/cache/vipwarden}/image/<key>/, keyed by the base root, the executable, this script.
# stdout: IMAGE=<name:tag>, IMAGE_ARCHIVE=<abs path of dist/image/vipwarden-oci.tar>, IMAGE_LAYOUT=<oci dir>
set -euo pipefail
# shellcheck source=../lib/package.sh
source "$(dirname "$0")/../lib/package.sh" image/build
command -v umoci >/dev/null || die "umoci is missing: apt-get install umoci"

version="$(node -p 'require("./package.json").version')"
REPO_NAME="${VIPWARDEN_IMAGE_REPO:-ghcr.io/vipwarden/vipwarden}"
IMAGE="${REPO_NAME}:${version}"
UID_GID=65532

start=${SECONDS}
sea="$(bash hack/package/sea.sh | sed -n 's/^SEA_DIR=//p')"
base="$(bash hack/package/debroot.sh image | sed -n 's/^ROOT_TAR=//p')"
[[ -x "${sea}/vipwarden" && -s "${base}" ]] || die "no executable or no base root"

cache="$(
  {
    sha256sum "${base}" "${sea}/vipwarden" "${sea}/vipwarden-dataplane" "${sea}/vw-before" "${sea}/vipwarden-ndsend" hack/image/build.sh | cut -d' ' -f1
    echo "${IMAGE}"
  } | cache_dir image 24
)"
if cache_miss "${cache}" -s vipwarden-oci.tar; then
  work="$(mktemp -d /var/tmp/vw-image.XXXXXX)"
  trap 'rm -rf "${work}"' EXIT
  layout="${work}/oci"
  epoch="$(git log -1 --format=%ct 2>/dev/null || date +%s)"
  created="$(date -u -d "@${epoch}" +%Y-%m-%dT%H:%M:%SZ)"
  umoci init --layout "${layout}"
  umoci new --image "${layout}:${version}"

  # Layer 1: the Debian root.
  umoci unpack --image "${layout}:${version}" "${work}/b1" >&2
  tar -C "${work}/b1/rootfs" -xf "${base}"
  umoci repack --image "${layout}:${version}" --history.created "${created}" --history.created_by \
    "mmdebstrap bookworm: $(grep -v '^#' hack/image/packages.txt | tr '\n' ' ')" "${work}/b1" >&2
  rm -rf "${work}/b1"

  # Layer 2: vipwarden and its user.
  umoci unpack --image "${layout}:${version}" "${work}/b2" >&2
  r="${work}/b2/rootfs"
  install -d -m 0755 "${r}/usr/lib/vipwarden" "${r}/etc/vipwarden"
  install -m 0755 "${sea}/vipwarden" "${sea}/vipwarden-dataplane" "${sea}/vw-before" "${sea}/vipwarden-ndsend" \
    "${r}/usr/lib/vipwarden/"
  for b in vipwarden vipwarden-agent vipwarden-controller; do ln -sf ../lib/vipwarden/vipwarden "${r}/usr/bin/${b}"; done
  grep -q '^vipwarden:' "${r}/etc/group" || echo "vipwarden:x:${UID_GID}:" >> "${r}/etc/group"
  grep -q '^vipwarden:' "${r}/etc/passwd" ||
    echo "vipwarden:x:${UID_GID}:${UID_GID}:vipwarden:/nonexistent:/usr/sbin/nologin" >> "${r}/etc/passwd"
  # The agent's state directory (a hostPath in the DaemonSet) and the xtables lock exist in the image too.
  install -d -m 0750 "${r}/run/vipwarden"
  umoci repack --image "${layout}:${version}" --history.created "${created}" \
    --history.created_by "vipwarden ${version}: hack/package/sea.sh" "${work}/b2" >&2
  rm -rf "${work}/b2"

  umoci config --image "${layout}:${version}" --created "${created}" --author "vipwarden" \
    --config.user "${UID_GID}:${UID_GID}" --config.entrypoint /usr/bin/vipwarden --config.workingdir / \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.env NODE_ENV=production \
    --config.label "org.opencontainers.image.title=vipwarden" \
    --config.label "org.opencontainers.image.version=${version}" \
    --config.label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --config.label "org.opencontainers.image.licenses=$(node -p 'require("./package.json").license')" \
    --history.created "${created}" --history.created_by "umoci config" >&2
  umoci gc --layout "${layout}"
  # The reference name, as an OCI archive carries it (skopeo, podman and containerd read it).
  tmpidx="$(mktemp)"
  node -e '
    const fs = require("fs"); const [f, name] = process.argv.slice(1);
    const idx = JSON.parse(fs.readFileSync(f, "utf8"));
    for (const m of idx.manifests) m.annotations = { ...m.annotations, "io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.split(":").pop() };
    fs.writeFileSync(f, JSON.stringify(idx));
  ' "${layout}/index.json" "${IMAGE}"
  rm -f "${tmpidx}"
  tar -C "${layout}" --sort=name --mtime="@${epoch}" --owner=0 --group=0 --numeric-owner -cf "${work}/vipwarden-oci.tar" .
  rm -rf "${cache}/oci"
  cp -a "${layout}" "${cache}/oci"
  mv -f "${work}/vipwarden-oci.tar" "${cache}/vipwarden-oci.tar"
  log "built ${IMAGE} in ${cache}"
fi
prune_cache "${cache}"
mkdir -p dist/image
cp "${cache}/vipwarden-oci.tar" dist/image/vipwarden-oci.tar
log "dist/image/vipwarden-oci.tar ($(du -h dist/image/vipwarden-oci.tar | cut -f1)) in $(( SECONDS - start ))s"
printf 'IMAGE=%s\nIMAGE_ARCHIVE=%s\nIMAGE_LAYOUT=%s\n' "${IMAGE}" "${root}/dist/image/vipwarden-oci.tar" "${cache}/oci"
