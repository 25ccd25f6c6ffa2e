#!/usr/bin/env bash
# Creates vipwarden's etcd users and roles (least privilege), then turns etcd authentication on. Safe to repeat.
#
#   deploy/etcd/setup.sh [--prefix /vipwarden/] --node web1 --node web2 ... --controller USER ... \
#                        [--reader USER ...] [--operator USER ...] [--no-enable]
#
# etcdctl is told where etcd is the usual way: ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY (a client
# certificate with CN root) or ETCDCTL_USER=root:password. ETCDCTL=/path/to/etcdctl picks the binary.
#
# Users are created without a password: each component logs in with its client certificate, whose CN is the user
# name (agent: the node name as in agent.yaml `node`). To use a password instead, set one afterwards with
# `etcdctl user passwd USER` and give the component an etcd.auth.file holding "USER:password".
#
# Roles (P = the prefix):
#   vipwarden-node-<node>   read P/groups/, P/assignments/, P/promisesets/, P/nodes/ (its own record; the peers' failsafe addresses);
#                           read and write P/nodes/<node>, P/heartbeat/<node>, P/health/<node>/, P/released/<node>/,
#                           P/presence/<node>/
#                           (user <node>). Nothing else: not the other nodes' health, releases and presence, events,
#                           leader, moves, drains.
#   vipwarden-controller    read and write P (leader, groups, assignments, events; cleans up stale keys)
#   vipwarden-reader        read P                          (vipwarden status, vipwarden events)
#   vipwarden-operator      read P; write P/moves/, P/drain/ (vipwarden move, drain, undrain)
# etcd's own `root` user (with the root role) is created if missing: authentication cannot be enabled without it.
set -euo pipefail

ETCDCTL="${ETCDCTL:-etcdctl}"
prefix=/vipwarden/
nodes=() controllers=() readers=() operators=()
enable=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --node) nodes+=("$2"); shift 2 ;;
    --controller) controllers+=("$2"); shift 2 ;;
    --reader) readers+=("$2"); shift 2 ;;
    --operator) operators+=("$2"); shift 2 ;;
    --no-enable) enable=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "etcd-setup: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "${prefix}" == /* ]] || { echo "etcd-setup: --prefix must start with /" >&2; exit 2; }
[[ "${prefix}" == */ ]] || prefix="${prefix}/"
name_re='^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$'
for u in "${nodes[@]}" "${controllers[@]}" "${readers[@]}" "${operators[@]}"; do
  [[ "${u}" =~ ${name_re} ]] || { echo "etcd-setup: bad user name ${u}" >&2; exit 2; }
done
(( ${#nodes[@]} + ${#controllers[@]} > 0 )) || { echo "etcd-setup: name at least one --node or --controller" >&2; exit 2; }

ctl() { "${ETCDCTL}" "$@"; }
# Runs etcdctl, treating "already exists" / "already granted" as success (the script is safe to repeat).
idem() {
  local out
  if out="$(ctl "$@" 2>&1)"; then return 0; fi
  if grep -qiE 'already exists|already granted|already (has|in)' <<<"${out}"; then return 0; fi
  echo "etcd-setup: etcdctl $*: ${out}" >&2
  return 1
}
role() { idem role add "$1" >/dev/null; }
grant() { # role, read|write|readwrite, key, [prefix]
  local args=(role grant-permission "$1")
  [ "${4:-}" = prefix ] && args+=(--prefix=true)
  idem "${args[@]}" "$2" "$3" >/dev/null
}
user() { # user, role
  idem user add "$1" --no-password >/dev/null
  idem user grant-role "$1" "$2" >/dev/null
}

role vipwarden-controller
grant vipwarden-controller readwrite "${prefix}" prefix
role vipwarden-reader
grant vipwarden-reader read "${prefix}" prefix
role vipwarden-operator
grant vipwarden-operator read "${prefix}" prefix
grant vipwarden-operator readwrite "${prefix}moves/" prefix
grant vipwarden-operator readwrite "${prefix}drain/" prefix
for n in "${nodes[@]}"; do
  r="vipwarden-node-${n}"
  role "${r}"
  # What node-agent/cluster-view.ts mirrors, and the node records (registration.ts reads its own; the failsafe
  # peer channel reads where the other agents listen).
  grant "${r}" read "${prefix}groups/" prefix
  grant "${r}" read "${prefix}assignments/" prefix
  grant "${r}" read "${prefix}promisesets/" prefix
  grant "${r}" read "${prefix}nodes/" prefix
  grant "${r}" readwrite "${prefix}nodes/${n}"
  grant "${r}" readwrite "${prefix}health/${n}/" prefix
  grant "${r}" readwrite "${prefix}released/${n}/" prefix
  grant "${r}" readwrite "${prefix}presence/${n}/" prefix
  grant "${r}" readwrite "${prefix}heartbeat/${n}"
  user "${n}" "${r}"
  echo "etcd-setup: node ${n}: user ${n}, role ${r}" >&2
done
for u in "${controllers[@]}"; do user "${u}" vipwarden-controller; echo "etcd-setup: controller user ${u}" >&2; done
for u in "${readers[@]}"; do user "${u}" vipwarden-reader; echo "etcd-setup: reader user ${u}" >&2; done
for u in "${operators[@]}"; do user "${u}" vipwarden-operator; echo "etcd-setup: operator user ${u}" >&2; done

if [ "${enable}" = 1 ]; then
  user root root
  # A loaded or just-elected etcd may time a request out: try a few times, and say why it did not work.
  why=""
  for _ in 1 2 3 4 5; do
    why="$(ctl auth enable 2>&1)" || true
    if ctl auth status 2>/dev/null | grep -qiE 'Authentication Status: *true'; then
      echo "etcd-setup: authentication enabled" >&2
      exit 0
    fi
    sleep 1
  done
  echo "etcd-setup: authentication is not enabled: ${why}" >&2
  exit 1
fi
