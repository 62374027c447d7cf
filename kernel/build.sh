#!/usr/bin/env bash
# Build a podvisor guest kernel from Debian's linux-source-6.1 package, configured
# as `tinyconfig` + the architecture's fragment:
#   x86_64 (default)  kernel/podvisor.config -> uncompressed ELF vmlinux with a PVH entry
#                     (QEMU microvm boots it with -kernel)
#   arm64             kernel/arm64.config    -> uncompressed arm64 Image (QEMU virt boots it
#                     with -kernel), cross-compiled with Debian's gcc-aarch64-linux-gnu
#
# Usage: kernel/build.sh [ARCH] [OUTPUT]
#   default OUTPUT: <repo>/build/kernel/vmlinux (x86_64), <repo>/build/kernel/arm64/Image (arm64)
# Writes OUTPUT and, next to it, `config` (the final .config).
#
# Cache: a fresh build takes 10-20 minutes on two cores, so results live
# outside the repository clone, in
#     ${PODVISOR_CACHE:-/var/cache/podvisor}/kernel/<key>/{vmlinux|Image,config}
# where <key> = sha256(ARCH + the fragment + this script + linux-source-6.1
# package version). Changing any of them gives a new key and a rebuild;
# a hit only copies the files out (and leaves OUTPUT untouched if identical,
# so make does not rebuild what depends on it). Builds run in a temporary
# directory under the cache, hold a flock so concurrent builds do not
# collide, and publish <key>/ with one rename, so a half-built kernel is
# never visible. To force a rebuild, delete <key>/ (or the whole cache).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "kernel: $*" >&2; exit 1; }

arch=x86_64
case ${1:-} in
x86_64 | arm64) arch=$1; shift ;;
aarch64) arch=arm64; shift ;;
esac
# Per architecture: fragment, make target, the file it produces, cross compiler prefix.
case $arch in
x86_64)
	fragment=$here/podvisor.config target=vmlinux artifact=vmlinux product=vmlinux
	cross= default_out=build/kernel/vmlinux
	;;
arm64)
	fragment=$here/arm64.config target=Image artifact=arch/arm64/boot/Image product=Image
	cross=aarch64-linux-gnu- default_out=build/kernel/arm64/Image
	;;
esac
[[ $(uname -m) == "${arch/arm64/aarch64}" ]] && cross=
out=${1:-$(dirname "$here")/$default_out}
tarball=/usr/src/linux-source-6.1.tar.xz
cache=${PODVISOR_CACHE:-/var/cache/podvisor}/kernel

pkgver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null) ||
	die "linux-source-6.1 is not installed (apt-get install linux-source-6.1)"
key=$({ echo "$arch"; cat "$fragment" "${BASH_SOURCE[0]}"; echo "$pkgver"; } | sha256sum | cut -d' ' -f1)
entry=$cache/$key

# Copy the cached kernel and config to the output, touching nothing that is unchanged.
install_outputs() {
	local dir
	dir=$(dirname "$out")
	mkdir -p "$dir"
	install_file "$entry/$product" "$out"
	install_file "$entry/config" "$dir/config"
}

install_file() {
	cmp -s "$1" "$2" && return 0
	cp "$1" "$2.tmp.$$"
	mv -f "$2.tmp.$$" "$2"
}

# Print every line of the fragment that the final .config does not honour.
unmet_options() {
	local config=$1 line name
	while IFS= read -r line; do
		if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
			grep -qxF "$line" "$config" && continue
			name=${BASH_REMATCH[1]}
			echo "  $line  (got: $(grep -E "^(# )?${name}[= ]" "$config" || echo 'absent: a dependency is missing'))"
		elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
			name=${BASH_REMATCH[1]}
			grep -q "^$name=" "$config" || continue
			echo "  $line  (got: $(grep "^$name=" "$config"): something selects it)"
		fi
	done <"$fragment"
}

# Fast path: no lock needed, <key>/ only ever appears complete.
if [[ -f $entry/$product ]]; then
	install_outputs
	exit 0
fi

[[ -f $tarball ]] || die "$tarball missing"
for tool in make gcc "${cross}gcc" flex bison bc xz; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install build-essential flex bison bc xz-utils libelf-dev${cross:+ gcc-aarch64-linux-gnu})"
done
mkdir -p "$cache"
exec 9>"$cache/.lock"
if ! flock -n 9; then
	echo "kernel: waiting for another build to finish ($cache/.lock)" >&2
	flock 9
fi
if [[ -f $entry/$product ]]; then # built by whoever held the lock
	install_outputs
	exit 0
fi

# Leftovers of builds that were killed; safe to remove while we hold the lock.
rm -rf "$cache"/tmp.*
work=$(mktemp -d "$cache/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$cache/last-build.log
src=$work/linux

# The parent make's flags and jobserver must not leak into the kernel build.
unset MAKEFLAGS MFLAGS MAKELEVEL KBUILD_OUTPUT
# The same inputs should give the same banner whoever builds.
export KBUILD_BUILD_USER=podvisor KBUILD_BUILD_HOST=podvisor
kmake() { make -C "$src" ARCH="$arch" ${cross:+CROSS_COMPILE=$cross} "$@"; }

start=$SECONDS
echo "kernel: building $arch $key (log: $log)" >&2
mkdir "$src"
tar -xf "$tarball" -C "$src" --strip-components=1

{
	kmake tinyconfig
	(cd "$src" && scripts/kconfig/merge_config.sh -m .config "$fragment")
	kmake olddefconfig
} >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "configuration failed"; }

unmet=$(unmet_options "$src/.config")
if [[ -n $unmet ]]; then
	echo "kernel: these $(basename "$fragment") options did not take effect:" >&2
	echo "$unmet" >&2
	die "fix kernel/$(basename "$fragment") (add the missing dependency or drop the option)"
fi

kmake -j"$(nproc)" "$target" >>"$log" 2>&1 || { tail -n 40 "$log" >&2; die "build failed (full log: $log)"; }

mkdir "$work/result"
cp "$src/$artifact" "$work/result/$product"
cp "$src/.config" "$work/result/config"
rm -rf "$src" # free the ~1.5 GB tree before publishing
mv -T "$work/result" "$entry"

install_outputs
echo "kernel: $arch built in $((SECONDS - start)) s"
