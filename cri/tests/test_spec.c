/* CRI ContainerConfig + image config -> agent process spec, as containerd merges them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <signal.h>
#include <string.h>

#include "spec.h"

static struct cri_arena arena;
static int teardown(void **state)
{
	cri_arena_free(&arena);
	return 0;
}

static char *ep[] = { "/entry", "-x", NULL };
static char *cmd[] = { "default-arg", NULL };
static char *ienv[] = { "PATH=/img/bin", "A=image", "B=image", NULL };

static struct spec_image image(void)
{
	struct spec_image i = { .env = ienv, .entrypoint = ep, .cmd = cmd, .workdir = "/srv", .user = "" };
	return i;
}

/* A tiny passwd: root 0:0, app 1000:1000 in groups wheel(10) and audio(29). */
static int fake_user(void *o, const char *name, uint32_t *uid, uint32_t *gid)
{
	if (!strcmp(name, "root"))
		return *uid = 0, *gid = 0, 0;
	if (!strcmp(name, "app"))
		return *uid = 1000, *gid = 1000, 0;
	return -1;
}
static int fake_group(void *o, const char *name, uint32_t *gid)
{
	if (!strcmp(name, "wheel"))
		return *gid = 10, 0;
	return -1;
}
static size_t fake_groups_of(void *o, const char *user, uint32_t gid, uint32_t *out, size_t max)
{
	if (strcmp(user, "app"))
		return 0;
	out[0] = 10;
	out[1] = 29;
	return 2;
}
static const char *fake_name_of(void *o, uint32_t uid)
{
	return uid == 1000 ? "app" : uid == 0 ? "root" : NULL;
}
static const struct spec_ids ids = { fake_user, fake_group, fake_groups_of, fake_name_of, NULL };

static Podvisor__Agent__Process *build(Runtime__V1__ContainerConfig *cfg, struct spec_image *img, pv_err_t **err)
{
	Podvisor__Agent__Process *p = NULL;
	if (spec_build_process(&arena, cfg, img, &ids, "podhost", &p, err) < 0)
		return NULL;
	return p;
}

static const char *env_get(Podvisor__Agent__Process *p, const char *key)
{
	size_t n = strlen(key);
	for (size_t i = 0; i < p->n_env; i++)
		if (!strncmp(p->env[i], key, n) && p->env[i][n] == '=')
			return p->env[i] + n + 1;
	return NULL;
}

static void test_args_merge(void **state)
{
	Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
	struct spec_image img = image();
	pv_err_t *err = NULL;
	/* Neither: Entrypoint + Cmd. */
	Podvisor__Agent__Process *p = build(&cfg, &img, &err);
	assert_non_null(p);
	assert_int_equal(p->n_args, 3);
	assert_string_equal(p->args[0], "/entry");
	assert_string_equal(p->args[2], "default-arg");
	/* args only: Entrypoint + args. */
	char *args[] = { "a1", "a2" };
	cfg.args = args;
	cfg.n_args = 2;
	p = build(&cfg, &img, &err);
	assert_int_equal(p->n_args, 4);
	assert_string_equal(p->args[2], "a1");
	/* command: replaces Entrypoint and drops Cmd; args still follow. */
	char *command[] = { "/bin/sh", "-c" };
	cfg.command = command;
	cfg.n_command = 2;
	p = build(&cfg, &img, &err);
	assert_int_equal(p->n_args, 4);
	assert_string_equal(p->args[0], "/bin/sh");
	assert_string_equal(p->args[2], "a1");
	cfg.n_args = 0;
	p = build(&cfg, &img, &err);
	assert_int_equal(p->n_args, 2);
	/* Nothing at all: a clear error. */
	struct spec_image empty = { 0 };
	cfg.n_command = 0;
	assert_null(build(&cfg, &empty, &err));
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "Entrypoint"));
	pv_err_free(err);
}

