/* Security context: privileged, masked/read-only paths, PID namespace, seccomp profiles (JSON). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spec.h"

static struct cri_arena arena;
static int teardown(void **state)
{
	cri_arena_free(&arena);
	return 0;
}

struct fixture {
	Runtime__V1__PodSandboxConfig pod;
	Runtime__V1__LinuxPodSandboxConfig plinux;
	Runtime__V1__LinuxSandboxSecurityContext psc;
	Runtime__V1__ContainerConfig cfg;
	Runtime__V1__LinuxContainerConfig linux;
	Runtime__V1__LinuxContainerSecurityContext sc;
	Podvisor__Agent__Process proc;
	Podvisor__Agent__Capabilities caps;
	Podvisor__Agent__CreateContainerRequest spec;
	bool host_pod;
};

static char *default_caps[] = { "CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_SETGID" };

static void fixture_init(struct fixture *f)
{
	f->host_pod = false;
	runtime__v1__pod_sandbox_config__init(&f->pod);
	runtime__v1__linux_pod_sandbox_config__init(&f->plinux);
	runtime__v1__linux_sandbox_security_context__init(&f->psc);
	runtime__v1__container_config__init(&f->cfg);
	runtime__v1__linux_container_config__init(&f->linux);
	runtime__v1__linux_container_security_context__init(&f->sc);
	podvisor__agent__process__init(&f->proc);
	podvisor__agent__capabilities__init(&f->caps);
	podvisor__agent__create_container_request__init(&f->spec);
	f->plinux.security_context = &f->psc;
	f->pod.linux = &f->plinux;
	f->linux.security_context = &f->sc;
	f->cfg.linux = &f->linux;
	f->caps.bounding = default_caps;
	f->caps.n_bounding = 4;
	f->proc.capabilities = &f->caps;
}

static int build(struct fixture *f, pv_err_t **err)
{
	podvisor__agent__create_container_request__init(&f->spec);
	return spec_build_security(&arena, &f->pod, &f->cfg, &f->proc, f->host_pod, &f->spec, err);
}

static bool has(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

static void test_paths(void **state)
{
	struct fixture f;
	fixture_init(&f);
	assert_int_equal(build(&f, NULL), 0);
	/* none given: containerd's defaults */
	assert_true(has(f.spec.masked_paths, f.spec.n_masked_paths, "/proc/kcore"));
	assert_true(has(f.spec.masked_paths, f.spec.n_masked_paths, "/sys/firmware"));
	assert_true(has(f.spec.readonly_paths, f.spec.n_readonly_paths, "/proc/sys"));
	assert_false(f.spec.privileged);
	/* given: exactly those */
	char *masked[] = { "/bin/ls" }, *ro[] = { "/tmp" };
	f.sc.masked_paths = masked;
	f.sc.n_masked_paths = 1;
	f.sc.readonly_paths = ro;
	f.sc.n_readonly_paths = 1;
	assert_int_equal(build(&f, NULL), 0);
	assert_int_equal(f.spec.n_masked_paths, 1);
	assert_string_equal(f.spec.masked_paths[0], "/bin/ls");
	assert_int_equal(f.spec.n_readonly_paths, 1);
	assert_string_equal(f.spec.readonly_paths[0], "/tmp");
	char *bad[] = { "/proc/../etc/shadow" };
	f.sc.masked_paths = bad;
	pv_err_t *err = NULL;
	assert_true(build(&f, &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "masked_paths[0]"));
	pv_err_free(err);
}

static void test_privileged(void **state)
{
	struct fixture f;
	fixture_init(&f);
	f.sc.privileged = 1;
	pv_err_t *err = NULL;
	assert_true(build(&f, &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "privileged pod"));
	pv_err_free(err);
	f.psc.privileged = 1;
	Runtime__V1__SecurityProfile sp = RUNTIME__V1__SECURITY_PROFILE__INIT; /* RuntimeDefault */
	f.sc.seccomp = &sp;
	assert_int_equal(build(&f, NULL), 0);
	assert_true(f.spec.privileged);
	assert_int_equal(f.spec.n_masked_paths, 0);
	assert_int_equal(f.spec.n_readonly_paths, 0);
	assert_null(f.spec.seccomp); /* privileged ignores any profile, as containerd does */
}

