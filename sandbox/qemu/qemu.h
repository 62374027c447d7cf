/* Private to the QEMU backend (and its unit tests): the command line it runs. */
#ifndef PV_SANDBOX_QEMU_H
#define PV_SANDBOX_QEMU_H

#include "vmm.h"

/*
 * acpi=off: ACPI-on microvm does not boot under TCG. pit=on,pic=on: TCG has no
 * TSC-deadline timer and the kernel checks its LAPIC timer against PIT ticks
 * (hangs without them); rtc=on: without a CMOS RTC the boot-time clock read spins
 * for a second (see kernel/boot-check.sh).
 */
#define SANDBOX_DEFAULT_MACHINE "microvm,acpi=off,x-option-roms=off,rtc=on,pit=on,pic=on,isa-serial=on"

/* arm64 pods: QEMU virt with a GICv3 (its device tree lists 32 virtio-mmio transports). */
#define SANDBOX_ARM64_MACHINE "virt,gic-version=3"

/* What differs between the machines of the one QEMU backend (machine.c). */
struct qemu_machine {
	enum vmm_arch arch;
	const char *binary;   /* default QEMU binary */
	const char *machine;  /* default -machine */
	const char *cpu_tcg;  /* -cpu under TCG ("host" when accelerated) */
	const char *cmdline;  /* guest kernel command line before the accelerator's additions */
	bool tcg_timer_hints; /* x86: tsc_early_khz= / lpj= under TCG */
};

/* The machine for a guest architecture, NULL for an unknown one. */
const struct qemu_machine *sandbox_qemu_machine(enum vmm_arch arch);

/* Build the QEMU argv (NULL-terminated, heap, free with sandbox_argv_free). */
int sandbox_qemu_argv(const struct vmm_config *cfg, char ***argv_out, pv_err_t **err);
void sandbox_argv_free(char **argv);
/* The guest kernel command line for a config (heap string). */
char *sandbox_qemu_kernel_cmdline(const struct vmm_config *cfg);

#endif