static void test_env_and_cwd(void **state)
{
	Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
	struct spec_image img = image();
	Runtime__V1__KeyValue kv1 = RUNTIME__V1__KEY_VALUE__INIT, kv2 = RUNTIME__V1__KEY_VALUE__INIT;
	kv1.key = "B";
	kv1.value = "config";
	kv2.key = "C";
	kv2.value = "x=y";
	Runtime__V1__KeyValue *envs[] = { &kv1, &kv2 };
	cfg.envs = envs;
	cfg.n_envs = 2;
	pv_err_t *err = NULL;
	Podvisor__Agent__Process *p = build(&cfg, &img, &err);
	assert_non_null(p);
	assert_string_equal(env_get(p, "PATH"), "/img/bin");
	assert_string_equal(env_get(p, "A"), "image");
	assert_string_equal(env_get(p, "B"), "config");
	assert_string_equal(env_get(p, "C"), "x=y");
	assert_string_equal(env_get(p, "HOSTNAME"), "podhost");
	assert_string_equal(p->cwd, "/srv");
	cfg.working_dir = "/work";
	p = build(&cfg, &img, &err);
	assert_string_equal(p->cwd, "/work");
	cfg.working_dir = "relative";
	assert_null(build(&cfg, &img, &err));
	assert_non_null(strstr(err->msg, "not absolute"));
	pv_err_free(err);
	err = NULL;
	kv1.key = "BAD=KEY";
	cfg.working_dir = "";
	assert_null(build(&cfg, &img, &err));
	assert_non_null(strstr(err->msg, "config.envs[0]"));
	pv_err_free(err);
}

static void test_users(void **state)
{
	Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
	Runtime__V1__LinuxContainerConfig lc = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
	Runtime__V1__LinuxContainerSecurityContext sc = RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
	cfg.linux = &lc;
	lc.security_context = &sc;
	struct spec_image img = image();
	pv_err_t *err = NULL;
	/* Image user by name: uid, gid and its groups. */
	img.user = "app";
	Podvisor__Agent__Process *p = build(&cfg, &img, &err);
	assert_non_null(p);
	assert_int_equal(p->user->uid, 1000);
	assert_int_equal(p->user->gid, 1000);
	assert_int_equal(p->user->n_additional_gids, 2);
	/* "uid:group" with a group name. */
	img.user = "1000:wheel";
	p = build(&cfg, &img, &err);
	assert_int_equal(p->user->uid, 1000);
	assert_int_equal(p->user->gid, 10);
	/* run_as_user overrides the image; run_as_group overrides the gid; supplemental groups added. */
	Runtime__V1__Int64Value u = RUNTIME__V1__INT64_VALUE__INIT, g = RUNTIME__V1__INT64_VALUE__INIT;
	u.value = 4242;
	g.value = 77;
	int64_t sup[] = { 5 };
	sc.run_as_user = &u;
	sc.run_as_group = &g;
	sc.supplemental_groups = sup;
	sc.n_supplemental_groups = 1;
	p = build(&cfg, &img, &err);
	assert_int_equal(p->user->uid, 4242);
	assert_int_equal(p->user->gid, 77);
	assert_int_equal(p->user->n_additional_gids, 1);
	assert_int_equal(p->user->additional_gids[0], 5);
	/* A group without a user is refused (as containerd does). */
	sc.run_as_user = NULL;
	assert_null(build(&cfg, &img, &err));
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "run_as_group needs run_as_user"));
	pv_err_free(err);
	err = NULL;
	sc.run_as_username = "app";
	p = build(&cfg, &img, &err);
	assert_non_null(p);
	assert_int_equal(p->user->uid, 1000);
	assert_int_equal(p->user->gid, 77);
	/* Unknown names are errors naming the field. */
	sc.run_as_user = NULL;
	sc.run_as_group = NULL;
	sc.run_as_username = "nobody-here";
	assert_null(build(&cfg, &img, &err));
	assert_non_null(strstr(err->msg, "run_as_username"));
	assert_non_null(strstr(err->msg, "nobody-here"));
	pv_err_free(err);
	err = NULL;
	u.value = -5;
	sc.run_as_user = &u;
	assert_null(build(&cfg, &img, &err));
	assert_non_null(strstr(err->msg, "run_as_user"));
	pv_err_free(err);
}

static int has_cap(Podvisor__Agent__Process *p, const char *c)
{
	for (size_t i = 0; i < p->capabilities->n_bounding; i++)
		if (!strcmp(p->capabilities->bounding[i], c))
			return 1;
	return 0;
}

