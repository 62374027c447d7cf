/* Which sandbox backend a pod gets (cri/backend.h). */
#include "backend.h"
#include "cleanup.h"
#include "config.h"
#include "daemon.h"
#include "handlers.h"
#include "runtime_info.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>


const struct cri_backend cri_backend_vm = { .name = "vm", .vmm = "qemu", .what = "VM" };
const struct cri_backend cri_backend_host = {
	.name = "host", .vmm = "host", .what = "host pod", .oci = true, .volumes_direct = true, .bidirectional = true,
};

static const Runtime__V1__NamespaceOption *ns_options(const Runtime__V1__PodSandboxConfig *cfg)
{
	const Runtime__V1__LinuxSandboxSecurityContext *sc = cfg && cfg->linux ? cfg->linux->security_context : NULL;
	return sc ? sc->namespace_options : NULL;
}

bool cri_backend_host_network(const Runtime__V1__PodSandboxConfig *cfg)
{
	const Runtime__V1__NamespaceOption *ns = ns_options(cfg);
	return ns && ns->network == RUNTIME__V1__NAMESPACE_MODE__NODE;
}

/* The node namespaces the pod asks to share, for messages ("hostNetwork, hostPID"), or NULL. */
static char *node_namespaces(const Runtime__V1__PodSandboxConfig *cfg)
{
	const Runtime__V1__NamespaceOption *ns = ns_options(cfg);
	if (!ns)
		return NULL;
	const char *names[3];
	size_t n = 0;
	if (ns->network == RUNTIME__V1__NAMESPACE_MODE__NODE)
		names[n++] = "hostNetwork (network=NODE)";
	if (ns->pid == RUNTIME__V1__NAMESPACE_MODE__NODE)
		names[n++] = "hostPID (pid=NODE)";
	if (ns->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE)
		names[n++] = "hostIPC (ipc=NODE)";
	if (!n)
		return NULL;
	return pv_xasprintf("%s%s%s%s%s", names[0], n > 1 ? ", " : "", n > 1 ? names[1] : "", n > 2 ? ", " : "",
			    n > 2 ? names[2] : "");
}

static int choose(const struct cri_backend_policy *pol, const char *handler, const Runtime__V1__PodSandboxConfig *cfg,
		  const struct cri_backend **out, bool *by_policy, pv_err_t **err)
{
	*by_policy = false;
	if (!handler)
		handler = "";
	if (!strcmp(handler, CRI_HOST_HANDLER)) {
		if (!pol->host_pods)
			return pv_err_set(err, PV_NOT_FOUND, ENOENT,
					  "runtime handler \"%s\" is not configured: host pods are refused "
					  "(runtime.host_namespace_pods is \"refuse\")", handler);
		*out = &cri_backend_host;
		return 0;
	}
	cleanup_free char *shared = node_namespaces(cfg);
	if (!shared) {
		*out = &cri_backend_vm;
		return 0;
	}
	if (*handler && strcmp(handler, PV_RUNTIME_NAME))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "config.linux.security_context.namespace_options: %s cannot be given to a pod VM, and "
				  "runtime handler \"%s\" runs pod VMs (the \"" CRI_HOST_HANDLER "\" handler runs host pods)",
				  shared, handler);
	if (!pol->host_pods)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "config.linux.security_context.namespace_options: %s cannot be given to a pod VM, which "
				  "has namespaces of its own, and host pods are refused by the config "
				  "(runtime.host_namespace_pods is \"refuse\")",
				  shared);
	*out = &cri_backend_host;
	*by_policy = true;
	return 0;
}

/* A host pod needs its OCI runtime. */
static int need_runtime(const struct cri_backend_policy *pol, pv_err_t **err)
{
	if (pol->oci_runtime)
		return 0;
	return pv_err_set(err, PV_FAILED_PRECONDITION, ENOENT,
			  "host pods need an OCI runtime and \"%s\" was not found (install Debian's runc, or set "
			  "runtime.oci_runtime)", pol->oci_runtime_name ? pol->oci_runtime_name : "runc");
}

int cri_backend_choose(const struct cri_backend_policy *pol, const char *handler,
		       const Runtime__V1__PodSandboxConfig *cfg, const struct cri_backend **out, bool *by_policy,
		       pv_err_t **err)
{
	if (choose(pol, handler, cfg, out, by_policy, err) < 0)
		return -1;
	return (*out)->oci && need_runtime(pol, err) < 0 ? -1 : 0;
}

