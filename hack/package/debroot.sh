#!/usr/bin/env bash
# A fresh Debian 12 root filesystem, as a tarball, for the .deb's install test (test/e2e/deb.test.ts) and the
# container image (hack/image/build.sh): mmdebstrap from Debian's mirror, nothing else.
#
#   bash hack/package/debroot.sh boot|image
#
#   boot   systemd, systemd-sysv, dbus and what the agent runs (iproute2, arping, procps, iptables), adduser: a
#          root that systemd-nspawn --boot starts, with the .deb's dependencies already in (no network inside)
#   image  the agent's runtime only (hack/image/packages.txt: iproute2, arping, procps, iptables,
#          ca-certificates): no systemd; the base of hack/image/build.sh
#
# Cache: ${VIPWARDEN_CACHE:-/var/cache/vipwarden}/debroot/<flavour>-<key>/root.tar, keyed by the suite, the
# mirror, the package list and this script's mmdebstrap options; a second run prints the cached path.
# stdout: exactly one line, ROOT_TAR=/path/to/root.tar
set -euo pipefail

flavour="${1:-boot}"
SUITE=bookworm
MIRROR="${VIPWARDEN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# shellcheck source=../lib/package.sh
source "$(dirname "$0")/../lib/package.sh" package/debroot
case "${flavour}" in
  boot) packages=(systemd systemd-sysv dbus adduser iproute2 arping procps iptables) ; variant=minbase ;;
  # The same list as the Containerfile's apt-get install.
  image) mapfile -t packages < <(grep -v '^#' hack/image/packages.txt) ; variant=minbase ;;
  *) echo "usage: debroot.sh boot|image" >&2; exit 2 ;;
esac
# Docs, man pages and locales are dropped from the image root; the boot root keeps dpkg's defaults.
# force-unsafe-io: dpkg's fsync after every file is pointless for a root that ends up in a tarball, and made the build
# take 25 min on a loaded machine.
opts=(--format=tar --variant="${variant}" --include="$(IFS=,; echo "${packages[*]}")" --skip=check/empty
  --dpkgopt=force-unsafe-io)
if [[ "${flavour}" == image ]]; then
  opts+=(--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*'
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*')
fi

command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install mmdebstrap"

key="$(printf '%s\n' "${SUITE}" "${MIRROR}" "${opts[@]}" | sha256sum | cut -c1-16)"
dir="${VIPWARDEN_CACHE:-/var/cache/vipwarden}/debroot/${flavour}-${key}"
tar="${dir}/root.tar"
built() { [[ -s "${tar}" ]]; }
build() {
  local start=${SECONDS}
  log "mmdebstrap ${SUITE} (${flavour}: ${packages[*]}) from ${MIRROR}"
  nice -n 10 mmdebstrap --quiet "${opts[@]}" "${SUITE}" "${dir}/.root.tmp.tar" "${MIRROR}" >&2 \
    || die "mmdebstrap failed"
  mv -f "${dir}/.root.tmp.tar" "${tar}"
  log "built ${tar} in $(( SECONDS - start ))s"
}
cache_once "${dir}" built build
printf 'ROOT_TAR=%s\n' "${tar}"
