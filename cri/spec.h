/*
 * From a CRI ContainerConfig and the image's config to the guest agent's
 * container request — the job an OCI spec generator does in containerd:
 * command/args merged with Entrypoint/Cmd, environment, working directory,
 * user and groups, capabilities, resources.
 *
 * Everything is allocated in the caller's arena; the result is only valid
 * while the arena lives.
 */
#ifndef PV_CRI_SPEC_H
#define PV_CRI_SPEC_H

#include "arena.h"
#include "error.h"
#include "proto/agent.pb-c.h"
#include "proto/cri.pb-c.h"

/* What the spec needs from the image (a subset of cri/image's image_info). */
struct spec_image {
	char **env;        /* NULL-terminated or NULL */
	char **entrypoint;
	char **cmd;
	const char *workdir;
	const char *user;  /* image config User: "", "uid", "uid:gid", "name", "name:group" */
	const char *stop_signal;
};

/* Looks users and groups up in the container's /etc/passwd and /etc/group. */
struct spec_ids {
	/* 0 and fills uid/gid, or -1 if there is no such user. */
	int (*user)(void *opaque, const char *name, uint32_t *uid, uint32_t *gid);
	/* 0 and fills gid, or -1. */
	int (*group)(void *opaque, const char *name, uint32_t *gid);
	/* Supplementary groups listing this user by name; returns the count (<= max). */
	size_t (*groups_of)(void *opaque, const char *user, uint32_t gid, uint32_t *out, size_t max);
	/* Name of a uid, or NULL. */
	const char *(*name_of)(void *opaque, uint32_t uid);
	void *opaque;
};

int spec_build_process(struct cri_arena *a, const Runtime__V1__ContainerConfig *cfg, const struct spec_image *img,
		       const struct spec_ids *ids, const char *hostname, Podvisor__Agent__Process **out,
		       pv_err_t **err);

int spec_build_resources(struct cri_arena *a, const Runtime__V1__LinuxContainerResources *r,
			 Podvisor__Agent__Resources **out, pv_err_t **err);

/* cgroup v1 cpu.shares (2..262144) to cgroup v2 cpu.weight (1..10000), as runc converts. */
uint64_t spec_shares_to_weight(int64_t shares);

/* The signal StopContainer sends first: the config's, else the image's, else SIGTERM. */
int spec_stop_signal(const Runtime__V1__ContainerConfig *cfg, const char *image_stop_signal);
/* "SIGTERM", "TERM" or "15" to a number; -1 if unknown. */
int spec_signal_from_name(const char *name);

#endif
