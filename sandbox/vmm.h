/*
 * The VMM layer: one micro-VM per pod, behind an opaque handle. Its public face.
 *
 * The caller (the shim) fills a struct vmm_config, makes a handle with
 * sandbox_vmm_new() and starts it; then it watches sandbox_vmm_wait_fd() in its event
 * loop and calls sandbox_vmm_reap() when it turns readable (the one place the VMM
 * process is reaped), hot-plugs container disks, and stops the VM. How the VM is made
 * (QEMU today: sandbox/qemu/; its pid, pidfd and QMP connection) is private to
 * sandbox/: a second VMM is a new backend behind the ops table in vmm_impl.h, not a
 * branch in the caller. Nothing here prints: every function returns 0 or a negative
 * value with *err filled.
 *
 * Threads: disk_add/disk_remove block (they wait for the VMM's answers) and may run on
 * a worker thread while the owner's loop calls wait_fd/reap/kill/info/stop; nothing
 * else is safe to call concurrently. Free only once no worker uses the handle.
 */
#ifndef PV_SANDBOX_VMM_H
#define PV_SANDBOX_VMM_H

#include <stdbool.h>
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
 * The accelerator probe (its one owner: podvisord runs it once and hands the result to
 * every shim). `want` != AUTO is honoured as is (a config override). AUTO: KVM when
 * `kvm_dev` (normally "/dev/kvm") opens and answers KVM_GET_API_VERSION and
 * KVM_CREATE_VM and runs a guest at native speed, HVF on macOS, else TCG. `why` (if not
 * NULL) gets a heap string saying why, for the caller to log.
 */
enum vmm_accel sandbox_accel_detect(enum vmm_accel want, const char *kvm_dev, char **why);

/* The guest architecture: which machine the backend builds (x86_64: QEMU microvm, arm64:
 * QEMU virt; sandbox/qemu/machine.c). Only the host's own architecture can be accelerated. */
enum vmm_arch {
	VMM_ARCH_X86_64 = 0,
	VMM_ARCH_ARM64,
};

const char *sandbox_arch_name(enum vmm_arch a);
/* "x86_64" (or "amd64"), "arm64" (or "aarch64"); -1 on anything else. */
int sandbox_arch_parse(const char *s, enum vmm_arch *out);

/* How big a VM a pod gets (the one owner of that policy): defaults when the pod gives
 * no limits, plus overhead. */
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

struct vmm_config {
	const char *name;            /* pod id, used for -name */
	const char *qemu_binary;     /* default: the arch's ("qemu-system-x86_64", "qemu-system-aarch64") */
	const char *kernel;          /* guest kernel (vmlinux / bzImage; arm64: Image) */
	const char *initramfs;       /* guest initramfs.cpio with the agent as /init */
	const char *kernel_args;     /* extra kernel command line, may be NULL */
	const char *machine;         /* -machine value, NULL: the backend's default for arch */
	enum vmm_arch arch;          /* guest architecture (default x86_64) */
	enum vmm_accel accel;        /* resolved (not AUTO) by the caller: sandbox_accel_detect() */
	unsigned vcpus;
	uint64_t memory_mib;
	unsigned tcg_tb_size_mib;    /* TCG translation cache, 0: QEMU's default */
	unsigned long lpj;           /* loops_per_jiffy for TCG boots without a TSC rate, 0: default */
	unsigned long tsc_khz;       /* host TSC rate given to TCG guests (tsc_early_khz=), 0: lpj= */
	const char *agent_socket;    /* unix socket path of the agent's channel */
	const char *qmp_socket;      /* unix socket path of the VMM's control channel */
	const char *log_path;        /* VMM stderr + guest console (appended) */
	const char *tap;             /* optional tap device (by name: the VMM must see it) for virtio-net */
	const char *mac;             /* MAC for the virtio-net device, with tap or tap_fd */
	int tap_fd;                  /* an open tap queue to hand to the VMM instead (-1: none) */
	/* Optional host directory shared read-write with the guest over virtio-9p (tag
	 * PV_GUEST_SHARE_TAG): the pod's volumes, bind-mounted into it by podvisord. */
	const char *share_dir;
	/* Pre-opened listening sockets handed to the VMM (-1: it creates the path). */
	int agent_listen_fd;
	int qmp_listen_fd;
};

