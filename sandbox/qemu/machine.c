/*
 * The two machines behind the one QEMU backend: x86_64 microvm and arm64 virt. Both put
 * their devices on virtio-mmio (microvm's command-line transports, virt's device-tree ones),
 * so the device list (cmdline.c) is the same for both; what differs is here.
 */
#include "qemu.h"

#include <stddef.h>

static const struct qemu_machine machines[] = {
	[VMM_ARCH_X86_64] = {
		.arch = VMM_ARCH_X86_64,
		.binary = "qemu-system-x86_64",
		.machine = SANDBOX_DEFAULT_MACHINE,
		.cpu_tcg = "max",
		/* reboot=t + -no-reboot: without ACPI a reset (triple fault) is how the VM ends. */
		.cmdline = "console=ttyS0 reboot=t panic=-1 acpi=off rdinit=/init quiet",
		.tcg_timer_hints = true,
	},
	[VMM_ARCH_ARM64] = {
		.arch = VMM_ARCH_ARM64,
		.binary = "qemu-system-aarch64",
		/* GICv3: more than 8 vCPUs, and what KVM and HVF hosts have. */
		.machine = SANDBOX_ARM64_MACHINE,
		/* cortex-a57 boots faster under TCG than max (no pointer auth, SVE, MTE to emulate;
		 * docs/arm64.md has the numbers). */
		.cpu_tcg = "cortex-a57",
		/* The arch timer needs no calibration hints; reboot is a PSCI reset. */
		.cmdline = "console=ttyAMA0 panic=-1 rdinit=/init quiet",
		.tcg_timer_hints = false,
	},
};

const struct qemu_machine *sandbox_qemu_machine(enum vmm_arch arch)
{
	return (unsigned)arch < sizeof(machines) / sizeof(machines[0]) ? &machines[arch] : NULL;
}
