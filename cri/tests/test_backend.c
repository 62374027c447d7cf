/* Which backend a pod gets: the runtime handler, the node namespaces it asks for, the policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "store.h"
#include "util.h"

struct pod {
	Runtime__V1__PodSandboxConfig cfg;
	Runtime__V1__LinuxPodSandboxConfig lx;
	Runtime__V1__LinuxSandboxSecurityContext sc;
	Runtime__V1__NamespaceOption ns;
};

static void pod_init(struct pod *p, Runtime__V1__NamespaceMode net, Runtime__V1__NamespaceMode pid,
		     Runtime__V1__NamespaceMode ipc)
{
	runtime__v1__pod_sandbox_config__init(&p->cfg);
	runtime__v1__linux_pod_sandbox_config__init(&p->lx);
	runtime__v1__linux_sandbox_security_context__init(&p->sc);
	runtime__v1__namespace_option__init(&p->ns);
	p->ns.network = net;
	p->ns.pid = pid;
	p->ns.ipc = ipc;
	p->sc.namespace_options = &p->ns;
	p->lx.security_context = &p->sc;
	p->cfg.linux = &p->lx;
}

static const struct cri_backend_policy on = { .host_pods = true, .oci_runtime = "/usr/sbin/runc", .oci_runtime_name = "runc" };
static const struct cri_backend_policy off = { .host_pods = false, .oci_runtime = "/usr/sbin/runc", .oci_runtime_name = "runc" };

static void test_vm_by_default(void **state)
{
	struct pod p;
	pod_init(&p, RUNTIME__V1__NAMESPACE_MODE__POD, RUNTIME__V1__NAMESPACE_MODE__CONTAINER,
		 RUNTIME__V1__NAMESPACE_MODE__POD);
	const struct cri_backend *be = NULL;
	bool by_policy = true;
	const char *handlers[] = { NULL, "", "podvisor" };
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(cri_backend_choose(&on, handlers[i], &p.cfg, &be, &by_policy, NULL), 0);
		assert_ptr_equal(be, &cri_backend_vm);
		assert_false(by_policy);
	}
}

static void test_node_namespaces_make_a_host_pod(void **state)
{
	Runtime__V1__NamespaceMode node = RUNTIME__V1__NAMESPACE_MODE__NODE, pod = RUNTIME__V1__NAMESPACE_MODE__POD;
	Runtime__V1__NamespaceMode cases[3][3] = { { node, pod, pod }, { pod, node, pod }, { pod, pod, node } };
	for (int i = 0; i < 3; i++) {
		struct pod p;
		pod_init(&p, cases[i][0], cases[i][1], cases[i][2]);
		const struct cri_backend *be = NULL;
		bool by_policy = false;
		assert_int_equal(cri_backend_choose(&on, "", &p.cfg, &be, &by_policy, NULL), 0);
		assert_ptr_equal(be, &cri_backend_host);
		assert_true(by_policy);
		/* refuse: today's INVALID_ARGUMENT, naming what was asked and the key. */
		pv_err_t *err = NULL;
		assert_int_equal(cri_backend_choose(&off, "", &p.cfg, &be, &by_policy, &err), -1);
		assert_int_equal(err->status, PV_INVALID_ARGUMENT);
		assert_non_null(strstr(err->msg, i == 0 ? "hostNetwork" : i == 1 ? "hostPID" : "hostIPC"));
		assert_non_null(strstr(err->msg, "host_namespace_pods"));
		pv_err_free(err);
	}
}