static void test_capabilities(void **state)
{
	Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
	Runtime__V1__LinuxContainerConfig lc = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
	Runtime__V1__LinuxContainerSecurityContext sc = RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
	Runtime__V1__Capability caps = RUNTIME__V1__CAPABILITY__INIT;
	cfg.linux = &lc;
	lc.security_context = &sc;
	struct spec_image img = image();
	pv_err_t *err = NULL;
	Podvisor__Agent__Process *p = build(&cfg, &img, &err);
	assert_int_equal(p->capabilities->n_bounding, 14);
	assert_true(has_cap(p, "CAP_CHOWN"));
	assert_false(has_cap(p, "CAP_SYS_ADMIN"));
	char *drop[] = { "ALL" }, *add[] = { "net_admin", "CAP_SYS_TIME" };
	caps.drop_capabilities = drop;
	caps.n_drop_capabilities = 1;
	caps.add_capabilities = add;
	caps.n_add_capabilities = 2;
	sc.capabilities = &caps;
	p = build(&cfg, &img, &err);
	assert_int_equal(p->capabilities->n_bounding, 2);
	assert_true(has_cap(p, "CAP_NET_ADMIN"));
	assert_true(has_cap(p, "CAP_SYS_TIME"));
	sc.capabilities = NULL;
	sc.privileged = 1;
	p = build(&cfg, &img, &err);
	assert_int_equal(p->capabilities->n_bounding, 41);
	sc.privileged = 0;
	char *bad[] = { "CAP_FLY" };
	caps.add_capabilities = bad;
	caps.n_add_capabilities = 1;
	sc.capabilities = &caps;
	assert_null(build(&cfg, &img, &err));
	assert_non_null(strstr(err->msg, "CAP_FLY"));
	pv_err_free(err);
}

static void test_resources(void **state)
{
	assert_int_equal(spec_shares_to_weight(2), 1);
	assert_int_equal(spec_shares_to_weight(1024), 39);
	assert_int_equal(spec_shares_to_weight(262144), 10000);
	assert_int_equal(spec_shares_to_weight(0), 0);
	Runtime__V1__LinuxContainerResources r = RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
	r.cpu_period = 100000;
	r.cpu_quota = 50000;
	r.cpu_shares = 512;
	r.memory_limit_in_bytes = 64 << 20;
	Podvisor__Agent__Resources *res = NULL;
	pv_err_t *err = NULL;
	assert_int_equal(spec_build_resources(&arena, &r, &res, &err), 0);
	assert_int_equal(res->cpu_quota_us, 50000);
	assert_int_equal(res->cpu_period_us, 100000);
	assert_int_equal(res->memory_limit, 64 << 20);
	assert_int_equal(res->cpu_weight, spec_shares_to_weight(512));
	r.memory_limit_in_bytes = 1000;
	assert_true(spec_build_resources(&arena, &r, &res, &err) < 0);
	assert_non_null(strstr(err->msg, "memory_limit_in_bytes"));
	pv_err_free(err);
}

static void test_stop_signal(void **state)
{
	Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
	assert_int_equal(spec_stop_signal(&cfg, NULL), SIGTERM);
	assert_int_equal(spec_stop_signal(&cfg, "SIGQUIT"), SIGQUIT);
	assert_int_equal(spec_stop_signal(&cfg, "9"), SIGKILL);
	assert_int_equal(spec_stop_signal(&cfg, "bogus"), SIGTERM);
	cfg.stop_signal = RUNTIME__V1__SIGNAL__SIGUSR1;
	assert_int_equal(spec_stop_signal(&cfg, "SIGQUIT"), SIGUSR1);
	cfg.stop_signal = RUNTIME__V1__SIGNAL__SIGRTMINPLUS1;
	assert_int_equal(spec_stop_signal(&cfg, NULL), SIGRTMIN + 1);
	assert_int_equal(spec_signal_from_name("RTMAX-2"), SIGRTMAX - 2);
	assert_int_equal(spec_signal_from_name("WINCH"), SIGWINCH);
	assert_int_equal(spec_signal_from_name("65"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_args_merge, teardown),
		cmocka_unit_test_teardown(test_env_and_cwd, teardown),
		cmocka_unit_test_teardown(test_users, teardown),
		cmocka_unit_test_teardown(test_capabilities, teardown),
		cmocka_unit_test_teardown(test_resources, teardown),
		cmocka_unit_test(test_stop_signal),
	};
	return cmocka_run_group_tests_name("cri_spec", tests, NULL, NULL);
}
