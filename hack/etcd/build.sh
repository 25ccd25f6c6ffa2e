#!/usr/bin/env bash
# Build etcd, etcdctl and etcdutl from the Go modules go.etcd.io/etcd/{server,etcdctl,etcdutl}/v3 at a pinned version.
#
# Why: fencing relies on lease fixes of etcd 3.4.31/3.5.13 (etcd-io/etcd#15247) and 3.4.38/3.5.23 (a keepalive racing
# a revocation answered TTL > 0); Debian 12's etcd-server is 3.4.23. The tests, the demo and the bench use this build.
#
# The binaries go to a cache outside the work tree, so every clone on the machine shares them:
#   ${VIPWARDEN_CACHE:-/var/cache/vipwarden}/etcd/<version>/bin/
# A second run with the same pin does nothing. Changing ETCD_VERSION below builds the new version next to the old.
#
# Output: progress goes to stderr; stdout gets exactly these lines, for scripts (test/harness/etcd.ts reads them):
#   ETCD_VERSION=v3.6.16
#   ETCD_BIN_DIR=/var/cache/vipwarden/etcd/v3.6.16/bin
#   ETCD=/var/cache/vipwarden/etcd/v3.6.16/bin/etcd
#   ETCDCTL=/var/cache/vipwarden/etcd/v3.6.16/bin/etcdctl
#   ETCDUTL=/var/cache/vipwarden/etcd/v3.6.16/bin/etcdutl
set -euo pipefail

# The pin: the newest 3.6.x the Go module proxy served on 2026-12-01 (`go list -m -versions go.etcd.io/etcd/server/v3`).
ETCD_VERSION="v3.6.16"

# shellcheck source=../lib/gobuild.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/gobuild.sh"
gobuild_init etcd "${ETCD_VERSION}" etcd

[[ "${ETCD_VERSION}" =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "ETCD_VERSION ${ETCD_VERSION} is not v3.MINOR.PATCH"

# binary name -> main package (each is the root package of its module)
declare -A PKG=(
  [etcd]=go.etcd.io/etcd/server/v3
  [etcdctl]=go.etcd.io/etcd/etcdctl/v3
  [etcdutl]=go.etcd.io/etcd/etcdutl/v3
)
ORDER=(etcd etcdctl etcdutl)

build_etcd() {
  # A throwaway module that requires the three etcd modules. Their own replace directives (../api, ...) are ignored
  # in a dependency, and their require lines name the sibling modules at the same published version.
  {
    printf 'module vipwarden.local/etcdbuild\n\ngo 1.24\n\nrequire (\n'
    for t in "${ORDER[@]}"; do printf '\t%s %s\n' "${PKG[${t}]}" "${ETCD_VERSION}"; done
    printf ')\n'
  } | gobuild_gomod

  # etcd's version string is a constant in go.etcd.io/etcd/api/v3/version; GitSHA is only informational.
  local t got ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-${ETCD_VERSION}"
  for t in "$@"; do gobuild_binary "${t}" "${PKG[${t}]}" "${ldflags}"; done
  got="$("${BIN_DIR}/etcd" --version | sed -n 's/^etcd Version: *//p')"
  [[ "v${got}" == "${ETCD_VERSION}" ]] || die "built etcd says version '${got}', expected ${ETCD_VERSION}"
}

gobuild_run 1.24 build_etcd "${ORDER[@]}"

for t in "${ORDER[@]}"; do [[ -x "${BIN_DIR}/${t}" ]] || die "${BIN_DIR}/${t} is missing after the build"; done
printf 'ETCD_VERSION=%s\nETCD_BIN_DIR=%s\nETCD=%s\nETCDCTL=%s\nETCDUTL=%s\n' \
  "${ETCD_VERSION}" "${BIN_DIR}" "${BIN_DIR}/etcd" "${BIN_DIR}/etcdctl" "${BIN_DIR}/etcdutl"
