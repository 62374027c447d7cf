/* Image reference parsing, registry endpoints and config validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "../manifest.h"
#include "../options.h"
#include "../ref.h"
#include "error.h"

static void check(const char *in, const char *reg, const char *repo, const char *tag, const char *dg)
{
	struct image_ref r;
	pv_err_t *e = NULL;
	assert_int_equal(image_ref_parse(in, &r, &e), 0);
	assert_string_equal(r.registry, reg);
	assert_string_equal(r.repo, repo);
	if (tag)
		assert_string_equal(r.tag, tag);
	else
		assert_null(r.tag);
	if (dg)
		assert_string_equal(r.digest, dg);
	else
		assert_null(r.digest);
	image_ref_free(&r);
}

#define D64 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_normalise(void **state)
{
	check("busybox", "docker.io", "library/busybox", "latest", NULL);
	check("busybox:1.36", "docker.io", "library/busybox", "1.36", NULL);
	check("user/app", "docker.io", "user/app", "latest", NULL);
	check("docker.io/library/busybox:x", "docker.io", "library/busybox", "x", NULL);
	check("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000", "a/b", "v1", NULL);
	check("localhost/img", "localhost", "img", "latest", NULL);
	check("registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", NULL);
	check("quay.io/x/y@" D64, "quay.io", "x/y", NULL, D64);
	check("quay.io/x/y:t@" D64, "quay.io", "x/y", "t", D64);
}

static void bad(const char *in)
{
	struct image_ref r;
	pv_err_t *e = NULL;
	assert_int_not_equal(image_ref_parse(in, &r, &e), 0);
	assert_non_null(e);
	assert_int_equal(e->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(e->msg, "invalid image reference"));
	pv_err_free(e);
}

static void test_invalid(void **state)
{
	bad("");
	bad("library/UPPER");
	bad("a//b");
	bad("busybox:");
	bad("busybox@sha256:1234");
	bad("busybox@md5:0123456789abcdef0123456789abcdef");
	bad("bad name");
	bad("/abs");
	bad("a/../b");
	bad("x:bad tag");
}

static void test_endpoints(void **state)
{
	json_t *cfg = json_loads("{\"mirrors\":{\"docker.io\":[\"http://127.0.0.1:1/\"]},"
				 "\"insecure_registries\":[\"myreg:5000\"],\"platform\":\"linux/arm64/v8\"}",
				 0, NULL);
	struct image_options o;
	pv_err_t *e = NULL;
	assert_int_equal(image_options_parse(cfg, &o, &e), 0);
	assert_string_equal(o.arch, "arm64");
	assert_string_equal(o.variant, "v8");
	char **v = image_options_endpoints(&o, "docker.io");
	assert_string_equal(v[0], "http://127.0.0.1:1/");
	assert_string_equal(v[1], "https://registry-1.docker.io");
	assert_null(v[2]);
	image_strv_free(v);
	v = image_options_endpoints(&o, "myreg:5000");
	assert_string_equal(v[0], "http://myreg:5000");
	image_strv_free(v);
	v = image_options_endpoints(&o, "localhost:5000");
	assert_string_equal(v[0], "http://localhost:5000");
	image_strv_free(v);
	v = image_options_endpoints(&o, "127.0.0.1:5000");
	assert_string_equal(v[0], "http://127.0.0.1:5000");
	image_strv_free(v);
	v = image_options_endpoints(&o, "quay.io");
	assert_string_equal(v[0], "https://quay.io");
	image_strv_free(v);
	image_options_free(&o);
	json_decref(cfg);
}

static void cfg_bad(const char *txt, const char *want)
{
	json_t *cfg = json_loads(txt, 0, NULL);
	assert_non_null(cfg);
	struct image_options o;
	pv_err_t *e = NULL;
	assert_int_not_equal(image_options_parse(cfg, &o, &e), 0);
	assert_int_equal(e->status, PV_INVALID_ARGUMENT);
	if (!strstr(e->msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", e->msg, want);
	pv_err_free(e);
	json_decref(cfg);
}

static void test_config_errors(void **state)
{
	cfg_bad("{\"foo\":1}", "image: unknown key \"foo\"");
	cfg_bad("{\"mirrors\":{\"docker.io\":[\"ftp://x\"]}}", "image.mirrors[\"docker.io\"]");
	cfg_bad("{\"mirrors\":[]}", "image.mirrors");
	cfg_bad("{\"timeout_seconds\":0}", "image.timeout_seconds");
	cfg_bad("{\"platform\":\"linux\"}", "image.platform");
	cfg_bad("{\"insecure_registries\":[1]}", "image.insecure_registries");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalise),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_config_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
