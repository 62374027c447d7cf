#!/usr/bin/env bash
# Copy one file out of a Debian package of any architecture (multiarch is not needed: the
# package is fetched with `apt-get download`, never installed). Used for guest files built by
# Debian for another architecture, e.g. the arm64 build of qemu-user-static's qemu-x86_64.
#
# Usage: mk/deb-file.sh PACKAGE:ARCH PATH-IN-PACKAGE OUTPUT
# Cache: ${PODVISOR_CACHE:-/var/cache/podvisor}/debs/<package>_<version>_<arch>.deb, keyed by
# the candidate version apt knows; OUTPUT is left untouched when identical (make sees no change).
set -euo pipefail
pkg=$1 member=$2 out=$3
cache=${PODVISOR_CACHE:-/var/cache/podvisor}/debs
die() { echo "deb-file: $*" >&2; exit 1; }

ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
[[ -n $ver && $ver != "(none)" ]] ||
	die "apt knows no $pkg (for :arm64 run mk/deps.sh: it adds the architecture and updates the lists)"
name=${pkg%%:*} arch=${pkg##*:}
deb=$cache/${name}_${ver//:/%3a}_${arch}.deb
mkdir -p "$cache"
if [[ ! -f $deb ]]; then
	tmp=$(mktemp -d "$cache/dl.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	# APT::Sandbox::User=root: the download directory is root's; _apt could not write there.
	(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver") >&2 ||
		die "apt-get download $pkg=$ver failed"
	mv "$tmp"/*.deb "$deb"
fi
mkdir -p "$(dirname "$out")"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ".${member}" >"$out.tmp.$$" || { rm -f "$out.tmp.$$"; die "$member not in $deb"; }
chmod 0755 "$out.tmp.$$"
if cmp -s "$out.tmp.$$" "$out"; then rm -f "$out.tmp.$$"; else mv -f "$out.tmp.$$" "$out"; fi
