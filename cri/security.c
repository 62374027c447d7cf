/*
 * The security context of a container, from its CRI config to the agent's request, as
 * containerd's CRI plugin builds it for runc: privileged mode, masked and read-only paths,
 * the seccomp filter, and which PID namespace the container joins.
 */
#include "spec.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* containerd's defaults for a container whose CRI config lists none. */
static const char *const default_masked[] = {
	"/proc/acpi",	    "/proc/asound",	"/proc/kcore",	   "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	"/proc/scsi",	    "/sys/firmware",	"/sys/devices/virtual/powercap",
};
static const char *const default_readonly[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

/* Absolute, and no "." or ".." component: the agent resolves these inside the container. */
static bool container_path_ok(const char *p)
{
	if (!p || p[0] != '/')
		return false;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchrnul(p, '/');
		size_t len = (size_t)(e - p);
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p = e;
	}
	return true;
}

static int copy_paths(struct cri_arena *a, char *const *given, size_t n_given, const char *const *defaults,
		      size_t n_defaults, const char *field, char ***out, size_t *n_out, pv_err_t **err)
{
	char *const *src = n_given ? given : (char *const *)defaults;
	size_t n = n_given ? n_given : n_defaults;
	char **v = cri_arena_alloc(a, (n ? n : 1) * sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		if (!container_path_ok(src[i]))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.security_context.%s[%zu]: \"%s\" is not an absolute path without . or .. components",
					  field, i, src[i] ? src[i] : "");
		v[i] = cri_arena_strdup(a, src[i]);
	}
	*out = v;
	*n_out = n;
	return 0;
}

static int pid_namespace(const Runtime__V1__LinuxContainerSecurityContext *sc, bool host_pod,
			 Podvisor__Agent__CreateContainerRequest *spec, struct cri_arena *a, pv_err_t **err)
{
	const Runtime__V1__NamespaceOption *ns = sc ? sc->namespace_options : NULL;
	/* As containerd: the container has a PID namespace of its own only when asked
	 * (CONTAINER); POD, and no option at all, mean the pod's shared one. */
	switch (ns ? ns->pid : RUNTIME__V1__NAMESPACE_MODE__POD) {
	case RUNTIME__V1__NAMESPACE_MODE__CONTAINER:
		spec->pid_namespace = PODVISOR__AGENT__PID_NAMESPACE__PID_CONTAINER;
		return 0;
	case RUNTIME__V1__NAMESPACE_MODE__POD:
		spec->pid_namespace = PODVISOR__AGENT__PID_NAMESPACE__PID_POD;
		return 0;
	case RUNTIME__V1__NAMESPACE_MODE__TARGET:
		if (!ns->target_id || !*ns->target_id)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.security_context.namespace_options: pid=TARGET needs target_id");
		spec->pid_namespace = PODVISOR__AGENT__PID_NAMESPACE__PID_TARGET;
		spec->pid_target = cri_arena_strdup(a, ns->target_id);
		return 0;
	case RUNTIME__V1__NAMESPACE_MODE__NODE:
		/* A host pod's containers are in the namespaces the pod was made with (its agent
		 * applies them): hostPID was the pod's choice. */
		if (host_pod) {
			spec->pid_namespace = PODVISOR__AGENT__PID_NAMESPACE__PID_POD;
			return 0;
		}
		/* fall through */
	default:
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "linux.security_context.namespace_options.pid=NODE (hostPID): the container's pod "
				  "runs in a VM and has no access to the node's processes");
	}
}

int spec_build_security(struct cri_arena *a, const Runtime__V1__PodSandboxConfig *pod,
			const Runtime__V1__ContainerConfig *cfg, const Podvisor__Agent__Process *proc,
			bool host_pod, Podvisor__Agent__CreateContainerRequest *spec, pv_err_t **err)
{
	const Runtime__V1__LinuxContainerSecurityContext *sc = cfg->linux ? cfg->linux->security_context : NULL;
	const Runtime__V1__LinuxSandboxSecurityContext *psc =
		pod && pod->linux ? pod->linux->security_context : NULL;
	if (pid_namespace(sc, host_pod, spec, a, err) < 0)
		return -1;
	if (sc && sc->privileged) {
		if (!psc || !psc->privileged)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EPERM,
					  "linux.security_context.privileged: a privileged container needs a privileged "
					  "pod (config.linux.security_context.privileged of the sandbox)");
		/* All capabilities come from spec_build_process; no paths hidden, no filter. */
		spec->privileged = 1;
		return 0;
	}
	if (copy_paths(a, sc ? sc->masked_paths : NULL, sc ? sc->n_masked_paths : 0, default_masked,
		       PV_ARRAY_SIZE(default_masked), "masked_paths", &spec->masked_paths, &spec->n_masked_paths,
		       err) < 0 ||
	    copy_paths(a, sc ? sc->readonly_paths : NULL, sc ? sc->n_readonly_paths : 0, default_readonly,
		       PV_ARRAY_SIZE(default_readonly), "readonly_paths", &spec->readonly_paths,
		       &spec->n_readonly_paths, err) < 0)
		return -1;
	const Podvisor__Agent__Capabilities *caps = proc->capabilities;
	return spec_seccomp(a, sc ? sc->seccomp : NULL, caps ? caps->bounding : NULL, caps ? caps->n_bounding : 0,
			    &spec->seccomp, err);
}
