#!/usr/bin/env bash
# Installs what vipwarden's demo and tests need on a fresh Debian 12 machine, as root. Safe to repeat.
#   Debian: nginx, MariaDB, keepalived (benchmark), Prometheus (promtool), iproute2, iptables, arping, gcc,
#   ipvsadm (LVS directors), nftables (nft: the fast fence's table, node-agent/fence/) ...
#   npm: the locked dependencies (npm ci)
#   etcd is not taken from Debian (12 ships 3.4.23, with lease bugs): hack/etcd/build.sh builds the pinned 3.6.x.
# Services from these packages are never started on the host: everything runs inside test namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  nginx-light iproute2 iptables arping ndisc6 keepalived
  mariadb-server mariadb-client prometheus gcc libc6-dev util-linux procps psmisc curl systemd ca-certificates ipvsadm
  # The fast fence (node-agent/fence/): nft loads its table; the helper sets elements over netlink itself.
  nftables
  # Packaging (hack/package, hack/image and their tests): Debian roots, systemd-nspawn, OCI images, runc.
  mmdebstrap systemd-container umoci skopeo runc binutils
  # Real kubelet nodes (test/e2e/kubelet.test.ts, hack/kube/node.sh): the container runtime the kubelet drives.
  containerd
)

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: needs root (apt-get, network namespaces)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  # Keep the packages' services from starting on the host (no-op where no init system runs them).
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node.js 20+ and npm come with the machine; say so clearly if not.
node -e 'const [maj] = process.versions.node.split(".").map(Number); if (maj < 20) { console.error(`install-deps: Node.js ${process.versions.node} is too old; vipwarden needs 20+`); process.exit(1); }'

stamp=node_modules/.vipwarden-lock-stamp
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  # `npm install --no-save` installs the locked versions without touching package-lock.json. (npm ci would be the
  # usual choice, but npm 11 rejects this lock for lacking other platforms' optional packages, such as
  # @swc/core-darwin-arm64.)
  echo "install-deps: npm install (locked versions)"
  npm install --no-save --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
