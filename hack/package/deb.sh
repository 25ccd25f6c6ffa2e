#!/usr/bin/env bash
# The Debian package: dist/deb/vipwarden_<version>_<arch>.deb, built with dpkg-deb (no debhelper).
#
#   bash hack/package/deb.sh           (after `npm run build`; runs hack/package/sea.sh, which is cached)
#
# Contents:
#   /usr/bin/vipwarden                         the single executable (hack/package/sea.sh)
#   /usr/bin/vipwarden-agent, -controller      symlinks to it (it picks the command by its name)
#   /usr/lib/vipwarden/vipwarden-dataplane, vw-before, vipwarden-ndsend   the agent's native helpers (it looks in
#                                              ../lib/vipwarden)
#   /lib/systemd/system/vipwarden-{agent,controller}.service   deploy/systemd, not enabled at install
#   /etc/vipwarden/{agent,controller}.yaml     default configs (conffiles): hack/package/deb/*.yaml
#   /etc/vipwarden/groups/                     the controller's directory source
#   /usr/share/doc/vipwarden/                  copyright, README, examples (deploy/etc, deploy/examples)
# Maintainer scripts (hack/package/deb/): the vipwarden system user, a clean remove (services stopped first) and
# purge (configs, user, state).
#
# Cache: ${VIPWARDEN_CACHE:-/var/cache/vipwarden}/deb/<key>/, keyed by every file that goes in and the control data.
# stdout: exactly one line, DEB=/abs/path/dist/deb/vipwarden_<version>_<arch>.deb
set -euo pipefail
# shellcheck source=../lib/package.sh
source "$(dirname "$0")/../lib/package.sh" package/deb
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing"

start=${SECONDS}
sea="$(bash hack/package/sea.sh | sed -n 's/^SEA_DIR=//p')"
[[ -x "${sea}/vipwarden" ]] || die "hack/package/sea.sh did not produce ${sea}/vipwarden"

version="$(node -p 'require("./package.json").version')"
arch="$(dpkg --print-architecture)"
name="vipwarden_${version}_${arch}"

stage="$(mktemp -d)"
trap 'rm -rf "${stage}"' EXIT
p="${stage}/pkg"
install -d "${p}/DEBIAN" "${p}/usr/bin" "${p}/usr/lib/vipwarden" "${p}/lib/systemd/system" "${p}/etc/vipwarden/groups" \
  "${p}/usr/share/doc/vipwarden/examples"
