# shellcheck shell=bash
# The shared part of hack/etcd/build.sh and hack/kube/build.sh: a pinned Go build into a cache outside the work tree,
#   ${VIPWARDEN_CACHE:-/var/cache/vipwarden}/<name>/<version>/{bin,src}
# one build at a time per version (a flock, also across clones and concurrent test runs), nothing done when the
# binaries are there. Source it, then:
#   gobuild_init <name> <version> <what> sets CACHE_ROOT VERSION_DIR BIN_DIR SRC_DIR (<what>: for messages)
#   gobuild_run <go-needed> <build-fn> <binary>...
#                                        builds the binaries missing from BIN_DIR: <build-fn> gets them as arguments,
#                                        runs in the lock with CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local and
#                                        writes SRC_DIR/go.mod (gobuild_gomod) and each binary (gobuild_binary)
#   gobuild_gomod                        stdin becomes SRC_DIR/go.mod; go.sum goes only when go.mod changed
#   gobuild_binary <name> <package> <ldflags> [wrapper...]
#                                        go build into BIN_DIR/<name>, atomically, optionally under e.g. `nice -n 10`
# GOBUILD_NOTE is appended to the "building" line. log and die print with the prefix [<name>/build].

gobuild_init() {
  GOBUILD_NAME="$1"
  GOBUILD_VERSION="$2"
  GOBUILD_WHAT="$3"
  CACHE_ROOT="${VIPWARDEN_CACHE:-/var/cache/vipwarden}"
  VERSION_DIR="${CACHE_ROOT}/${GOBUILD_NAME}/${GOBUILD_VERSION}"
  BIN_DIR="${VERSION_DIR}/bin"
  SRC_DIR="${VERSION_DIR}/src"
}

log() { printf '[%s/build] %s\n' "${GOBUILD_NAME}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

gobuild_run() {
  local go_needed="$1" build_fn="$2" t start
  shift 2
  local targets=() todo=()
  for t in "$@"; do [[ -x "${BIN_DIR}/${t}" ]] || targets+=("${t}"); done
  if (( ${#targets[@]} == 0 )); then
    log "${GOBUILD_VERSION} is cached in ${BIN_DIR}"
    return 0
  fi
  command -v go >/dev/null || die "go is not on PATH; install Go >= ${go_needed} (${GOBUILD_WHAT} ${GOBUILD_VERSION} needs it)"
  mkdir -p "${VERSION_DIR}" 2>/dev/null && [[ -w "${VERSION_DIR}" ]] \
    || die "cannot write ${VERSION_DIR}: run as root or set VIPWARDEN_CACHE to a writable directory"
  exec 9>"${VERSION_DIR}/.lock"
  log "waiting for the build lock ${VERSION_DIR}/.lock"
  flock 9
  # Someone else may have finished the build while we waited.
  for t in "${targets[@]}"; do [[ -x "${BIN_DIR}/${t}" ]] || todo+=("${t}"); done
  if (( ${#todo[@]} > 0 )); then
    start=${SECONDS}
    mkdir -p "${SRC_DIR}" "${BIN_DIR}"
    export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
    log "building ${todo[*]} ${GOBUILD_VERSION} with $(go version | awk '{print $3}') in ${SRC_DIR}${GOBUILD_NOTE:+ ${GOBUILD_NOTE}}"
    "${build_fn}" "${todo[@]}"
    log "build finished in $(( SECONDS - start ))s"
  fi
  flock -u 9
  exec 9>&-
}

gobuild_gomod() {
  cat > "${SRC_DIR}/go.mod.new"
  if ! cmp -s "${SRC_DIR}/go.mod.new" "${SRC_DIR}/go.mod" 2>/dev/null; then
    mv "${SRC_DIR}/go.mod.new" "${SRC_DIR}/go.mod"
    rm -f "${SRC_DIR}/go.sum"
  else
    rm -f "${SRC_DIR}/go.mod.new"
  fi
}

gobuild_binary() {
  local t="$1" pkg="$2" ldflags="$3" t_start=${SECONDS}
  shift 3
  log "go build ${pkg}"
  (cd "${SRC_DIR}" && "$@" go build -trimpath -ldflags "${ldflags}" -o "${BIN_DIR}/.${t}.tmp" "${pkg}") \
    || die "go build of ${t} failed (see above)"
  mv -f "${BIN_DIR}/.${t}.tmp" "${BIN_DIR}/${t}"
  log "built ${t} in $(( SECONDS - t_start ))s"
}
