/*
 * Private to sandbox/: what a VMM backend implements, and the handle it fills.
 * The generic part (sandbox/vmm.c) owns the VMM process once a backend has spawned
 * it: its pid and pidfd, reaping, killing, stopping.
 */
#ifndef PV_SANDBOX_VMM_IMPL_H
#define PV_SANDBOX_VMM_IMPL_H

#include "vmm.h"

struct vmm_ops {
	const char *name;
	unsigned flags;      /* VMM_NEEDS_TAP, ... */
	const char *layer_suffix;
	/* Spawn the VMM process; set vm->pid (vmm.c opens the pidfd). */
	int (*start)(struct vmm *vm, pv_err_t **err);
	/* Ask the VMM to quit (not waiting); return -1 if it cannot be asked (SIGTERM then). */
	int (*request_quit)(struct vmm *vm);
	int (*disk_add)(struct vmm *vm, const struct vmm_disk *disk, int timeout_ms, pv_err_t **err);
	int (*disk_remove)(struct vmm *vm, const char *id, int timeout_ms, pv_err_t **err);
	char *(*next_event)(struct vmm *vm);
	/* Optional: where the agent finds a disk's rootfs as a directory (see vmm.h). */
	char *(*disk_rootfs)(const struct vmm *vm, const char *path);
	/* Optional: the VMM process is gone; let go of what the disks still hold. */
	void (*stopped)(struct vmm *vm);
	/* Save a template VM's device state into cfg.template_out (NULL: not supported). */
	int (*template_save)(struct vmm *vm, int timeout_ms, pv_err_t **err);
	/* Release what the backend keeps in vm->priv (its process is gone by then). */
	void (*free)(struct vmm *vm);
};

struct vmm {
	const struct vmm_ops *ops;
	struct vmm_config cfg;   /* strings owned (deep copy) */
	pid_t pid;               /* VMM process, 0 when not running */
	int pidfd;               /* pidfd of the VMM process, -1 if none */
	int64_t started_ns;      /* realtime */
	void *priv;              /* the backend's */
};

/* vmm.c: a listening unix socket at path (an old one there is replaced), for the agent
 * channel or QMP the backend's process is handed; -1 + the error otherwise. */
int sandbox_listen_unix(const char *path, pv_err_t **err);

extern const struct vmm_ops sandbox_qemu_ops;
extern const struct vmm_ops sandbox_host_ops;

#endif
