/* The OCI runtime spec of a host pod's container: namespaces per the pod's modes, mounts,
 * capabilities the node grants, resources in runc's (cgroup v1) terms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "hostagent.h"
#include "guest_abi.h"
#include "util.h"

/* pod.c's, without its holder process: the holder is pid 4242. */
char *hostagent_pod_ns_path(const char *ns)
{
	return pv_xasprintf("/proc/4242/ns/%s", ns);
}

char *hostagent_pod_host_path(const char *guest_path)
{
	if (!strcmp(guest_path, PV_GUEST_RESOLV_CONF))
		return pv_xstrdup("/state/resolv.conf");
	return pv_xstrdup(guest_path);
}

static struct hostagent_pod pod_of(bool net, bool pid, bool ipc)
{
	struct hostagent_pod p = { .id = "pod1", .cgroup_parent = "/podvisor/pod1", .host_net = net, .host_pid = pid,
				   .host_ipc = ipc, .hostname = "pod-host", .cap_bounding = ~0ull };
	return p;
}

struct fixture {
	Podvisor__Agent__CreateContainerRequest spec;
	Podvisor__Agent__Process proc;
	char *args[2];
	Podvisor__Agent__Mount m;
	char *mopts[2];
	Podvisor__Agent__Mount *mounts[1];
	Podvisor__Agent__Resources res;
};

static void fixture_init(struct fixture *f)
{
	podvisor__agent__create_container_request__init(&f->spec);
	podvisor__agent__process__init(&f->proc);
	podvisor__agent__mount__init(&f->m);
	podvisor__agent__resources__init(&f->res);
	f->args[0] = "/bin/sh";
	f->proc.args = f->args;
	f->proc.n_args = 1;
	f->spec.process = &f->proc;
	f->spec.container_id = "c1";
	f->m.destination = "/etc/resolv.conf";
	f->m.type = "bind";
	f->m.source = PV_GUEST_RESOLV_CONF;
	f->mopts[0] = "ro";
	f->m.options = f->mopts;
	f->m.n_options = 1;
	f->mounts[0] = &f->m;
	f->spec.mounts = f->mounts;
	f->spec.n_mounts = 1;
	f->spec.resources = &f->res;
}

static json_t *ns_of(json_t *cfg, const char *type)
{
	size_t i;
	json_t *ns;
	json_array_foreach(json_object_get(json_object_get(cfg, "linux"), "namespaces"), i, ns)
		if (!strcmp(json_string_value(json_object_get(ns, "type")), type))
			return ns;
	return NULL;
}

static const char *ns_path(json_t *cfg, const char *type)
{
	return json_string_value(json_object_get(ns_of(cfg, type), "path"));
}

static void test_host_network_pid_ipc(void **state)
{
	struct fixture f;
	fixture_init(&f);
	struct hostagent_pod pod = pod_of(true, true, true);
	json_t *cfg = hostagent_oci_config(&pod, "/layer/rootfs", "/podvisor/pod1/c1", &f.spec, NULL);
	assert_non_null(cfg);
	/* The node's namespaces are simply not made; a mount namespace always is. */
	assert_null(ns_of(cfg, "network"));
	assert_null(ns_of(cfg, "pid"));
	assert_null(ns_of(cfg, "ipc"));
	assert_null(ns_of(cfg, "uts"));
	assert_non_null(ns_of(cfg, "mount"));
	/* The node's hostname too: no "hostname" for runc to set. */
	assert_null(json_object_get(cfg, "hostname"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(cfg, "root"), "path")), "/layer/rootfs");
	json_decref(cfg);
}

static void test_pod_namespaces(void **state)
{
	struct fixture f;
	fixture_init(&f);
	struct hostagent_pod pod = pod_of(false, false, false);
	pod.netns = "/run/netns/cni-1";
	pod.pod_pid = true;
	json_t *cfg = hostagent_oci_config(&pod, "/r", "/podvisor/pod1/c1", &f.spec, NULL);
	assert_string_equal(ns_path(cfg, "network"), "/run/netns/cni-1");
	assert_string_equal(ns_path(cfg, "pid"), "/proc/4242/ns/pid");
	assert_string_equal(ns_path(cfg, "ipc"), "/proc/4242/ns/ipc");
	assert_string_equal(ns_path(cfg, "uts"), "/proc/4242/ns/uts");
	assert_string_equal(json_string_value(json_object_get(cfg, "hostname")), "pod-host");
	json_decref(cfg);
	/* pid CONTAINER: a new one per container (no path). */
	pod.pod_pid = false;
	cfg = hostagent_oci_config(&pod, "/r", "/podvisor/pod1/c1", &f.spec, NULL);
	assert_non_null(ns_of(cfg, "pid"));
	assert_null(ns_path(cfg, "pid"));
	json_decref(cfg);
}

static json_t *mount_at(json_t *cfg, const char *dst)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(cfg, "mounts"), i, m)
		if (!strcmp(json_string_value(json_object_get(m, "destination")), dst))
			return m;
	return NULL;
}