install -m 0755 "${sea}/vipwarden" "${p}/usr/bin/vipwarden"
ln -s vipwarden "${p}/usr/bin/vipwarden-agent"
ln -s vipwarden "${p}/usr/bin/vipwarden-controller"
install -m 0755 "${sea}/vipwarden-dataplane" "${sea}/vw-before" "${sea}/vipwarden-ndsend" "${p}/usr/lib/vipwarden/"
strip --strip-unneeded "${p}/usr/lib/vipwarden/"{vipwarden-dataplane,vw-before,vipwarden-ndsend}
# The SEA binary is node's own build with the bundle injected as an ELF note: stripping it could drop the note.
install -d "${p}/usr/share/lintian/overrides"
cat > "${p}/usr/share/lintian/overrides/vipwarden" <<OVERRIDES
# usr/bin/vipwarden is a Node.js single executable application: node's binary, as built upstream, with the
# application injected (hack/package/sea.sh). It is not stripped or rebuilt here.
vipwarden: embedded-library zlib [usr/bin/vipwarden]
vipwarden: unstripped-binary-or-object [usr/bin/vipwarden]
vipwarden: hardening-no-pie [usr/bin/vipwarden]
vipwarden: no-manual-page [usr/bin/vipwarden*]
OVERRIDES
install -m 0644 deploy/systemd/vipwarden-agent.service deploy/systemd/vipwarden-controller.service "${p}/lib/systemd/system/"
install -m 0644 hack/package/deb/agent.yaml hack/package/deb/controller.yaml "${p}/etc/vipwarden/"
install -m 0644 README.md "${p}/usr/share/doc/vipwarden/README.md"
install -m 0644 deploy/etc/vipwarden/agent.yaml deploy/etc/vipwarden/controller.yaml deploy/examples/*.yaml \
  "${p}/usr/share/doc/vipwarden/examples/"
cat > "${p}/usr/share/doc/vipwarden/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vipwarden
Copyright: vipwarden authors
Comment: /usr/bin/vipwarden embeds the Node.js runtime ($(node --version), MIT and others: see
 https://github.com/nodejs/node/blob/main/LICENSE) and the npm dependencies listed in the source's package-lock.json.

Files: *
Copyright: vipwarden authors
License: $(node -p 'require("./package.json").license')
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

# Nothing in the package is ever patched by the unit's ExecStart: it must say /usr/bin.
grep -q '^ExecStart=/usr/bin/vipwarden-agent ' "${p}/lib/systemd/system/vipwarden-agent.service" \
  || die "deploy/systemd/vipwarden-agent.service does not start /usr/bin/vipwarden-agent"
grep -q '^ExecStart=/usr/bin/vipwarden-controller ' "${p}/lib/systemd/system/vipwarden-controller.service" \
  || die "deploy/systemd/vipwarden-controller.service does not start /usr/bin/vipwarden-controller"

install -m 0755 hack/package/deb/postinst hack/package/deb/prerm hack/package/deb/postrm "${p}/DEBIAN/"
printf '/etc/vipwarden/agent.yaml\n/etc/vipwarden/controller.yaml\n' > "${p}/DEBIAN/conffiles"
cat > "${p}/DEBIAN/control" <<CONTROL
Package: vipwarden
Version: ${version}
Architecture: ${arch}
Maintainer: vipwarden maintainers <maintainers@vipwarden.io>
Installed-Size: $(du -sk --exclude=DEBIAN "${p}" | cut -f1)
Depends: libc6 (>= 2.28), libstdc++6, libgcc-s1, adduser, iproute2, arping, procps
Recommends: iptables, nftables
Section: net
Priority: optional
Homepage: https://github.com/vipwarden/vipwarden
Description: lease-fenced virtual IP failover (node agent, controller, CLI)
 vipwarden moves virtual IP addresses between machines: an etcd-backed
 controller assigns each group of addresses to the best healthy node, and
 node agents hold them only while their etcd lease lives, so that an
 address is never on two nodes at once. No Node.js needed on the host.
CONTROL

# The key: every byte that goes in (file contents, modes, symlinks), control data included, but the changelog.
key="$(cd "${p}" && find . \( -type f -o -type l \) -printf '%P %m %l\n' | sort | sha256sum | cut -c1-16)-$(
  cd "${p}" && find . -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)"
cache="${VIPWARDEN_CACHE:-/var/cache/vipwarden}/deb/${key}"
if cache_miss "${cache}" -s "${name}.deb"; then
  # The changelog names the commit it was built from: written after the key, so that a new commit with the same
  # contents reuses the cached package.
gzip -9n -c > "${p}/usr/share/doc/vipwarden/changelog.gz" <<CHANGELOG
vipwarden (${version}) unstable; urgency=medium

  * Built from $(git rev-parse --short HEAD 2>/dev/null || echo "a source tree").

 -- vipwarden maintainers <maintainers@vipwarden.io>  $(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || echo 0)")
CHANGELOG
  (cd "${p}" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "${p}/DEBIAN/md5sums"
  # Reproducible: file times from the last commit, owners root.
  epoch="$(git log -1 --format=%ct 2>/dev/null || date +%s)"
  find "${p}" -exec touch -h -d "@${epoch}" {} +
  SOURCE_DATE_EPOCH="${epoch}" nice -n 10 dpkg-deb --root-owner-group -Zgzip -z6 --build "${p}" "${stage}/${name}.deb" >&2
  mv -f "${stage}/${name}.deb" "${cache}/.${name}.deb.tmp"
  mv -f "${cache}/.${name}.deb.tmp" "${cache}/${name}.deb"
  log "built ${cache}/${name}.deb"
fi
prune_cache "${cache}"
mkdir -p dist/deb
rm -f dist/deb/*.deb
cp "${cache}/${name}.deb" "dist/deb/${name}.deb"
if command -v lintian >/dev/null && [[ "${VIPWARDEN_LINTIAN:-0}" == 1 ]]; then
  lintian --no-tag-display-limit "dist/deb/${name}.deb" >&2 || true
fi
log "dist/deb/${name}.deb ($(du -h "dist/deb/${name}.deb" | cut -f1)) in $(( SECONDS - start ))s"
printf 'DEB=%s\n' "${root}/dist/deb/${name}.deb"