static void test_handlers(void **state)
{
	struct pod p;
	pod_init(&p, RUNTIME__V1__NAMESPACE_MODE__POD, RUNTIME__V1__NAMESPACE_MODE__POD, RUNTIME__V1__NAMESPACE_MODE__POD);
	const struct cri_backend *be = NULL;
	bool by_policy;
	assert_int_equal(cri_backend_choose(&on, "host", &p.cfg, &be, &by_policy, NULL), 0);
	assert_ptr_equal(be, &cri_backend_host);
	assert_false(by_policy);
	/* A VM architecture's handler stays a VM: without node namespaces... */
	assert_int_equal(cri_backend_choose(&on, "arm64", &p.cfg, &be, &by_policy, NULL), 0);
	assert_ptr_equal(be, &cri_backend_vm);
	/* ... and with them it is refused, pointing at the host handler. */
	struct pod q;
	pod_init(&q, RUNTIME__V1__NAMESPACE_MODE__NODE, RUNTIME__V1__NAMESPACE_MODE__POD, RUNTIME__V1__NAMESPACE_MODE__POD);
	pv_err_t *err = NULL;
	assert_int_equal(cri_backend_choose(&on, "arm64", &q.cfg, &be, &by_policy, &err), -1);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "\"arm64\""));
	pv_err_free(err);
	err = NULL;
	assert_int_equal(cri_backend_choose(&off, "host", &p.cfg, &be, &by_policy, &err), -1);
	assert_int_equal(err->status, PV_NOT_FOUND);
	pv_err_free(err);
	/* No runtime: a clear FAILED_PRECONDITION naming it. */
	struct cri_backend_policy none = { .host_pods = true, .oci_runtime = NULL, .oci_runtime_name = "crun" };
	err = NULL;
	assert_int_equal(cri_backend_choose(&none, "host", &p.cfg, &be, &by_policy, &err), -1);
	assert_int_equal(err->status, PV_FAILED_PRECONDITION);
	assert_non_null(strstr(err->msg, "\"crun\""));
	pv_err_free(err);
}

static void test_status_modes_and_agent_arg(void **state)
{
	struct pod p;
	pod_init(&p, RUNTIME__V1__NAMESPACE_MODE__NODE, RUNTIME__V1__NAMESPACE_MODE__POD, RUNTIME__V1__NAMESPACE_MODE__NODE);
	struct pv_pod pod = { .config = &p.cfg };
	Runtime__V1__NamespaceMode net, pid, ipc;
	/* A pod VM has its own network and IPC, whatever it asked (it could not be created
	 * otherwise), and the pod-wide PID namespace it asked for... */
	cri_backend_ns_modes(&pod, &net, &pid, &ipc);
	assert_int_equal(net, RUNTIME__V1__NAMESPACE_MODE__POD);
	assert_int_equal(pid, RUNTIME__V1__NAMESPACE_MODE__POD);
	assert_int_equal(ipc, RUNTIME__V1__NAMESPACE_MODE__POD);
	/* ... or one per container. */
	p.ns.pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
	cri_backend_ns_modes(&pod, &net, &pid, &ipc);
	assert_int_equal(pid, RUNTIME__V1__NAMESPACE_MODE__CONTAINER);
	p.ns.pid = RUNTIME__V1__NAMESPACE_MODE__POD;
	pod.st.backend = (char *)"host";
	cri_backend_ns_modes(&pod, &net, &pid, &ipc);
	assert_int_equal(net, RUNTIME__V1__NAMESPACE_MODE__NODE);
	assert_int_equal(pid, RUNTIME__V1__NAMESPACE_MODE__POD);
	assert_int_equal(ipc, RUNTIME__V1__NAMESPACE_MODE__NODE);
	char *arg = cri_backend_ns_arg(&p.cfg);
	assert_string_equal(arg, "network=node,pid=pod,ipc=node");
	free(arg);
	assert_true(cri_backend_host_network(&p.cfg));
	arg = cri_backend_ns_arg(NULL);
	assert_string_equal(arg, "network=pod,pid=container,ipc=pod");
	free(arg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_by_default),
		cmocka_unit_test(test_node_namespaces_make_a_host_pod),
		cmocka_unit_test(test_handlers),
		cmocka_unit_test(test_status_modes_and_agent_arg),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
