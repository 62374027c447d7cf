/* Unit tests: request validation in the agent (untrusted input from the host). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_create_request),
		cmocka_unit_test(test_other_requests),
		cmocka_unit_test(test_refresh_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
