#!/usr/bin/env bash
# Build the guest initramfs: podvisor-agent as /init plus the empty mount points
# it needs, as an uncompressed cpio (newc) so the kernel unpacks it with no work.
# Extra files (e.g. the x86_64 emulator of the arm64-x86 handler) are SRC:DEST pairs.
# Usage: guest-agent/mkinitramfs.sh <podvisor-agent> <out.cpio> [SRC:DEST ...]
set -euo pipefail
agent=$1
out=$2
shift 2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,run,tmp}
install -m 0755 "$agent" "$stage/init"
for pair in "$@"; do
	install -D -m 0755 "${pair%%:*}" "$stage/${pair#*:}"
done
mkdir -p "$(dirname "$out")"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --reproducible --quiet) >"$out.tmp"
mv "$out.tmp" "$out"
