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

#include <stdbool.h>

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

/* The pod's hostname: its config's, or the node's when the config has none (as containerd
 * does; kubelet always sends one). buf receives the node's name (HOST_NAME_MAX + 1 bytes). */
const char *spec_pod_hostname(const Runtime__V1__PodSandboxConfig *pod, char *buf, size_t len);

/* cri/security.c: privileged mode, masked and read-only paths (containerd's defaults when the
 * config lists none), seccomp and the PID namespace, into the agent's request. proc is the
 * container's process from spec_build_process (its capabilities pick the default profile).
 * host_pod: the pod is a host pod (its namespaces are the pod's, hostPID included). */
int spec_build_security(struct cri_arena *a, const Runtime__V1__PodSandboxConfig *pod,
			const Runtime__V1__ContainerConfig *cfg, const Podvisor__Agent__Process *proc,
			bool host_pod, Podvisor__Agent__CreateContainerRequest *spec, pv_err_t **err);

/* cri/seccomp.c: the filter for a CRI SecurityProfile (NULL for none: Unconfined or no
 * profile); a Localhost file is read and checked now, INVALID_ARGUMENT naming it. */
int spec_seccomp(struct cri_arena *a, const Runtime__V1__SecurityProfile *profile, char *const *caps, size_t n_caps,
		 Podvisor__Agent__Seccomp **out, pv_err_t **err);
/* An OCI-format JSON profile (text of len bytes), named name in messages. */
int spec_seccomp_parse(struct cri_arena *a, const char *name, const char *text, size_t len,
		       Podvisor__Agent__Seccomp **out, pv_err_t **err);
/* An OCI-format JSON profile file. */
int spec_seccomp_load(struct cri_arena *a, const char *path, Podvisor__Agent__Seccomp **out, pv_err_t **err);
/* cri/seccomp_default.c: RuntimeDefault for a container with these bounding capabilities. */
Podvisor__Agent__Seccomp *spec_seccomp_default(struct cri_arena *a, char *const *caps, size_t n_caps);

/* The signal StopContainer sends first: the config's, else the image's, else SIGTERM. */
int spec_stop_signal(const Runtime__V1__ContainerConfig *cfg, const char *image_stop_signal);
/* "SIGTERM", "TERM" or "15" to a number; -1 if unknown. */
int spec_signal_from_name(const char *name);

#endif
