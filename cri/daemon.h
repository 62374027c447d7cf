/* podvisord's process-wide state, handed to every handler via cri_call_daemon(). */
#ifndef PV_CRI_DAEMON_H
#define PV_CRI_DAEMON_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct pv_config;
struct image_store;
struct pv_store;
struct cri_shim_entry;
struct cri_events;
struct cri_monitor;
struct cri_handlers;

struct pv_daemon {
	const struct pv_config *cfg;
	struct image_store *images; /* cri/image: owned, opened at start-up */
	char *qemu_path;            /* VM assets, resolved at start-up (cri/runtime_info.c) */
	char *kernel_path;
	char *initramfs_path;
	char *accel;                /* "kvm", "hvf" or "tcg": probed once at start-up, given to every shim */
	char *accel_why;            /* the probe's reason for it (podvisord --check prints it) */
	struct cri_handlers *handlers; /* guest architectures and runtime handlers (cri/handlers.h) */
	int64_t started_ns;

	pthread_mutex_t lock;       /* guards the fields below */
	char *pod_cidr;             /* from UpdateRuntimeConfig, persisted in <root>/runtime-config.json */
	/* pods and containers (cri/runtime.h) */
	struct pv_store *store;
	pthread_mutex_t shims_lock;      /* guards the table and its entries' reference counts */
	struct cri_shim_entry *shims;
	struct cri_events *events;
	struct cri_monitor *monitor;
	atomic_int stopping;
};

#endif
