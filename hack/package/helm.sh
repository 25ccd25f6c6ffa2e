#!/usr/bin/env bash
# Build helm from its Go module helm.sh/helm/v3 at a pinned version (Debian 12 does not package helm).
#
# The binary goes to a cache outside the work tree, keyed by the version and the Go toolchain:
#   ${VIPWARDEN_CACHE:-/var/cache/vipwarden}/helm/<version>-<go version>/helm
# A second run with the same pin does nothing. Output: progress on stderr, on stdout exactly one line:
#   HELM=/var/cache/vipwarden/helm/v3.21.4-go1.26.8/helm
set -euo pipefail

HELM_VERSION="v3.21.4"

# shellcheck source=../lib/package.sh
source "$(dirname "$0")/../lib/package.sh" package/helm

command -v go >/dev/null || die "go is not on PATH"
go_version="$(go env GOVERSION)"
dir="${VIPWARDEN_CACHE:-/var/cache/vipwarden}/helm/${HELM_VERSION}-${go_version}"
bin="${dir}/helm"

built() { [[ -x "${bin}" ]]; }
build() {
  local start=${SECONDS} src dl helm_mod helm_dir ldflags
  log "building helm ${HELM_VERSION} with ${go_version} (a few minutes the first time)"
  src="${dir}/src"
  mkdir -p "${src}"
  # A throwaway module requiring helm at the pin, so that `go build` resolves exactly its go.mod's versions.
  dl="$(cd "${dir}" && GOFLAGS= go mod download -json "helm.sh/helm/v3@${HELM_VERSION}")" || die "download failed: ${dl}"
  helm_mod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"${dl}")"
  helm_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"${dl}")"
  [[ -d "${helm_dir}" ]] || die "no source directory for helm ${HELM_VERSION}: ${dl}"
  # Build inside a writable copy of the module itself: its own go.mod and go.sum pin every dependency.
  rm -rf "${src}" && cp -r "${helm_dir}" "${src}" && chmod -R u+w "${src}"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  (cd "${src}" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod nice -n 10 go build -trimpath -ldflags "${ldflags}" \
    -o "${dir}/.helm.tmp" ./cmd/helm) || die "go build failed"
  mv -f "${dir}/.helm.tmp" "${bin}"
  rm -rf "${src}"
  log "built helm ${HELM_VERSION} in $(( SECONDS - start ))s"
}
cache_once "${dir}" built build
"${bin}" version --short >&2
printf 'HELM=%s\n' "${bin}"
