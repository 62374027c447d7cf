/*
 * podvisor-hostagent: the agent of a host pod. It speaks the agent protocol (the core it
 * shares with the guest agent: guest-agent/agent.h) on a unix socket its shim connects to,
 * and runs the pod's containers as ordinary Linux containers through an OCI runtime (runc
 * by default): a bundle per container (config.json from the CreateContainerRequest, the
 * rootfs the shim's host backend mounted), `runc create/start/exec/kill/delete`. It is a
 * child subreaper, so the containers' processes are its children once runc has started
 * them, and it reaps them and answers WaitProcess as the guest agent does.
 *
 * Files: main.c (arguments, loop, shutdown), listen.c (the channel's transport), pod.c
 * (the pod's namespaces, CreateSandbox), oci.c (config.json), runc.c (running the OCI
 * runtime), ctr.c (the container_* requests), stats.c (runc events, cgroup counters).
 */
#ifndef PV_HOSTAGENT_H
#define PV_HOSTAGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"

/* The pod, as podvisord chose it (the shim's --backend host options). */
struct hostagent_pod {
	char *id;            /* pod id (names cgroups) */
	char *state_dir;     /* bundles/<ctr>, runc/ (the runtime's --root), resolv.conf */
	char *runtime;       /* the OCI runtime binary */
	char *netns;         /* the pod's CNI network namespace; NULL: host network, or none */
	bool host_net, host_pid, host_ipc;
	bool pod_pid;        /* without host_pid: one PID namespace for the pod (else one per container) */
	char *share_dir;     /* the host directory the guest would see as PV_GUEST_VOL_DIR */
	char *cgroup_parent; /* cgroupfs parent of the containers' cgroups */
	char *hostname;      /* from CreateSandbox ("" until then) */
	char *resolv_conf;   /* <state_dir>/resolv.conf once CreateSandbox gave DNS settings */
	pid_t holder;        /* the process holding the pod's own namespaces, 0: none yet */
	bool cgroup_v2;      /* /sys/fs/cgroup is the unified hierarchy */
	bool memsw;          /* cgroup v1 swap accounting (memory.memsw.*) is there */
	int min_oom_score_adj; /* ours: a lower one would need CAP_SYS_RESOURCE */
	uint64_t cap_bounding; /* the capabilities this node lets us pass on (our bounding set) */
};

extern struct hostagent_pod g_pod;

/* listen.c: the listening socket (fd from the shim's host backend). */
int hostagent_listen_init(int fd, pv_err_t **err);
void hostagent_listen_accept(void);

/* pod.c */
/* The pod's own namespaces (UTS, IPC, PID with pod_pid, an empty network one without a
 * CNI netns) held by a child process; created once, on the first need. */
int hostagent_pod_holder(pv_err_t **err);
/* /proc/<holder>/ns/<ns>, or NULL when the pod shares that namespace with the host. */
char *hostagent_pod_ns_path(const char *ns);
void hostagent_pod_stop_holder(void);
/* Move the agent into a network namespace (by path); -1 with errno. */
int hostagent_pod_enter_netns(const char *path);
/* The holder process itself (podvisor-hostagent --holder HOSTNAME); never returns. */
void hostagent_holder_main(const char *hostname) __attribute__((noreturn));
/* A guest path of the agent protocol (resolv.conf, the volume share) as a host path. */
char *hostagent_pod_host_path(const char *guest_path);

/* oci.c: the runtime spec of a container / of an exec'd process (pure; unit-tested). */
json_t *hostagent_oci_config(const struct hostagent_pod *pod, const char *rootfs, const char *cgroup,
			     const Podvisor__Agent__CreateContainerRequest *spec, pv_err_t **err);
json_t *hostagent_oci_process(const struct hostagent_pod *pod, const Podvisor__Agent__Process *p,
			      pv_err_t **err);
/* linux.resources (runc update --resources takes the same JSON). */
json_t *hostagent_oci_resources(const struct hostagent_pod *pod, const Podvisor__Agent__Resources *r);
/* The cgroup of a container: <cgroup_parent>/<ctr id>. */
char *hostagent_oci_cgroup(const struct hostagent_pod *pod, const char *ctr_id);

/* runc.c: run the OCI runtime synchronously. stdio: the fds its process (and the
 * container's, for create/exec) gets, -1 = /dev/null; input (may be NULL) is written to its
 * stdin instead; *out (may be NULL) gets its stdout. Fails with the runtime's own message. */
struct hostagent_runc {
	const char *const *args; /* after the global flags, NULL-terminated */
	const char *cwd;         /* NULL: the state dir */
	int stdio[3];
	const char *input;
	char **out;
	const char *log;         /* the runtime's --log file (its errors are read from it) */
};
int hostagent_runc(const struct hostagent_runc *r, pv_err_t **err);

/* stats.c */
int hostagent_stats(const struct container *c, Podvisor__Agent__StatsContainerResponse *out, pv_err_t **err);

#endif
