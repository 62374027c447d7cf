#!/usr/bin/env bash
# make install / make uninstall / the default CNI network (docs/install in README.md).
#
#   mk/install.sh install     binaries, guest kernel + initramfs, systemd unit, samples;
#                             a default config and CNI network only where there is none
#   mk/install.sh uninstall   remove what install added (a file changed since is kept)
#   mk/install.sh cni DIR     put the sample CNI network in DIR if DIR has no config
#
# Environment (from the Makefile): BUILD PREFIX DESTDIR SYSCONFDIR CNI_CONF_DIR SYSTEMD_UNIT_DIR.
# install records every file and directory it creates in
# $DESTDIR$PREFIX/lib/podvisor/installed-files ("sha256 path" / "dir path"), which is
# all uninstall removes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
CNI_CONF_DIR=${CNI_CONF_DIR:-/etc/cni/net.d}
SYSTEMD_UNIT_DIR=${SYSTEMD_UNIT_DIR:-$PREFIX/lib/systemd/system}
BINS=(podvisord podvisor-shim podvisor-shimctl)
CNI_SAMPLE=$here/manifests/cni/10-podvisor.conflist
MANIFEST=$PREFIX/lib/podvisor/installed-files

say() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

# A CNI config dir holds a network when it has a *.conflist, *.conf or *.json file.
cni_has_config() {
	compgen -G "$1/*.conflist" >/dev/null || compgen -G "$1/*.conf" >/dev/null ||
		compgen -G "$1/*.json" >/dev/null
}

declare -a entries=()
declare -A old_sum=()

# mkdir -p that records each directory it creates (as installed path, without DESTDIR).
make_dir() {
	local d=$1 missing=() p
	p=$d
	while [[ -n $p && $p != / && ! -d $DESTDIR$p ]]; do
		missing=("$p" "${missing[@]}")
		p=$(dirname "$p")
	done
	for p in "${missing[@]}"; do
		mkdir -m 0755 "$DESTDIR$p"
		entries+=("dir $p")
	done
}

put() { # put MODE SRC DEST
	make_dir "$(dirname "$3")"
	install -m "$1" "$2" "$DESTDIR$3"
	entries+=("$(sha256sum "$DESTDIR$3" | cut -d' ' -f1) $3")
}

# A file install writes only if absent; one from an earlier install stays recorded.
keep_or_put() { # keep_or_put MODE SRC DEST what
	if [[ -e $DESTDIR$3 ]]; then
		local sum
		sum=$(sha256sum "$DESTDIR$3" | cut -d' ' -f1)
		if [[ ${old_sum[$3]:-} == "$sum" ]]; then
			entries+=("$sum $3")
		else
			say "$4 $3 exists: left as it is"
		fi
		return
	fi
	put "$@"
	say "$4 installed: $3"
}

load_manifest() {
	[[ -f $DESTDIR$MANIFEST ]] || return 0
	local a b
	while read -r a b; do
		[[ $a == dir ]] && entries+=("dir $b") || old_sum[$b]=$a
	done <"$DESTDIR$MANIFEST"
}