/* A container rootfs disk hot-added to the VM. */
struct vmm_disk {
	const char *id;       /* unique per pod, e.g. the container id; names VMM nodes */
	const char *path;     /* the qcow2 overlay (or any image the VMM opens) */
	const char *format;   /* "qcow2" (default) or "raw" */
	int read_only;
	unsigned scsi_id;     /* SCSI target on the pod's controller, < PV_GUEST_SCSI_MAX_TARGETS */
	const char *serial;   /* SCSI serial the guest can match (<= 36 chars) */
};

/* What the owner may show about a VM (status, logs). */
struct vmm_info {
	const char *backend;  /* "qemu" */
	pid_t pid;            /* the VMM process, 0 when not running (for display only) */
	enum vmm_accel accel;
	unsigned vcpus;
	uint64_t memory_mib;
};

struct vmm;

/* A VM for `cfg` (copied) with the named backend ("qemu", or NULL for the default). */
int sandbox_vmm_new(const char *backend, const struct vmm_config *cfg, struct vmm **out, pv_err_t **err);
void sandbox_vmm_free(struct vmm *vm);

/* Spawn the VMM process (does not wait for the guest). */
int sandbox_vmm_start(struct vmm *vm, pv_err_t **err);
/* An fd that turns readable when the VMM process exits (-1 before start/after reap). */
int sandbox_vmm_wait_fd(const struct vmm *vm);
/* Reap the VMM process if it has exited: 1 (with *why, a heap string saying how, if why
 * is not NULL) once it is gone, 0 while it runs. Never blocks. The one place the VMM
 * process is waited for. */
int sandbox_vmm_reap(struct vmm *vm, char **why);
/* The same, waiting up to timeout_ms for the exit (a broken agent channel: did the VM die?). */
int sandbox_vmm_reap_wait(struct vmm *vm, int timeout_ms, char **why);
bool sandbox_vmm_running(const struct vmm *vm);
/* SIGKILL the VMM process (a hung guest); reap it with sandbox_vmm_reap. */
void sandbox_vmm_kill(struct vmm *vm);
/*
 * Stop the VM and reap it: give the guest grace_ms to end the VMM by itself (after the
 * agent's shutdown), then ask the VMM to quit, then SIGKILL it once timeout_ms (from the
 * call) has passed. Returns once it is gone. Safe on a VM that is not running.
 */
void sandbox_vmm_stop(struct vmm *vm, int grace_ms, int timeout_ms);

/* Hot-plug (blocking, worker-thread safe, see above). */
int sandbox_vmm_disk_add(struct vmm *vm, const struct vmm_disk *disk, int timeout_ms, pv_err_t **err);
int sandbox_vmm_disk_remove(struct vmm *vm, const char *id, int timeout_ms, pv_err_t **err);
/* The next event the VMM reported (text, heap) or NULL; call from the thread doing hot-plug. */
char *sandbox_vmm_next_event(struct vmm *vm);

void sandbox_vmm_info(const struct vmm *vm, struct vmm_info *out);

/* A qcow2 overlay over a read-only base image (the container's writable rootfs), of
 * size_bytes (sparse: costs nothing until written) or the base's size if that is larger;
 * the guest grows the filesystem to the disk. */
int sandbox_overlay_create(const char *qemu_img, const char *base, const char *overlay, uint64_t size_bytes,
			   pv_err_t **err);

/* The host's TSC rate in kHz, measured against CLOCK_MONOTONIC (~10 ms); 0 if unknown.
 * A TCG guest's TSC ticks at this rate, and calibrating it against the emulated PIT
 * is unreliable, so the guest is told (tsc_early_khz=). */
unsigned long sandbox_host_tsc_khz(void);

/* Last `max` bytes of a file as a string (for "VM did not start" errors). */
char *sandbox_file_tail(const char *path, size_t max);

#endif
