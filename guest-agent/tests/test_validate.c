/* Unit tests: request validation in the agent (untrusted input from the host). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "sysctl.h"
#include "validate.h"

static void test_ids(void **state)
{
	assert_int_equal(validate_id("abc-1_2.3", "id", NULL), 0);
	assert_true(validate_id("", "id", NULL) < 0);
	assert_true(validate_id("..", "id", NULL) < 0);
	assert_true(validate_id("a/b", "id", NULL) < 0);
	assert_true(validate_id("a b", "id", NULL) < 0);
	char longid[70];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[69] = 0;
	assert_true(validate_id(longid, "id", NULL) < 0);
}

static void test_paths(void **state)
{
	pv_err_t *err = NULL;
	assert_int_equal(validate_abs_path("/etc/resolv.conf", "p", NULL), 0);
	assert_int_equal(validate_abs_path("//a///b/", "p", NULL), 0);
	assert_int_equal(validate_abs_path("/a/..b/c..", "p", NULL), 0);
	assert_true(validate_abs_path("relative", "p", NULL) < 0);
	assert_true(validate_abs_path("/a/../../etc", "p", &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	pv_err_free(err);
	assert_true(validate_abs_path("/..", "p", NULL) < 0);
	assert_true(validate_abs_path("/a/./b", "p", NULL) < 0);
	assert_true(validate_abs_path("/a/\xff", "p", NULL) < 0);
}

static void test_names(void **state)
{
	assert_int_equal(validate_scsi_address("0:0:1:0", NULL), 0);
	assert_true(validate_scsi_address("0:0:1", NULL) < 0);
	assert_true(validate_scsi_address("0:0:1:0/../x", NULL) < 0);
	assert_true(validate_scsi_address("-1:0:1:0", NULL) < 0);
	assert_int_equal(validate_rlimit_name("RLIMIT_NOFILE"), RLIMIT_NOFILE);
	assert_int_equal(validate_rlimit_name("RLIMIT_BOGUS"), -1);
	assert_int_equal(validate_cap_name("CAP_SYS_ADMIN"), 21);
	assert_int_equal(validate_cap_name("CAP_CHECKPOINT_RESTORE"), 40);
	assert_int_equal(validate_cap_name("cap_sys_admin"), -1);
}

/* A minimal valid create request; tests break one thing at a time. */
struct cc {
	Podvisor__Agent__Request req;
	Podvisor__Agent__CreateContainerRequest c;
	Podvisor__Agent__Rootfs fs;
	Podvisor__Agent__Process p;
	Podvisor__Agent__Mount m, *mp[1];
	char *args[1];
};

static void cc_init(struct cc *x)
{
	podvisor__agent__request__init(&x->req);
	podvisor__agent__create_container_request__init(&x->c);
	podvisor__agent__rootfs__init(&x->fs);
	podvisor__agent__process__init(&x->p);
	podvisor__agent__mount__init(&x->m);
	x->args[0] = (char *)"/bin/sh";
	x->p.args = x->args;
	x->p.n_args = 1;
	x->fs.scsi_address = (char *)"0:0:1:0";
	x->c.container_id = (char *)"c1";
	x->c.rootfs = &x->fs;
	x->c.process = &x->p;
	x->m.destination = (char *)"/data";
	x->m.type = (char *)"bind";
	x->m.source = (char *)"/run/podvisor/vol";
	x->mp[0] = &x->m;
	x->c.mounts = x->mp;
	x->c.n_mounts = 1;
	x->req.req_case = PODVISOR__AGENT__REQUEST__REQ_CREATE_CONTAINER;
	x->req.create_container = &x->c;
}