do_install() {
	for f in "${BINS[@]}" ; do
		[[ -x $BUILD/bin/$f ]] || die "$BUILD/bin/$f missing: run make build first"
	done
	for f in kernel/vmlinux guest/initramfs.cpio; do
		[[ -f $BUILD/$f ]] || die "$BUILD/$f missing: run make build first"
	done
	load_manifest
	for f in "${BINS[@]}"; do
		put 0755 "$BUILD/bin/$f" "$PREFIX/bin/$f"
	done
	put 0644 "$BUILD/kernel/vmlinux" "$PREFIX/lib/podvisor/vmlinux"
	put 0644 "$BUILD/guest/initramfs.cpio" "$PREFIX/lib/podvisor/initramfs.cpio"
	# The arm64 guest (runtime handlers arm64 and arm64-x86, docs/arm64.md), when built.
	local a
	for a in Image:kernel/arm64/Image initramfs.cpio:guest/arm64/initramfs.cpio \
		initramfs-x86.cpio:guest/arm64/initramfs-x86.cpio; do
		if [[ -f $BUILD/${a#*:} ]]; then
			put 0644 "$BUILD/${a#*:}" "$PREFIX/lib/podvisor/arm64/${a%%:*}"
		fi
	done
	local unit
	unit=$(mktemp)
	sed "s|^ExecStart=/usr/local/bin/|ExecStart=$PREFIX/bin/|" "$here/manifests/systemd/podvisord.service" >"$unit"
	put 0644 "$unit" "$SYSTEMD_UNIT_DIR/podvisord.service"
	rm -f "$unit"
	put 0644 "$CNI_SAMPLE" "$PREFIX/share/podvisor/cni/10-podvisor.conflist"
	put 0644 "$here/manifests/kubelet/kubelet-config.yaml" "$PREFIX/share/podvisor/kubelet/kubelet-config.yaml"
	put 0644 "$here/manifests/kubelet/runtimeclass.yaml" "$PREFIX/share/podvisor/kubelet/runtimeclass.yaml"
	keep_or_put 0644 "$here/manifests/podvisor/config.json" "$SYSCONFDIR/podvisor/config.json" "default config"
	if cni_has_config "$DESTDIR$CNI_CONF_DIR"; then
		local sample=$CNI_CONF_DIR/10-podvisor.conflist
		if [[ -n ${old_sum[$sample]:-} && -e $DESTDIR$sample ]]; then
			keep_or_put 0644 "$CNI_SAMPLE" "$sample" "default CNI network"
		else
			say "CNI config dir $CNI_CONF_DIR already has a network: left as it is"
		fi
	else
		keep_or_put 0644 "$CNI_SAMPLE" "$CNI_CONF_DIR/10-podvisor.conflist" \
			"no CNI network configured; podvisor's sample bridge network (10.88.0.0/16 on cni0)"
	fi
	make_dir "$(dirname "$MANIFEST")"
	printf '%s\n' "${entries[@]}" | awk '!seen[$0]++' >"$DESTDIR$MANIFEST"
	say "done. Check the machine: $PREFIX/bin/podvisord --check"
	say "start it: systemctl daemon-reload && systemctl enable --now podvisord"
}

do_uninstall() {
	[[ -f $DESTDIR$MANIFEST ]] || die "nothing to uninstall: $DESTDIR$MANIFEST not found"
	local a b dirs=()
	while read -r a b; do
		if [[ $a == dir ]]; then
			dirs=("$b" "${dirs[@]}")
		elif [[ -e $DESTDIR$b ]]; then
			if [[ $(sha256sum "$DESTDIR$b" | cut -d' ' -f1) == "$a" ]]; then
				rm -f "$DESTDIR$b"
			else
				say "$b changed since it was installed: kept"
			fi
		fi
	done <"$DESTDIR$MANIFEST"
	rm -f "$DESTDIR$MANIFEST"
	# Directories install created, deepest first, if nothing else lives in them now.
	local d
	for d in $(printf '%s\n' "${dirs[@]}" | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-); do
		rmdir "$DESTDIR$d" 2>/dev/null || true
	done
	say "removed podvisor from $DESTDIR$PREFIX"
}

case ${1:-} in
install) do_install ;;
uninstall) do_uninstall ;;
cni)
	dir=${2:?usage: mk/install.sh cni DIR}
	if cni_has_config "$dir"; then
		exit 0
	fi
	mkdir -p "$dir"
	install -m 0644 "$CNI_SAMPLE" "$dir/10-podvisor.conflist"
	echo "no CNI network in $dir: installed podvisor's sample bridge network $dir/10-podvisor.conflist (10.88.0.0/16 on cni0)"
	;;
*) die "usage: mk/install.sh install|uninstall|cni DIR" ;;
esac