static void test_pid_namespace(void **state)
{
	struct fixture f;
	fixture_init(&f);
	assert_int_equal(build(&f, NULL), 0);
	assert_int_equal(f.spec.pid_namespace, PODVISOR__AGENT__PID_NAMESPACE__PID_POD); /* unset = POD */
	Runtime__V1__NamespaceOption ns = RUNTIME__V1__NAMESPACE_OPTION__INIT;
	f.sc.namespace_options = &ns;
	ns.pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
	assert_int_equal(build(&f, NULL), 0);
	assert_int_equal(f.spec.pid_namespace, PODVISOR__AGENT__PID_NAMESPACE__PID_CONTAINER);
	ns.pid = RUNTIME__V1__NAMESPACE_MODE__TARGET;
	assert_true(build(&f, NULL) < 0);
	ns.target_id = "abc123";
	assert_int_equal(build(&f, NULL), 0);
	assert_int_equal(f.spec.pid_namespace, PODVISOR__AGENT__PID_NAMESPACE__PID_TARGET);
	assert_string_equal(f.spec.pid_target, "abc123");
	ns.pid = RUNTIME__V1__NAMESPACE_MODE__NODE;
	pv_err_t *err = NULL;
	assert_true(build(&f, &err) < 0);
	assert_non_null(strstr(err->msg, "hostPID"));
	pv_err_free(err);
	/* A host pod made with the node's PID namespace: its containers are in it. */
	f.host_pod = true;
	assert_int_equal(build(&f, NULL), 0);
	f.host_pod = false;
}

static const Podvisor__Agent__SeccompRule *rule_for(const Podvisor__Agent__Seccomp *s, const char *name)
{
	for (size_t i = 0; i < s->n_syscalls; i++)
		if (has(s->syscalls[i]->names, s->syscalls[i]->n_names, name))
			return s->syscalls[i];
	return NULL;
}

static void test_seccomp_kinds(void **state)
{
	struct fixture f;
	fixture_init(&f);
	assert_int_equal(build(&f, NULL), 0);
	assert_null(f.spec.seccomp); /* no profile: unconfined, as in containerd */
	Runtime__V1__SecurityProfile sp = RUNTIME__V1__SECURITY_PROFILE__INIT;
	sp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined;
	f.sc.seccomp = &sp;
	assert_int_equal(build(&f, NULL), 0);
	assert_null(f.spec.seccomp);
	sp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault;
	assert_int_equal(build(&f, NULL), 0);
	const Podvisor__Agent__Seccomp *s = f.spec.seccomp;
	assert_non_null(s);
	assert_string_equal(s->origin, "RuntimeDefault");
	assert_string_equal(s->default_action, "SCMP_ACT_ERRNO");
	assert_non_null(rule_for(s, "read"));
	assert_null(rule_for(s, "sethostname")); /* needs CAP_SYS_ADMIN */
	const Podvisor__Agent__SeccompRule *clone = rule_for(s, "clone");
	assert_non_null(clone);
	assert_int_equal(clone->n_args, 1); /* no namespace flags */
	assert_string_equal(clone->args[0]->op, "SCMP_CMP_MASKED_EQ");
	/* with CAP_SYS_ADMIN: namespaces, mount and sethostname are the capability's business */
	char *admin[] = { "CAP_SYS_ADMIN" };
	f.caps.bounding = admin;
	f.caps.n_bounding = 1;
	assert_int_equal(build(&f, NULL), 0);
	assert_non_null(rule_for(f.spec.seccomp, "sethostname"));
	clone = rule_for(f.spec.seccomp, "clone");
	assert_int_equal(clone->n_args, 0);
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/pv-test-seccomp-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* Loads text as a Localhost profile; returns the error message (static) or NULL. */
static const char *load_error(const char *text, Podvisor__Agent__Seccomp **out)
{
	static char msg[512];
	char *path = write_tmp(text);
	pv_err_t *err = NULL;
	int r = spec_seccomp_load(&arena, path, out, &err);
	unlink(path);
	if (r == 0) {
		free(path);
		return NULL;
	}
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, path)); /* every message names the file */
	snprintf(msg, sizeof(msg), "%s", err->msg);
	pv_err_free(err);
	free(path);
	return msg;
}

