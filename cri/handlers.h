/*
 * Guest architectures and runtime handlers: which VM a pod gets (x86_64 microvm or arm64
 * virt), which image platforms it runs, and whether this node can run it accelerated or only
 * emulated. The default handler ("" and "podvisor") runs runtime.arch ("host" by default);
 * "x86_64" and "arm64" name a guest architecture; "arm64-x86" is an arm64 guest that also runs
 * linux/amd64 images through qemu-x86_64 registered with binfmt_misc (docs/arm64.md).
 */
#ifndef PV_CRI_HANDLERS_H
#define PV_CRI_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "image/platform.h"
#include "vmm.h"

struct pv_daemon;

/* Guest architectures are the VMM layer's (enum vmm_arch, sandbox_arch_name/parse). */
#define CRI_ARCH_COUNT 2

/* One guest architecture's VM assets and how it runs on this node. */
struct cri_guest {
	enum vmm_arch arch;
	char *qemu, *kernel, *initramfs;
	char *initramfs_x86; /* arm64: the initramfs with qemu-x86_64 (handler arm64-x86) */
	const char *accel;   /* "kvm", "hvf" or "tcg" */
	bool emulated;       /* tcg: every guest instruction is translated */
	char *missing;       /* NULL when every asset is there, else what is not */
};

struct cri_handler {
	const char *name;
	enum vmm_arch arch;
	bool x86_binfmt; /* boot initramfs_x86: linux/amd64 images run through qemu-x86_64 */
	struct image_platform platforms[2]; /* image platforms it runs, preferred first */
	size_t n_platforms;
};

#define CRI_HANDLERS_MAX 5

struct cri_handlers {
	enum vmm_arch host, def; /* the node's architecture; runtime.arch */
	struct cri_handler handlers[CRI_HANDLERS_MAX];
	size_t n;
	struct cri_guest guests[CRI_ARCH_COUNT];
};

/* The handler table for runtime.arch (NULL or "host": host_machine, as uname -m says). Pure:
 * no assets are looked at. INVALID_ARGUMENT naming the bad value. */
int cri_handlers_build(const char *arch_cfg, const char *host_machine, struct cri_handlers *out, pv_err_t **err);
/* The handler for a RunPodSandbox/ImageSpec runtime_handler ("" is the default); INVALID_ARGUMENT
 * listing the handlers there are. */
const struct cri_handler *cri_handler_find(const struct cri_handlers *h, const char *name, pv_err_t **err);
/* Platforms a pull with no handler takes: the default handler's, then every other one this
 * node runs (so an index gives the default's platform, and a single-platform image of another
 * runnable architecture is still accepted). Returns the count. */
size_t cri_handlers_any_platforms(const struct cri_handlers *h, struct image_platform *out, size_t max);

/* podvisord start-up: the table, each guest's assets (runtime.* keys or beside the binary) and
 * accelerator (host_accel for the host's own architecture, tcg for a foreign one). */
int cri_handlers_init(struct pv_daemon *d, const char *host_accel, pv_err_t **err);
void cri_handlers_fini(struct cri_handlers *h);
/* The handlers as JSON for Status' verbose info (caller frees). */
char *cri_handlers_json(const struct cri_handlers *h);

struct image_info;

/* RunPodSandbox: the handler named (INVALID_ARGUMENT if unknown) when this node can start its VM
 * (FAILED_PRECONDITION saying what is missing). */
const struct cri_handler *cri_handler_for_pod(const struct pv_daemon *d, const char *name, pv_err_t **err);
/* The platforms a pull picks from (preferred first): the ImageSpec's runtime_handler, else the
 * handler of the pod sandbox_config describes (kubelet pulls after RunPodSandbox), else every
 * platform this node runs (default first), or 0 (the store's choice) when image.platform is set.
 * Returns the count, or -1 with the error. */
int cri_pull_platforms(struct pv_daemon *d, const char *handler, const void *sandbox_config,
		       struct image_platform *out, size_t max, pv_err_t **err);
struct shim_spawn_opts;
/* The VM assets, QEMU, accelerator and architecture of the handler's guest into o. */
void cri_handler_spawn_opts(const struct pv_daemon *d, const struct cri_handler *h, struct shim_spawn_opts *o);
/* CreateContainer: FAILED_PRECONDITION when the image's platform is not one the pod's handler runs. */
int cri_handler_check_image(const struct pv_daemon *d, const char *handler, const struct image_info *info,
			    pv_err_t **err);

#endif