static bool has_opt(json_t *m, const char *opt)
{
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(m, "options"), i, o)
		if (!strcmp(json_string_value(o), opt))
			return true;
	return false;
}

static void test_mounts_and_propagation(void **state)
{
	struct fixture f;
	fixture_init(&f);
	struct hostagent_pod pod = pod_of(false, false, true);
	json_t *cfg = hostagent_oci_config(&pod, "/r", "/c", &f.spec, NULL);
	/* The agent protocol's guest path is the pod's file on the host; a bind gets rbind. */
	json_t *m = mount_at(cfg, "/etc/resolv.conf");
	assert_string_equal(json_string_value(json_object_get(m, "source")), "/state/resolv.conf");
	assert_true(has_opt(m, "rbind") && has_opt(m, "ro"));
	/* hostIPC: the node's /dev/shm. Defaults are there, /sys read-only, paths masked. */
	assert_string_equal(json_string_value(json_object_get(mount_at(cfg, "/dev/shm"), "source")), "/dev/shm");
	assert_non_null(mount_at(cfg, "/proc"));
	assert_true(has_opt(mount_at(cfg, "/sys"), "ro"));
	json_t *lx = json_object_get(cfg, "linux");
	assert_true(json_array_size(json_object_get(lx, "maskedPaths")) > 0);
	assert_null(json_object_get(lx, "rootfsPropagation"));
	json_decref(cfg);
	/* A Bidirectional volume makes the root rshared; privileged: /sys writable, nothing masked. */
	f.mopts[0] = "rshared";
	f.m.source = "/host/dir";
	f.m.destination = "/vol";
	f.spec.privileged = true;
	cfg = hostagent_oci_config(&pod, "/r", "/c", &f.spec, NULL);
	lx = json_object_get(cfg, "linux");
	assert_string_equal(json_string_value(json_object_get(lx, "rootfsPropagation")), "rshared");
	assert_false(has_opt(mount_at(cfg, "/sys"), "ro"));
	assert_null(json_object_get(lx, "maskedPaths"));
	json_decref(cfg);
}

static void test_capabilities_the_node_grants(void **state)
{
	struct fixture f;
	fixture_init(&f);
	struct hostagent_pod pod = pod_of(true, true, true);
	pod.cap_bounding = ~0ull & ~(1ull << 24); /* no CAP_SYS_RESOURCE, as on these machines */
	char *set[] = { "CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_NET_ADMIN" };
	Podvisor__Agent__Capabilities caps = PODVISOR__AGENT__CAPABILITIES__INIT;
	caps.bounding = caps.effective = caps.permitted = set;
	caps.n_bounding = caps.n_effective = caps.n_permitted = 3;
	f.proc.capabilities = &caps;
	json_t *cfg = hostagent_oci_config(&pod, "/r", "/c", &f.spec, NULL);
	json_t *b = json_object_get(json_object_get(json_object_get(cfg, "process"), "capabilities"), "bounding");
	assert_int_equal(json_array_size(b), 2);
	assert_string_equal(json_string_value(json_array_get(b, 1)), "CAP_NET_ADMIN");
	json_decref(cfg);
	/* None asked: the OCI default set. */
	f.proc.capabilities = NULL;
	cfg = hostagent_oci_config(&pod, "/r", "/c", &f.spec, NULL);
	b = json_object_get(json_object_get(json_object_get(cfg, "process"), "capabilities"), "effective");
	assert_int_equal(json_array_size(b), 14);
	json_decref(cfg);
}

static void test_resources_in_runc_terms(void **state)
{
	struct fixture f;
	fixture_init(&f);
	struct hostagent_pod pod = pod_of(true, true, true);
	f.res.cpu_quota_us = 50000;
	f.res.cpu_weight = 1; /* cpu.weight 1 = shares 2 */
	f.res.memory_limit = 64 << 20;
	f.res.memory_swap_limit = 64 << 20; /* dropped: no swap accounting on this "node" */
	f.res.pids_limit = 100;
	json_t *r = hostagent_oci_resources(&pod, &f.res);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "cpu"), "quota")), 50000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "cpu"), "period")), 100000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "cpu"), "shares")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "memory"), "limit")), 64 << 20);
	assert_null(json_object_get(json_object_get(r, "memory"), "swap"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "pids"), "limit")), 100);
	json_decref(r);
	/* An oom_score_adj below ours would need CAP_SYS_RESOURCE: ours instead. */
	pod.min_oom_score_adj = 0;
	f.proc.has_oom_score_adj = true;
	f.proc.oom_score_adj = -998;
	json_t *p = hostagent_oci_process(&pod, &f.proc, NULL);
	assert_int_equal(json_integer_value(json_object_get(p, "oomScoreAdj")), 0);
	json_decref(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_network_pid_ipc),
		cmocka_unit_test(test_pod_namespaces),
		cmocka_unit_test(test_mounts_and_propagation),
		cmocka_unit_test(test_capabilities_the_node_grants),
		cmocka_unit_test(test_resources_in_runc_terms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
