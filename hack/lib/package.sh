# shellcheck shell=bash
# The shared preamble of hack/package/*.sh and hack/image/build.sh. Source it with the script's log prefix:
#   source "$(dirname "$0")/../lib/package.sh" package/sea
# It enters the top of the work tree (and sets root to it) and defines:
#   log, die                 progress and errors on stderr, as [package/sea] ...
#   prune_cache DIR          the cache entries next to DIR: the three newest stay, older ones go once an hour old
#   cache_once DIR READY BUILD
#                            unless the command READY succeeds, creates DIR, takes DIR/.lock (one build at a time,
#                            also across clones), asks READY again (someone may have built it meanwhile) and runs BUILD
#   cache_dir KIND LEN       reads the key's material on stdin and prints the cache directory for it:
#                            ${VIPWARDEN_CACHE:-/var/cache/vipwarden}/KIND/<first LEN hex digits of its sha256>
#   cache_miss DIR TEST FILE false (logging "cached: DIR/FILE") if `test TEST DIR/FILE` holds; else creates DIR (or
#                            dies: run as root or set VIPWARDEN_CACHE) and is true
PKG_LOG_PREFIX="$1"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root="$(pwd)"

log() { printf '[%s] %s\n' "${PKG_LOG_PREFIX}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

prune_cache() { # DIR
  local parent; parent="$(dirname "$1")"
  ls -1dt "${parent}"/*/ 2>/dev/null | tail -n +4 | while read -r d; do
    [[ "${d%/}" == "$1" ]] && continue
    if [[ -n "$(find "${d}" -maxdepth 0 -mmin +60)" ]]; then rm -rf "${d}"; fi
  done
  return 0
}

cache_writable() { # DIR
  mkdir -p "$1" 2>/dev/null && [[ -w "$1" ]] || die "cannot write $1: run as root or set VIPWARDEN_CACHE"
}

cache_dir() { # KIND LEN, key material on stdin
  printf '%s/%s/%s\n' "${VIPWARDEN_CACHE:-/var/cache/vipwarden}" "$1" "$(sha256sum | cut -c1-"$2")"
}

cache_miss() { # DIR TEST FILE
  if test "$2" "$1/$3"; then
    log "cached: $1/$3"
    return 1
  fi
  cache_writable "$1"
}

cache_once() { # DIR READY BUILD
  local dir="$1" ready="$2" build="$3"
  if "${ready}"; then return 0; fi
  cache_writable "${dir}"
  exec 9>"${dir}/.lock"
  flock 9
  if ! "${ready}"; then "${build}"; fi
  flock -u 9
  exec 9>&-
}
