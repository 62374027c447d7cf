#!/usr/bin/env bash
# Build the guest initramfs: podvisor-agent as /init plus the empty mount points
# it needs, as an uncompressed cpio (newc) so the kernel unpacks it with no work.
# Usage: guest-agent/mkinitramfs.sh <podvisor-agent> <out.cpio>
set -euo pipefail
agent=$1
out=$2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,run,tmp}
install -m 0755 "$agent" "$stage/init"
mkdir -p "$(dirname "$out")"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --reproducible --quiet) >"$out.tmp"
mv "$out.tmp" "$out"
