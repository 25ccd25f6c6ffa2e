#!/usr/bin/env bash
# Build kube-apiserver (and, when needed, kubectl) from the Go module k8s.io/kubernetes at a pinned version.
#
# The binaries go to a cache outside the work tree, so every clone on the machine shares them:
#   ${VIPWARDEN_CACHE:-/var/cache/vipwarden}/kube/<version>/bin/
# A second run with the same pin does nothing. Changing KUBE_VERSION below builds the new version next to the old.
#
# kubectl is built only when the kubectl on PATH is missing or more than one minor version away from the pin
# (kubectl's supported skew). VIPWARDEN_BUILD_KUBECTL=1 forces it.
#
# Output: progress goes to stderr; stdout gets exactly these lines, for scripts (test/harness/kube.ts reads them):
#   KUBE_VERSION=v1.37.1
#   KUBE_BIN_DIR=/var/cache/vipwarden/kube/v1.37.1/bin
#   KUBE_APISERVER=/var/cache/vipwarden/kube/v1.37.1/bin/kube-apiserver
#   KUBECTL=/usr/bin/kubectl          (or the built one)
set -euo pipefail

# The pin. k8s.io/kubernetes v1.37.x declares `go 1.26.0`, so it builds with the local Go 1.26 toolchain.
KUBE_VERSION="v1.37.1"

# shellcheck source=../lib/gobuild.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/gobuild.sh"
gobuild_init kube "${KUBE_VERSION}" k8s.io/kubernetes

[[ "${KUBE_VERSION}" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBE_VERSION ${KUBE_VERSION} is not vMAJOR.MINOR.PATCH"
KUBE_MINOR="${BASH_REMATCH[1]}"
# The staging modules (k8s.io/api, k8s.io/client-go, ...) are published as v0.<minor>.<patch>.
STAGING_VERSION="v0.${KUBE_MINOR}.${BASH_REMATCH[2]}"

# kubectl_minor <path>: prints the client minor version of a kubectl binary, or nothing.
kubectl_minor() {
  local out
  out="$("$1" version --client -o json 2>/dev/null)" || return 0
  # "gitVersion": "v1.32.4-dispatcher" -> 32
  sed -n 's/.*"gitVersion": *"v1\.\([0-9][0-9]*\)\..*/\1/p' <<<"${out}" | head -n1
}

need_kubectl_build() {
  [[ "${VIPWARDEN_BUILD_KUBECTL:-0}" == "1" ]] && { log "VIPWARDEN_BUILD_KUBECTL=1: building kubectl"; return 0; }
  local path minor skew
  if ! path="$(command -v kubectl)"; then
    log "no kubectl on PATH: building kubectl"
    return 0
  fi
  # A previously built kubectl from this cache on PATH counts as ours.
  minor="$(kubectl_minor "${path}")"
  if [[ -z "${minor}" ]]; then
    log "cannot read the version of ${path}: building kubectl"
    return 0
  fi
  skew=$(( minor > KUBE_MINOR ? minor - KUBE_MINOR : KUBE_MINOR - minor ))
  if (( skew > 1 )); then
    log "${path} is v1.${minor}, ${skew} minor versions from ${KUBE_VERSION}: building kubectl"
    return 0
  fi
  log "using ${path} (v1.${minor}) as kubectl"
  SYSTEM_KUBECTL="${path}"
  return 1
}

build_kube() {
  # A throwaway module that requires k8s.io/kubernetes. Its go.mod pins the staging modules at v0.0.0 and
  # replaces them with ./staging/...; replace directives of a dependency are ignored, so we redirect each of them
  # to its published version.
  local dl kube_mod staging m pkg build_date ldflags t
  dl="$(cd "${VERSION_DIR}" && GOFLAGS= go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}")" \
    || die "go mod download k8s.io/kubernetes@${KUBE_VERSION} failed: ${dl:-no output}"
  kube_mod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"${dl}")"
  [[ -f "${kube_mod}" ]] || die "could not download k8s.io/kubernetes@${KUBE_VERSION}: ${dl}"
  mapfile -t staging < <(sed -n 's/^[[:space:]]*\(k8s\.io\/[^[:space:]]*\) v0\.0\.0\([[:space:]].*\)\{0,1\}$/\1/p' "${kube_mod}" | sort -u)
  (( ${#staging[@]} > 0 )) || die "found no v0.0.0 k8s.io requirements in ${kube_mod}"

  {
    printf 'module vipwarden.local/kubebuild\n\ngo %s\n\n' "$(sed -n 's/^go \([0-9.]*\)$/\1/p' "${kube_mod}")"
    printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "${KUBE_VERSION}"
    for m in "${staging[@]}"; do printf '\t%s => %s %s\n' "${m}" "${m}" "${STAGING_VERSION}"; done
    printf ')\n'
  } | gobuild_gomod

  # What `kubectl version` and /version report; without these they say v0.0.0-master.
  build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${KUBE_MINOR}"
    ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
  done
  for t in "$@"; do gobuild_binary "${t}" "k8s.io/kubernetes/cmd/${t}" "${ldflags}" nice -n 10; done
}

SYSTEM_KUBECTL=""
targets=(kube-apiserver)
# A real node (test/e2e/kubelet*.test.ts): VIPWARDEN_KUBE_NODE=1 also builds kubelet, kube-controller-manager and
# kube-scheduler, into the same cache.
if [[ "${VIPWARDEN_KUBE_NODE:-0}" == "1" ]]; then targets+=(kubelet kube-controller-manager kube-scheduler); fi
if [[ -x "${BIN_DIR}/kubectl" ]]; then
  : # built earlier; use it whatever PATH holds now
elif need_kubectl_build; then
  targets+=(kubectl)
fi
GOBUILD_NOTE="(this takes many minutes the first time)"
gobuild_run 1.26 build_kube "${targets[@]}"

[[ -x "${BIN_DIR}/kube-apiserver" ]] || die "${BIN_DIR}/kube-apiserver is missing after the build"
if [[ -x "${BIN_DIR}/kubectl" ]]; then
  KUBECTL="${BIN_DIR}/kubectl"
elif [[ -n "${SYSTEM_KUBECTL}" ]]; then
  KUBECTL="${SYSTEM_KUBECTL}"
else
  die "no usable kubectl"
fi

log "kube-apiserver: ${BIN_DIR}/kube-apiserver"
log "kubectl:        ${KUBECTL}"
printf 'KUBE_VERSION=%s\nKUBE_BIN_DIR=%s\nKUBE_APISERVER=%s\nKUBECTL=%s\n' \
  "${KUBE_VERSION}" "${BIN_DIR}" "${BIN_DIR}/kube-apiserver" "${KUBECTL}"
if [[ "${VIPWARDEN_KUBE_NODE:-0}" == "1" ]]; then
  printf 'KUBELET=%s\nKUBE_CONTROLLER_MANAGER=%s\nKUBE_SCHEDULER=%s\n' \
    "${BIN_DIR}/kubelet" "${BIN_DIR}/kube-controller-manager" "${BIN_DIR}/kube-scheduler"
fi
