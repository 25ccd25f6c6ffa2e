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

CACHE_ROOT="${VIPWARDEN_CACHE:-/var/cache/vipwarden}"
VERSION_DIR="${CACHE_ROOT}/etcd/${ETCD_VERSION}"
BIN_DIR="${VERSION_DIR}/bin"
SRC_DIR="${VERSION_DIR}/src"

log() { printf '[etcd/build] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "${ETCD_VERSION}" =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "ETCD_VERSION ${ETCD_VERSION} is not v3.MINOR.PATCH"

# binary name -> main package (each is the root package of its module)
declare -A PKG=(
  [etcd]=go.etcd.io/etcd/server/v3
  [etcdctl]=go.etcd.io/etcd/etcdctl/v3
  [etcdutl]=go.etcd.io/etcd/etcdutl/v3
)
ORDER=(etcd etcdctl etcdutl)

targets=()
for t in "${ORDER[@]}"; do [[ -x "${BIN_DIR}/${t}" ]] || targets+=("${t}"); done

if (( ${#targets[@]} > 0 )); then
  command -v go >/dev/null || die "go is not on PATH; install Go >= 1.24 (etcd ${ETCD_VERSION} needs it)"
  mkdir -p "${VERSION_DIR}" 2>/dev/null && [[ -w "${VERSION_DIR}" ]] \
    || die "cannot write ${VERSION_DIR}: run as root or set VIPWARDEN_CACHE to a writable directory"
  # One build at a time per version, also across clones and concurrent test runs.
  exec 9>"${VERSION_DIR}/.lock"
  log "waiting for the build lock ${VERSION_DIR}/.lock"
  flock 9
  todo=()
  for t in "${targets[@]}"; do [[ -x "${BIN_DIR}/${t}" ]] || todo+=("${t}"); done

  if (( ${#todo[@]} > 0 )); then
    start=${SECONDS}
    mkdir -p "${SRC_DIR}" "${BIN_DIR}"
    export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
    log "building ${todo[*]} ${ETCD_VERSION} with $(go version | awk '{print $3}') in ${SRC_DIR}"

    # A throwaway module that requires the three etcd modules. Their own replace directives (../api, ...) are ignored
    # in a dependency, and their require lines name the sibling modules at the same published version.
    {
      printf 'module vipwarden.local/etcdbuild\n\ngo 1.24\n\nrequire (\n'
      for t in "${ORDER[@]}"; do printf '\t%s %s\n' "${PKG[${t}]}" "${ETCD_VERSION}"; done
      printf ')\n'
    } > "${SRC_DIR}/go.mod.new"
    if ! cmp -s "${SRC_DIR}/go.mod.new" "${SRC_DIR}/go.mod" 2>/dev/null; then
      mv "${SRC_DIR}/go.mod.new" "${SRC_DIR}/go.mod"
      rm -f "${SRC_DIR}/go.sum"
    else
      rm -f "${SRC_DIR}/go.mod.new"
    fi

    # etcd's version string is a constant in go.etcd.io/etcd/api/v3/version; GitSHA is only informational.
    ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-${ETCD_VERSION}"
    for t in "${todo[@]}"; do
      t_start=${SECONDS}
      log "go build ${PKG[${t}]}"
      (cd "${SRC_DIR}" && go build -trimpath -ldflags "${ldflags}" -o "${BIN_DIR}/.${t}.tmp" "${PKG[${t}]}") \
        || die "go build of ${t} failed (see above)"
      mv -f "${BIN_DIR}/.${t}.tmp" "${BIN_DIR}/${t}"
      log "built ${t} in $(( SECONDS - t_start ))s"
    done
    got="$("${BIN_DIR}/etcd" --version | sed -n 's/^etcd Version: *//p')"
    [[ "v${got}" == "${ETCD_VERSION}" ]] || die "built etcd says version '${got}', expected ${ETCD_VERSION}"
    log "build finished in $(( SECONDS - start ))s"
  fi
  flock -u 9
  exec 9>&-
else
  log "${ETCD_VERSION} is cached in ${BIN_DIR}"
fi

for t in "${ORDER[@]}"; do [[ -x "${BIN_DIR}/${t}" ]] || die "${BIN_DIR}/${t} is missing after the build"; done
printf 'ETCD_VERSION=%s\nETCD_BIN_DIR=%s\nETCD=%s\nETCDCTL=%s\nETCDUTL=%s\n' \
  "${ETCD_VERSION}" "${BIN_DIR}" "${BIN_DIR}/etcd" "${BIN_DIR}/etcdctl" "${BIN_DIR}/etcdutl"