static void test_create_request(void **state)
{
	struct cc x;
	cc_init(&x);
	assert_int_equal(validate_request(&x.req, NULL), 0);

	cc_init(&x);
	x.m.destination = (char *)"/data/../../../etc";
	pv_err_t *err = NULL;
	assert_true(validate_request(&x.req, &err) < 0);
	assert_non_null(strstr(err->msg, "'..'"));
	pv_err_free(err);

	cc_init(&x);
	x.c.rootfs = NULL;
	assert_true(validate_request(&x.req, NULL) < 0);

	cc_init(&x);
	x.fs.scsi_address = (char *)"";
	x.fs.device_path = (char *)"/etc/shadow";
	assert_true(validate_request(&x.req, NULL) < 0);

	cc_init(&x);
	x.c.process = NULL;
	assert_true(validate_request(&x.req, NULL) < 0);

	cc_init(&x);
	x.p.n_args = 0;
	assert_true(validate_request(&x.req, NULL) < 0);

	cc_init(&x);
	x.p.cwd = (char *)"tmp";
	assert_true(validate_request(&x.req, NULL) < 0);

	cc_init(&x);
	char *env[1] = { (char *)"NOEQUALS" };
	x.p.env = env;
	x.p.n_env = 1;
	assert_true(validate_request(&x.req, NULL) < 0);

	cc_init(&x);
	x.p.stdout_stream = 5;
	x.p.stderr_stream = 5;
	assert_true(validate_request(&x.req, NULL) < 0);
	x.p.terminal = true; /* stderr is unused with a tty */
	assert_int_equal(validate_request(&x.req, NULL), 0);

	cc_init(&x);
	Podvisor__Agent__Capabilities caps = PODVISOR__AGENT__CAPABILITIES__INIT;
	char *bad[1] = { (char *)"CAP_TOTAL_CONTROL" };
	caps.bounding = bad;
	caps.n_bounding = 1;
	x.p.capabilities = &caps;
	assert_true(validate_request(&x.req, NULL) < 0);

	cc_init(&x);
	Podvisor__Agent__Rlimit rl = PODVISOR__AGENT__RLIMIT__INIT, *rlp[1] = { &rl };
	rl.type = (char *)"RLIMIT_NOFILE";
	rl.soft = 10;
	rl.hard = 5;
	x.p.rlimits = rlp;
	x.p.n_rlimits = 1;
	assert_true(validate_request(&x.req, NULL) < 0);
}

static void test_other_requests(void **state)
{
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	pv_err_t *err = NULL;
	assert_true(validate_request(&req, &err) < 0);
	assert_int_equal(err->status, PV_UNIMPLEMENTED);
	pv_err_free(err);
	Podvisor__Agent__SignalProcessRequest sig = PODVISOR__AGENT__SIGNAL_PROCESS_REQUEST__INIT;
	sig.container_id = (char *)"c1";
	sig.signal = 0;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_SIGNAL_PROCESS;
	req.signal_process = &sig;
	assert_true(validate_request(&req, NULL) < 0);
	sig.signal = 15;
	assert_int_equal(validate_request(&req, NULL), 0);
	Podvisor__Agent__CreateSandboxRequest sb = PODVISOR__AGENT__CREATE_SANDBOX_REQUEST__INIT;
	Podvisor__Agent__KeyValue kv = PODVISOR__AGENT__KEY_VALUE__INIT, *kvp[1] = { &kv };
	kv.key = (char *)"net/../../../etc/passwd";
	sb.sysctls = kvp;
	sb.n_sysctls = 1;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_CREATE_SANDBOX;
	req.create_sandbox = &sb;
	assert_true(validate_request(&req, NULL) < 0);
	kv.key = (char *)"net.ipv4.ip_forward";
	assert_int_equal(validate_request(&req, NULL), 0);
}

