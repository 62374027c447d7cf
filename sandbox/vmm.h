/*
 * The VMM layer: one micro-VM per pod behind an ops table (QEMU today).
 *
 * The caller (the shim) fills a struct vmm_config, calls sandbox_vmm_new()
 * then vmm->ops->start(); hot-plugs container disks through disk_add /
 * disk_remove and stops the VM with stop(). Nothing here prints: every
 * function returns 0 or a negative value with *err filled.
 */
#ifndef PV_SANDBOX_VMM_H
#define PV_SANDBOX_VMM_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

enum vmm_accel {
	VMM_ACCEL_AUTO = 0,
	VMM_ACCEL_KVM,
	VMM_ACCEL_HVF,
	VMM_ACCEL_TCG,
};

const char *sandbox_accel_name(enum vmm_accel a);
/* "auto", "kvm", "hvf", "tcg"; -1 on anything else. */
int sandbox_accel_parse(const char *s, enum vmm_accel *out);

/*
 * Pick the accelerator. `want` != AUTO is honoured as is (a config
 * override). AUTO: KVM when `kvm_dev` (normally "/dev/kvm") opens and
 * answers KVM_GET_API_VERSION and KVM_CREATE_VM, HVF on macOS, else TCG.
 * `why` (if not NULL) gets a heap string saying why, for the caller to log.
 */
enum vmm_accel sandbox_accel_detect(enum vmm_accel want, const char *kvm_dev, char **why);

/* How big a VM a pod gets: defaults when the pod gives no limits, plus overhead. */
struct vmm_sizing {
	unsigned default_vcpus;       /* when the pod sets no CPU limit (default 1) */
	unsigned max_vcpus;           /* cap, 0: number of host CPUs */
	uint64_t default_memory_mib;  /* when the pod sets no memory limit (default 256) */
	uint64_t memory_overhead_mib; /* added to the pod's limit for kernel + agent (default 64) */
	uint64_t min_memory_mib;      /* floor (default 128) */
};

void sandbox_sizing_defaults(struct vmm_sizing *s);
/* cpu_quota/cpu_period in CFS units (0 = unset), memory_limit in bytes (0 = unset). */
void sandbox_sizing_compute(const struct vmm_sizing *s, int64_t cpu_quota, int64_t cpu_period,
			    int64_t memory_limit, unsigned *vcpus, uint64_t *memory_mib);

/*
 * acpi=off: ACPI-on microvm does not boot under TCG. pit=on,pic=on: TCG has no
 * TSC-deadline timer and the kernel checks its LAPIC timer against PIT ticks
 * (hangs without them); rtc=on: without a CMOS RTC the boot-time clock read spins
 * for a second (see kernel/boot-check.sh).
 */
#define SANDBOX_DEFAULT_MACHINE "microvm,acpi=off,x-option-roms=off,rtc=on,pit=on,pic=on,isa-serial=on"

/* mount_tag of the pod's volume share (the agent mounts it by this name). */
#define SANDBOX_SHARE_TAG "podvisor.vol"

struct vmm_config {
	const char *name;            /* pod id, used for -name */
	const char *qemu_binary;     /* default "qemu-system-x86_64" */
	const char *kernel;          /* guest kernel (vmlinux / bzImage) */
	const char *initramfs;       /* guest initramfs.cpio with the agent as /init */
	const char *kernel_args;     /* extra kernel command line, may be NULL */
	const char *machine;         /* -machine value, NULL: SANDBOX_DEFAULT_MACHINE */
	enum vmm_accel accel;        /* resolved (not AUTO) by the caller or by start() */
	unsigned vcpus;
	uint64_t memory_mib;
	unsigned tcg_tb_size_mib;    /* TCG translation cache, 0: QEMU's default */
	unsigned long lpj;           /* loops_per_jiffy for TCG boots without a TSC rate, 0: default */
	unsigned long tsc_khz;       /* host TSC rate given to TCG guests (tsc_early_khz=), 0: lpj= */
	const char *agent_socket;    /* unix socket path of the agent's virtio-serial port */
	const char *qmp_socket;      /* unix socket path of QMP */
	const char *log_path;        /* QEMU stderr + guest console (appended) */
	const char *tap;             /* optional tap device (by name: QEMU must see it) for virtio-net */
	const char *mac;             /* MAC for the virtio-net device, with tap or tap_fd */
	int tap_fd;                  /* an open tap queue to hand to QEMU instead (-1: none) */
	/* Optional host directory shared read-write with the guest over virtio-9p (tag
	 * SANDBOX_SHARE_TAG): the pod's volumes, bind-mounted into it by podvisord. */
	const char *share_dir;
	/* Pre-opened listening sockets handed to QEMU (-1: QEMU creates the path). */
	int agent_listen_fd;
	int qmp_listen_fd;
};

/* Build the QEMU argv (NULL-terminated, heap, free with sandbox_argv_free). */
int sandbox_qemu_argv(const struct vmm_config *cfg, char ***argv_out, pv_err_t **err);
void sandbox_argv_free(char **argv);
/* The guest kernel command line for a config (heap string). */
char *sandbox_qemu_kernel_cmdline(const struct vmm_config *cfg);

/* A container rootfs disk hot-added to the VM. */
struct vmm_disk {
	const char *id;       /* unique per pod, e.g. the container id; names QMP nodes */
	const char *path;     /* the qcow2 overlay (or any image QEMU opens) */
	const char *format;   /* "qcow2" (default) or "raw" */
	int read_only;
	unsigned scsi_id;     /* SCSI target on the pod's controller, 0..255 */
	const char *serial;   /* SCSI serial the guest can match (<= 36 chars) */
};

struct vmm;

struct vmm_ops {
	const char *name;
	/* Spawn the VMM process (does not wait for the guest). */
	int (*start)(struct vmm *vm, pv_err_t **err);
	/* Graceful quit, then SIGKILL after timeout_ms; reaps the process. */
	int (*stop)(struct vmm *vm, int timeout_ms, pv_err_t **err);
	int (*disk_add)(struct vmm *vm, const struct vmm_disk *disk, int timeout_ms, pv_err_t **err);
	int (*disk_remove)(struct vmm *vm, const char *id, int timeout_ms, pv_err_t **err);
	void (*free)(struct vmm *vm);
};

struct qmp;

struct vmm {
	const struct vmm_ops *ops;
	struct vmm_config cfg;   /* strings owned (deep copy) */
	pid_t pid;               /* VMM process, 0 when not running */
	int pidfd;               /* pidfd of the VMM process, -1 if none */
	struct qmp *qmp;         /* QMP connection once started */
	int64_t started_ns;      /* realtime */
};

/* A VM for `cfg` (copied) with the named backend ("qemu", or NULL for the default). */
int sandbox_vmm_new(const char *backend, const struct vmm_config *cfg, struct vmm **out, pv_err_t **err);
void sandbox_vmm_free(struct vmm *vm);

/* qemu-img create -f qcow2 -F raw -b <base> <overlay> */
int sandbox_overlay_create(const char *qemu_img, const char *base, const char *overlay, pv_err_t **err);

/* The host's TSC rate in kHz, measured against CLOCK_MONOTONIC (~10 ms); 0 if unknown.
 * A TCG guest's TSC ticks at this rate, and calibrating it against the emulated PIT
 * is unreliable, so the guest is told (tsc_early_khz=). */
unsigned long sandbox_host_tsc_khz(void);

/* Last `max` bytes of a file as a string (for "VM did not start" errors). */
char *sandbox_file_tail(const char *path, size_t max);

#endif
