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

/* Build the QEMU argv (NULL-terminated, heap, free with sandbox_argv_free). */
int sandbox_qemu_argv(const struct vmm_config *cfg, char ***argv_out, pv_err_t **err);
void sandbox_argv_free(char **argv);
/* The guest kernel command line for a config (heap string). */
char *sandbox_qemu_kernel_cmdline(const struct vmm_config *cfg);

#endif