/* Refresh (a template's clone): a seed of 32..512 bytes, a MAC that looks like one. */
static void test_refresh_request(void **state)
{
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	Podvisor__Agent__RefreshRequest r = PODVISOR__AGENT__REFRESH_REQUEST__INIT;
	uint8_t seed[600] = { 0 };
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_REFRESH;
	req.refresh = &r;
	assert_int_equal(validate_request(&req, NULL), 0); /* nothing to do is fine */
	r.entropy.data = seed;
	r.entropy.len = 64;
	r.mac = (char *)"02:00:00:00:00:01";
	assert_int_equal(validate_request(&req, NULL), 0);
	r.entropy.len = 8;
	pv_err_t *err = NULL;
	assert_true(validate_request(&req, &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	pv_err_free(err);
	r.entropy.len = sizeof(seed);
	assert_true(validate_request(&req, NULL) < 0);
	r.entropy.len = 32;
	r.mac = (char *)"02:00";
	assert_true(validate_request(&req, NULL) < 0);
}

static void test_sysctl_names(void **state)
{
	char path[320];
	assert_int_equal(sysctl_path("net.ipv4.ip_forward", path, sizeof(path), NULL), 0);
	assert_string_equal(path, "/proc/sys/net/ipv4/ip_forward");
	/* kubelet's form for a dotted component: '/' stands for a literal '.' */
	assert_int_equal(sysctl_path("net.ipv4.conf.eth0/100.forwarding", path, sizeof(path), NULL), 0);
	assert_string_equal(path, "/proc/sys/net/ipv4/conf/eth0.100/forwarding");
	assert_int_equal(sysctl_path("kernel.shm_rmid_forced", path, sizeof(path), NULL), 0);
	assert_string_equal(path, "/proc/sys/kernel/shm_rmid_forced");
	pv_err_t *err = NULL;
	assert_true(sysctl_path("net..ipv4", path, sizeof(path), &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "net..ipv4"));
	pv_err_free(err);
	assert_true(sysctl_path("", path, sizeof(path), NULL) < 0);
	assert_true(sysctl_path(".net", path, sizeof(path), NULL) < 0);
	assert_true(sysctl_path("net.", path, sizeof(path), NULL) < 0);
	assert_true(sysctl_path("net/../x", path, sizeof(path), NULL) < 0); /* "net..." -> empty components */
	assert_true(sysctl_path("a b", path, sizeof(path), NULL) < 0);
	assert_true(sysctl_path("a\nb", path, sizeof(path), NULL) < 0);
}

static void test_seccomp_profile(void **state)
{
	Podvisor__Agent__Seccomp sc = PODVISOR__AGENT__SECCOMP__INIT;
	Podvisor__Agent__SeccompRule r = PODVISOR__AGENT__SECCOMP_RULE__INIT, *rp[1] = { &r };
	Podvisor__Agent__SeccompArg a = PODVISOR__AGENT__SECCOMP_ARG__INIT, *ap[1] = { &a };
	char *names[1] = { (char *)"mkdir" };
	char *arches[1] = { (char *)"SCMP_ARCH_X86_64" };
	sc.default_action = (char *)"SCMP_ACT_ALLOW";
	sc.architectures = arches;
	sc.n_architectures = 1;
	sc.syscalls = rp;
	sc.n_syscalls = 1;
	r.names = names;
	r.n_names = 1;
	r.action = (char *)"SCMP_ACT_ERRNO";
	r.args = ap;
	r.n_args = 1;
	a.op = (char *)"SCMP_CMP_MASKED_EQ";
	a.index = 1;
	assert_int_equal(validate_seccomp(&sc, NULL), 0);

	pv_err_t *err = NULL;
	a.index = 6;
	assert_true(validate_seccomp(&sc, &err) < 0);
	assert_non_null(strstr(err->msg, "syscalls[0]"));
	pv_err_free(err);
	err = NULL;
	a.index = 0;
	a.op = (char *)"SCMP_CMP_SIMILAR";
	assert_true(validate_seccomp(&sc, NULL) < 0);
	a.op = (char *)"SCMP_CMP_EQ";
	r.action = (char *)"SCMP_ACT_NOTIFY";
	assert_true(validate_seccomp(&sc, &err) < 0);
	assert_non_null(strstr(err->msg, "NOTIFY"));
	pv_err_free(err);
	r.action = (char *)"SCMP_ACT_KILL";
	names[0] = (char *)"mkdir; reboot";
	assert_true(validate_seccomp(&sc, NULL) < 0);
	names[0] = (char *)"mkdir";
	arches[0] = (char *)"SCMP_ARCH_VAX";
	assert_true(validate_seccomp(&sc, NULL) < 0);
	arches[0] = (char *)"SCMP_ARCH_X86_64";
	sc.default_action = (char *)"";
	assert_true(validate_seccomp(&sc, NULL) < 0);
	sc.default_action = (char *)"SCMP_ACT_LOG";
	r.has_errno_ret = 1;
	r.errno_ret = 5000;
	assert_true(validate_seccomp(&sc, NULL) < 0);
	r.errno_ret = 38;
	assert_int_equal(validate_seccomp(&sc, NULL), 0);

	/* ... and as part of a create request, with the other security fields */
	struct cc x;
	cc_init(&x);
	x.c.seccomp = &sc;
	char *masked[1] = { (char *)"/proc/kcore" };
	x.c.masked_paths = masked;
	x.c.n_masked_paths = 1;
	assert_int_equal(validate_request(&x.req, NULL), 0);
	masked[0] = (char *)"/proc/../etc";
	assert_true(validate_request(&x.req, NULL) < 0);
	masked[0] = (char *)"/proc/kcore";
	x.c.pid_namespace = PODVISOR__AGENT__PID_NAMESPACE__PID_TARGET;
	assert_true(validate_request(&x.req, NULL) < 0); /* no target */
	x.c.pid_target = (char *)"other";
	assert_int_equal(validate_request(&x.req, NULL), 0);
	x.c.pid_namespace = 7;
	assert_true(validate_request(&x.req, NULL) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_create_request),
		cmocka_unit_test(test_other_requests),
		cmocka_unit_test(test_refresh_request),
		cmocka_unit_test(test_sysctl_names),
		cmocka_unit_test(test_seccomp_profile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