const struct cri_backend *cri_backend_of(const struct pv_pod *p)
{
	return p->st.backend && !strcmp(p->st.backend, cri_backend_host.name) ? &cri_backend_host : &cri_backend_vm;
}

void cri_backend_ns_modes(const struct pv_pod *p, Runtime__V1__NamespaceMode *network, Runtime__V1__NamespaceMode *pid,
			  Runtime__V1__NamespaceMode *ipc)
{
	const Runtime__V1__NamespaceOption *ns = ns_options(p->config);
	/* A pod VM: its own network and IPC; its containers share the pod's PID namespace
	 * unless the config asks for one each (CONTAINER), as the agent makes them. */
	*network = RUNTIME__V1__NAMESPACE_MODE__POD;
	*pid = ns && ns->pid == RUNTIME__V1__NAMESPACE_MODE__CONTAINER ? RUNTIME__V1__NAMESPACE_MODE__CONTAINER
								     : RUNTIME__V1__NAMESPACE_MODE__POD;
	*ipc = RUNTIME__V1__NAMESPACE_MODE__POD;
	if (!cri_backend_of(p)->oci)
		return;
	/* A host pod: a PID namespace per container unless it shares the pod's or the node's. */
	*pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
	if (!ns)
		return;
	if (ns->network == RUNTIME__V1__NAMESPACE_MODE__NODE)
		*network = RUNTIME__V1__NAMESPACE_MODE__NODE;
	if (ns->pid == RUNTIME__V1__NAMESPACE_MODE__NODE || ns->pid == RUNTIME__V1__NAMESPACE_MODE__POD)
		*pid = ns->pid;
	if (ns->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE)
		*ipc = RUNTIME__V1__NAMESPACE_MODE__NODE;
}

char *cri_backend_ns_arg(const Runtime__V1__PodSandboxConfig *cfg)
{
	const Runtime__V1__NamespaceOption *ns = ns_options(cfg);
	/* No options at all: what kubelet sends by default, a PID namespace per container. */
	Runtime__V1__NamespaceMode pid = ns ? ns->pid : RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
	return pv_xasprintf("network=%s,pid=%s,ipc=%s", cri_backend_host_network(cfg) ? "node" : "pod",
			    pid == RUNTIME__V1__NAMESPACE_MODE__NODE  ? "node"
			    : pid == RUNTIME__V1__NAMESPACE_MODE__POD ? "pod"
								  : "container",
			    ns && ns->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE ? "node" : "pod");
}

int cri_backend_init(struct pv_daemon *d, pv_err_t **err)
{
	const char *policy = pv_config_runtime_str(d->cfg, "host_namespace_pods");
	if (policy && strcmp(policy, "host") && strcmp(policy, "refuse"))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "%s:%d: key \"runtime.host_namespace_pods\": must be \"host\" or \"refuse\"",
				  d->cfg->config_path ? d->cfg->config_path : "config",
				  pv_config_key_line(d->cfg->source_text, "host_namespace_pods"));
	d->host_pods = !policy || !strcmp(policy, "host");
	const char *rt = pv_config_runtime_str(d->cfg, "oci_runtime");
	if (!rt)
		rt = "runc";
	d->oci_runtime_name = pv_xstrdup(rt);
	if (strchr(rt, '/')) {
		d->oci_runtime = access(rt, X_OK) == 0 ? pv_xstrdup(rt) : NULL;
	} else {
		const char *path = getenv("PATH");
		d->oci_runtime = pv_find_executable(path && *path ? path : "/usr/sbin:/usr/bin:/sbin:/bin", rt);
		if (!d->oci_runtime) /* Debian puts runc in /usr/sbin, which a user's PATH may lack */
			d->oci_runtime = pv_find_executable("/usr/sbin:/usr/bin:/sbin:/bin", rt);
	}
	return 0;
}

struct cri_backend_policy cri_backend_policy_of(const struct pv_daemon *d)
{
	struct cri_backend_policy p = { .host_pods = d->host_pods, .oci_runtime = d->oci_runtime,
					 .oci_runtime_name = d->oci_runtime_name };
	return p;
}
