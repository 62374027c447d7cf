#!/usr/bin/env bash
# Build the podvisor guest kernel: an uncompressed x86_64 vmlinux with a PVH
# entry point, configured as `tinyconfig` + kernel/podvisor.config, from
# Debian's linux-source-6.1 package.
#
# Usage: kernel/build.sh [OUTPUT]    (default: <repo>/build/kernel/vmlinux)
# Writes OUTPUT and, next to it, `config` (the final .config).
#
# Cache: a fresh build takes 10-20 minutes on two cores, so results live
# outside the repository clone, in
#     ${PODVISOR_CACHE:-/var/cache/podvisor}/kernel/<key>/{vmlinux,config}
# where <key> = sha256(podvisor.config + this script + linux-source-6.1
# package version). Changing any of the three gives a new key and a rebuild;
# a hit only copies the files out (and leaves OUTPUT untouched if identical,
# so make does not rebuild what depends on it). Builds run in a temporary
# directory under the cache, hold a flock so concurrent builds do not
# collide, and publish <key>/ with one rename, so a half-built kernel is
# never visible. To force a rebuild, delete <key>/ (or the whole cache).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$(dirname "$here")/build/kernel/vmlinux}
fragment=$here/podvisor.config
tarball=/usr/src/linux-source-6.1.tar.xz
cache=${PODVISOR_CACHE:-/var/cache/podvisor}/kernel

die() { echo "kernel: $*" >&2; exit 1; }

pkgver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null) ||
	die "linux-source-6.1 is not installed (apt-get install linux-source-6.1)"
key=$({ cat "$fragment" "${BASH_SOURCE[0]}"; echo "$pkgver"; } | sha256sum | cut -d' ' -f1)
entry=$cache/$key

# Copy the cached kernel and config to the output, touching nothing that is unchanged.
install_outputs() {
	local dir
	dir=$(dirname "$out")
	mkdir -p "$dir"
	install_file "$entry/vmlinux" "$out"
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
if [[ -f $entry/vmlinux ]]; then
	install_outputs
	exit 0
fi

[[ -f $tarball ]] || die "$tarball missing"
for tool in make gcc flex bison bc xz; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install build-essential flex bison bc xz-utils libelf-dev)"
done
mkdir -p "$cache"
exec 9>"$cache/.lock"
if ! flock -n 9; then
	echo "kernel: waiting for another build to finish ($cache/.lock)" >&2
	flock 9
fi
if [[ -f $entry/vmlinux ]]; then # built by whoever held the lock
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
kmake() { make -C "$src" ARCH=x86_64 "$@"; }

start=$SECONDS
echo "kernel: building $key (log: $log)" >&2
mkdir "$src"
tar -xf "$tarball" -C "$src" --strip-components=1

{
	kmake tinyconfig
	(cd "$src" && scripts/kconfig/merge_config.sh -m .config "$fragment")
	kmake olddefconfig
} >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "configuration failed"; }

unmet=$(unmet_options "$src/.config")
if [[ -n $unmet ]]; then
	echo "kernel: these podvisor.config options did not take effect:" >&2
	echo "$unmet" >&2
	die "fix kernel/podvisor.config (add the missing dependency or drop the option)"
fi

kmake -j"$(nproc)" vmlinux >>"$log" 2>&1 || { tail -n 40 "$log" >&2; die "build failed (full log: $log)"; }

mkdir "$work/result"
cp "$src/vmlinux" "$work/result/vmlinux"
cp "$src/.config" "$work/result/config"
rm -rf "$src" # free the ~1.5 GB tree before publishing
mv -T "$work/result" "$entry"

install_outputs
echo "kernel: built in $((SECONDS - start)) s"
