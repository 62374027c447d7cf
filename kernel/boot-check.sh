#!/usr/bin/env bash
# Boot a guest kernel on QEMU microvm (TCG) with a throwaway busybox initramfs
# whose /init mounts /proc, prints PODVISOR-BOOT-OK and powers off. Passes if
# the marker shows up on the serial console before the timeout; reports the
# wall time to the marker and to QEMU's exit.
#
# Usage: kernel/boot-check.sh [KERNEL]   (default: build/kernel/vmlinux)
# Env:   BOOT_TIMEOUT (s, default 60), BOOT_APPEND (extra kernel arguments),
#        BOOT_KEEP_LOG=1 (print the whole console log)
set -euo pipefail

kernel=${1:-build/kernel/vmlinux}
timeout_s=${BOOT_TIMEOUT:-60}
marker=PODVISOR-BOOT-OK
busybox=/bin/busybox # from busybox-static

[[ -f $kernel ]] || { echo "boot-check: no kernel at $kernel" >&2; exit 1; }
[[ -x $busybox ]] || { echo "boot-check: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- initramfs: /bin/busybox + /init, cpio newc, uncompressed ---------------
root=$tmp/root
mkdir -p "$root/bin" "$root/proc" "$root/dev"
cp "$busybox" "$root/bin/busybox"
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
read -r uptime _ </proc/uptime
echo "PODVISOR-BOOT-OK guest-uptime=${uptime}s"
/bin/busybox poweroff -f
EOF
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$tmp/initrd.cpio"

# --- boot -------------------------------------------------------------------
# lpj: skip the delay-loop calibration, which is slow and noisy under TCG.
# reboot=t + panic=-1 + -no-reboot: poweroff -f without ACPI ends in a triple
# fault (or an immediate panic reboot), and -no-reboot turns that into QEMU exiting.
append="console=ttyS0 reboot=t panic=-1 lpj=4000000 quiet acpi=off ${BOOT_APPEND:-}"
qemu=(qemu-system-x86_64
	-M microvm,acpi=off,x-option-roms=off,rtc=off,pit=off,pic=off,isa-serial=on
	-accel tcg -cpu max -m 256 -smp 1
	-nodefaults -no-user-config -nographic -no-reboot
	-serial stdio
	-kernel "$kernel" -initrd "$tmp/initrd.cpio"
	-append "$append")

start=$(date +%s%N)
ms_since_start() { echo $((($(date +%s%N) - start) / 1000000)); }
rc=0
timeout "$timeout_s" "${qemu[@]}" </dev/null 2>&1 | while IFS= read -r line; do
	line=${line%$'\r'}
	printf '%s\n' "$line" >>"$tmp/console.log"
	[[ $line == *"$marker"* ]] && ms_since_start >"$tmp/marker_ms"
done || rc=$?
exit_ms=$(ms_since_start)

if [[ ${BOOT_KEEP_LOG:-} == 1 ]]; then
	cat "$tmp/console.log"
fi
if [[ ! -f $tmp/marker_ms ]]; then
	echo "boot-check: FAIL: no $marker within ${timeout_s}s (rc=$rc); console:" >&2
	tail -n 40 "$tmp/console.log" >&2 || true
	exit 1
fi
echo "$(grep -m1 -o "$marker.*" "$tmp/console.log")"
echo "boot-check: $kernel: marker after $(cat "$tmp/marker_ms") ms, qemu exited after $exit_ms ms (rc=$rc)"
