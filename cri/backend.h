/*
 * The two sandbox backends of a pod, chosen once at RunPodSandbox and recorded in the
 * pod's state: a pod VM (the default) or a host pod (docs/host-pods.md). Handlers ask the
 * pod's backend what it can do instead of testing which one it is.
 */
#ifndef PV_CRI_BACKEND_H
#define PV_CRI_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "proto/cri.pb-c.h"

struct pv_daemon;
struct pv_pod;

struct cri_backend {
	const char *name;    /* in the pod's state and logs: "vm", "host" */
	const char *vmm;     /* the shim's --backend: "qemu", "host" */
	const char *what;    /* for messages: "VM", "host pod" */
	bool oci;            /* runs containers through the OCI runtime, in the pod's namespaces as asked */
	bool volumes_direct; /* the agent binds host paths itself (a VM sees them through its share) */
	bool bidirectional;  /* rshared volumes: a mount made in the pod reaches the node */
};

extern const struct cri_backend cri_backend_vm;
extern const struct cri_backend cri_backend_host;

/* runtime.host_namespace_pods and runtime.oci_runtime, as podvisord resolved them. */
struct cri_backend_policy {
	bool host_pods;               /* "host" (default): pods sharing node namespaces become host pods */
	const char *oci_runtime;      /* the runtime's path, NULL if it was not found */
	const char *oci_runtime_name; /* as configured ("runc"), for messages */
};
struct cri_backend_policy cri_backend_policy_of(const struct pv_daemon *d);

/*
 * The backend of a new pod, whose handler (cri/handlers.c) is known to exist: "host" is a
 * host pod (NOT_FOUND when the policy refuses them). Any other handler is a pod VM unless the
 * pod shares a node namespace (hostNetwork, hostPID, hostIPC), which only a host pod can:
 * then, for the default handler ("" or "podvisor"), a host pod by policy (*by_policy set),
 * or INVALID_ARGUMENT when the policy refuses or the handler names a VM architecture. A host
 * pod without its OCI runtime is FAILED_PRECONDITION.
 */
int cri_backend_choose(const struct cri_backend_policy *pol, const char *handler,
		       const Runtime__V1__PodSandboxConfig *cfg, const struct cri_backend **out, bool *by_policy,
		       pv_err_t **err);

/* The backend a pod was given (a pod recorded without one is a VM). */
const struct cri_backend *cri_backend_of(const struct pv_pod *p);

/* The pod shares the node's network namespace (no CNI, the node's addresses). */
bool cri_backend_host_network(const Runtime__V1__PodSandboxConfig *cfg);
/* The namespace modes the pod's containers really have (PodSandboxStatus). */
void cri_backend_ns_modes(const struct pv_pod *p, Runtime__V1__NamespaceMode *network, Runtime__V1__NamespaceMode *pid,
			  Runtime__V1__NamespaceMode *ipc);
/* The host agent's --namespaces: "network=node|pod,pid=node|pod|container,ipc=node|pod" (heap). */
char *cri_backend_ns_arg(const Runtime__V1__PodSandboxConfig *cfg);

/* Read runtime.host_namespace_pods and runtime.oci_runtime (cri/runtime_info.c validated their
 * types); the runtime is looked up on $PATH. */
int cri_backend_init(struct pv_daemon *d, pv_err_t **err);

#endif
