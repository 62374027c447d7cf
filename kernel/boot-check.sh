#!/usr/bin/env bash
# Boot a guest kernel (TCG) with a throwaway busybox initramfs whose /init mounts
# /proc, prints PODVISOR-BOOT-OK and shuts the VM down: an x86_64 vmlinux on QEMU
# microvm, or an arm64 Image on QEMU virt (told apart by the Image header's magic).
# Passes if the marker shows up on the serial console before the timeout; reports
# the wall time to the marker and to QEMU's exit.
#
# Usage: kernel/boot-check.sh [KERNEL]   (default: build/kernel/vmlinux)
# Env:   BOOT_TIMEOUT (s, default 60), BOOT_APPEND (extra kernel arguments),
#        BOOT_MACHINE (-M value), BOOT_SMP (vCPUs, default 1),
#        BOOT_TSC_KHZ (x86: host TSC rate; default: from the host's dmesg),
#        BOOT_CPU (arm64 -cpu, default cortex-a57), BOOT_KEEP_LOG=1 (print the whole console log)
# arm64 needs an arm64 busybox: Debian's busybox-static:arm64, fetched with `apt-get download`
# (or BOOT_BUSYBOX=/path/to/an/arm64/busybox).
set -euo pipefail

kernel=${1:-build/kernel/vmlinux}
timeout_s=${BOOT_TIMEOUT:-60}
marker=PODVISOR-BOOT-OK
busybox=/bin/busybox # from busybox-static

[[ -f $kernel ]] || { echo "boot-check: no kernel at $kernel" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# An arm64 Image carries "ARM\x64" at offset 56 of its header.
arch=x86_64
[[ $(od -An -c -j56 -N4 "$kernel" | tr -d ' ') == 'ARMd' ]] && arch=arm64
if [[ $arch == arm64 ]]; then
	busybox=${BOOT_BUSYBOX:-}
	if [[ -z $busybox ]]; then
		(cd "$tmp" && apt-get download -qq busybox-static:arm64 >/dev/null) ||
			{ echo "boot-check: apt-get download busybox-static:arm64 failed" >&2; exit 1; }
		dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/deb"
		busybox=$tmp/deb/bin/busybox
	fi
fi
[[ -x $busybox ]] || { echo "boot-check: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }

# --- initramfs: /bin/busybox + /init, cpio newc, uncompressed ---------------
root=$tmp/root
mkdir -p "$root/bin" "$root/proc" "$root/dev"
cp "$busybox" "$root/bin/busybox"
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
read -r uptime _ </proc/uptime
echo "PODVISOR-BOOT-OK guest-uptime=${uptime}s"
/bin/busybox reboot -f
EOF
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$tmp/initrd.cpio"

# --- boot -------------------------------------------------------------------
# Under TCG the guest TSC ticks at the host's TSC rate, and calibrating it
# against the emulated PIT often fails (the guest then runs on
# the 10 ms jiffies clocksource). Tell the guest the rate instead; with it,
# lpj is derived from the TSC too, so no lpj= is needed.
host_tsc_khz() {
	local mhz
	mhz=$(dmesg 2>/dev/null | sed -n -e 's/.*tsc: Detected \([0-9.]*\) MHz processor.*/\1/p' \
		-e 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' | tail -n 1)
	[[ -n $mhz ]] && awk -v mhz="$mhz" 'BEGIN { printf "%d\n", mhz * 1000 }'
}
tsc_khz=${BOOT_TSC_KHZ:-$(host_tsc_khz || true)}
[[ -n $tsc_khz ]] || echo "boot-check: host TSC rate unknown (set BOOT_TSC_KHZ); guest will calibrate" >&2

# Machine: pit=on and pic=on are required: TCG offers no TSC-deadline timer,
# so the kernel checks its LAPIC timer against PIT ticks (IRQ 0 through the
# PIC) and is left with no timer at all, hanging, without them. rtc=on: with no
# RTC the kernel's boot-time CMOS read spins for 1 s waiting for the
# update-in-progress bit (this is the arch code, not RTC_DRV_CMOS, which stays out).
# Shutdown: without ACPI there is no power-off method, so `poweroff -f` only
# halts the CPU and QEMU keeps running. /init reboots instead: reboot=t makes
# that a triple fault (panic=-1 does the same on a panic) and -no-reboot turns
# it into QEMU exiting.
append="console=ttyS0 reboot=t panic=-1 quiet acpi=off${tsc_khz:+ tsc_early_khz=$tsc_khz} ${BOOT_APPEND:-}"
x86_qemu=(qemu-system-x86_64
	-M "${BOOT_MACHINE:-microvm,acpi=off,x-option-roms=off,rtc=on,pit=on,pic=on,isa-serial=on}"
	-accel tcg -cpu max -m 256 -smp "${BOOT_SMP:-1}"
	-nodefaults -no-user-config -nographic -no-reboot
	-serial stdio
	-kernel "$kernel" -initrd "$tmp/initrd.cpio"
	-append "$append")

# arm64: QEMU virt writes the device tree itself (GIC, PL011, PSCI, arch timer, virtio-mmio
# transports); the guest's reboot is a PSCI reset, which -no-reboot turns into QEMU exiting.
arm64_qemu=(qemu-system-aarch64
	-M "${BOOT_MACHINE:-virt,gic-version=3}"
	-accel tcg -cpu "${BOOT_CPU:-cortex-a57}" -m 256 -smp "${BOOT_SMP:-1}"
	-nodefaults -no-user-config -nographic -no-reboot
	-serial stdio
	-kernel "$kernel" -initrd "$tmp/initrd.cpio"
	-append "console=ttyAMA0 panic=-1 quiet ${BOOT_APPEND:-}")
if [[ $arch == arm64 ]]; then qemu=("${arm64_qemu[@]}"); else qemu=("${x86_qemu[@]}"); fi

start=$(date +%s%N)
ms_since_start() { echo $((($(date +%s%N) - start) / 1000000)); }
rc=0
timeout "$timeout_s" "${qemu[@]}" </dev/null 2>&1 | while IFS= read -r line; do
	line=${line%$'\r'}
	printf '%s\n' "$line" >>"$tmp/console.log"
	if [[ $line == *"$marker"* ]]; then ms_since_start >"$tmp/marker_ms"; fi
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
grep -m1 -o "$marker.*" "$tmp/console.log"
echo "boot-check: $kernel: marker after $(cat "$tmp/marker_ms") ms, qemu exited after $exit_ms ms (rc=$rc)"