static void test_seccomp_localhost(void **state)
{
	Podvisor__Agent__Seccomp *s = NULL;
	assert_null(load_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"defaultErrnoRet\": 1,"
			       " \"architectures\": [\"SCMP_ARCH_X86_64\"], \"flags\": [\"SECCOMP_FILTER_FLAG_LOG\"],"
			       " \"syscalls\": [{\"names\": [\"mkdir\", \"mkdirat\"], \"action\": \"SCMP_ACT_ERRNO\","
			       " \"errnoRet\": 13, \"args\": [{\"index\": 1, \"value\": 448, \"valueTwo\": 0,"
			       " \"op\": \"SCMP_CMP_MASKED_EQ\"}]}], \"comment\": \"ignored\"}",
			       &s));
	assert_string_equal(s->default_action, "SCMP_ACT_ALLOW");
	assert_true(s->has_default_errno);
	assert_int_equal(s->n_architectures, 1);
	assert_int_equal(s->n_flags, 1);
	assert_int_equal(s->n_syscalls, 1);
	assert_int_equal(s->syscalls[0]->n_names, 2);
	assert_int_equal(s->syscalls[0]->errno_ret, 13);
	assert_int_equal(s->syscalls[0]->args[0]->index, 1);
	assert_int_equal(s->syscalls[0]->args[0]->value, 448);

	const char *m = load_error("{\"defaultAction\": ", &s);
	assert_non_null(strstr(m, "line 1"));
	m = load_error("[]", &s);
	assert_non_null(strstr(m, "not a JSON object"));
	m = load_error("{\"syscalls\": []}", &s);
	assert_non_null(strstr(m, "defaultAction is required"));
	m = load_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"mkdir\"],"
		       " \"action\": \"SCMP_ACT_MAYBE\"}]}",
		       &s);
	assert_non_null(strstr(m, "syscalls[0].action: unknown action \"SCMP_ACT_MAYBE\""));
	m = load_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [],"
		       " \"action\": \"SCMP_ACT_ERRNO\"}]}",
		       &s);
	assert_non_null(strstr(m, "names must list 1..1024 syscalls"));
	m = load_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"mkdir\"],"
		       " \"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 9, \"op\": \"SCMP_CMP_EQ\"}]}]}",
		       &s);
	assert_non_null(strstr(m, "syscalls[0].args[0].index must be 0..5"));
	m = load_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"SCMP_ARCH_Z80\"]}", &s);
	assert_non_null(strstr(m, "architectures[0]"));
	m = load_error("{\"defaultAction\": \"SCMP_ACT_NOTIFY\"}", &s);
	assert_non_null(strstr(m, "SCMP_ACT_NOTIFY"));
	m = load_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerPath\": \"/run/agent.sock\"}", &s);
	assert_non_null(strstr(m, "listenerPath"));
	m = load_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"defaultAction\": \"SCMP_ACT_KILL\"}", &s);
	assert_non_null(strstr(m, "duplicate"));

	pv_err_t *err = NULL;
	assert_true(spec_seccomp_load(&arena, "/nonexistent/profile.json", &s, &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "/nonexistent/profile.json"));
	pv_err_free(err);
	err = NULL;
	assert_true(spec_seccomp_load(&arena, "relative.json", &s, &err) < 0);
	assert_non_null(strstr(err->msg, "absolute"));
	pv_err_free(err);

	/* Through the CRI profile, the old "localhost/<path>" spelling names the same file. */
	char *path = write_tmp("{\"defaultAction\": \"SCMP_ACT_LOG\"}");
	Runtime__V1__SecurityProfile sp = RUNTIME__V1__SECURITY_PROFILE__INIT;
	sp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost;
	char *ref = NULL;
	assert_true(asprintf(&ref, "localhost%s", path) > 0);
	sp.localhost_ref = ref;
	assert_int_equal(spec_seccomp(&arena, &sp, NULL, 0, &s, NULL), 0);
	assert_string_equal(s->origin, path);
	unlink(path);
	err = NULL;
	assert_true(spec_seccomp(&arena, &sp, NULL, 0, &s, &err) < 0);
	assert_non_null(strstr(err->msg, "linux.security_context.seccomp"));
	pv_err_free(err);
	free(ref);
	free(path);
}

static void test_hostname(void **state)
{
	Runtime__V1__PodSandboxConfig pod = RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
	char buf[256], node[256];
	pod.hostname = "web-0";
	assert_string_equal(spec_pod_hostname(&pod, buf, sizeof(buf)), "web-0");
	pod.hostname = "";
	assert_int_equal(gethostname(node, sizeof(node)), 0);
	assert_string_equal(spec_pod_hostname(&pod, buf, sizeof(buf)), node);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_paths, teardown),
		cmocka_unit_test_teardown(test_privileged, teardown),
		cmocka_unit_test_teardown(test_pid_namespace, teardown),
		cmocka_unit_test_teardown(test_seccomp_kinds, teardown),
		cmocka_unit_test_teardown(test_seccomp_localhost, teardown),
		cmocka_unit_test(test_hostname),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
