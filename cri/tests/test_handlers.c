/* Runtime handlers: the table per runtime.arch, lookup errors, the platforms a pull may take. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"

static const char *plat(const struct image_platform *p, char *b)
{
	return image_platform_format(p, b);
}

static void test_default_is_host(void **state)
{
	struct cri_handlers h;
	pv_err_t *e = NULL;
	char b[IMAGE_PLATFORM_STR];
	assert_int_equal(cri_handlers_build(NULL, "x86_64", &h, &e), 0);
	assert_int_equal(h.def, VMM_ARCH_X86_64);
	const struct cri_handler *d = cri_handler_find(&h, "", &e), *p = cri_handler_find(&h, "podvisor", &e);
	assert_non_null(d);
	assert_non_null(p);
	assert_int_equal(d->arch, VMM_ARCH_X86_64);
	assert_string_equal(plat(&d->platforms[0], b), "linux/amd64");
	const struct cri_handler *a = cri_handler_find(&h, "arm64", &e);
	assert_int_equal(a->arch, VMM_ARCH_ARM64);
	assert_int_equal(a->n_platforms, 1);
	assert_string_equal(plat(&a->platforms[0], b), "linux/arm64");
	assert_false(a->x86_binfmt);
	const struct cri_handler *ax = cri_handler_find(&h, "arm64-x86", &e);
	assert_true(ax->x86_binfmt);
	assert_int_equal(ax->arch, VMM_ARCH_ARM64);
	assert_int_equal(ax->n_platforms, 2); /* arm64 first: an index's arm64 entry wins */
	assert_string_equal(plat(&ax->platforms[0], b), "linux/arm64");
	assert_string_equal(plat(&ax->platforms[1], b), "linux/amd64");
	/* arm64 host: "host" is arm64 */
	assert_int_equal(cri_handlers_build("host", "aarch64", &h, &e), 0);
	assert_int_equal(cri_handler_find(&h, "", &e)->arch, VMM_ARCH_ARM64);
}

static void test_runtime_arch(void **state)
{
	struct cri_handlers h;
	pv_err_t *e = NULL;
	assert_int_equal(cri_handlers_build("arm64", "x86_64", &h, &e), 0);
	assert_int_equal(h.host, VMM_ARCH_X86_64);
	assert_int_equal(cri_handler_find(&h, "", &e)->arch, VMM_ARCH_ARM64);
	assert_int_equal(cri_handler_find(&h, "x86_64", &e)->arch, VMM_ARCH_X86_64);
	assert_int_not_equal(cri_handlers_build("riscv64", "x86_64", &h, &e), 0);
	assert_int_equal(e->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(e->msg, "runtime.arch: \"riscv64\" is not one of host, x86_64, arm64"));
	pv_err_free(e);
	e = NULL;
	assert_int_not_equal(cri_handlers_build(NULL, "s390x", &h, &e), 0);
	assert_int_equal(e->status, PV_FAILED_PRECONDITION);
	pv_err_free(e);
}

static void test_unknown_handler(void **state)
{
	struct cri_handlers h;
	pv_err_t *e = NULL;
	assert_int_equal(cri_handlers_build(NULL, "x86_64", &h, &e), 0);
	assert_null(cri_handler_find(&h, "kata", &e));
	assert_int_equal(e->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(e->msg, "runtime_handler \"kata\" is not configured"));
	assert_non_null(strstr(e->msg, "\"arm64-x86\""));
	pv_err_free(e);
}

static void test_any_platforms(void **state)
{
	struct cri_handlers h;
	pv_err_t *e = NULL;
	char b[IMAGE_PLATFORM_STR];
	struct image_platform out[IMAGE_PLATFORMS_MAX];
	assert_int_equal(cri_handlers_build(NULL, "x86_64", &h, &e), 0);
	/* Both guests present: default first, each platform once. */
	assert_int_equal(cri_handlers_any_platforms(&h, out, IMAGE_PLATFORMS_MAX), 2);
	assert_string_equal(plat(&out[0], b), "linux/amd64");
	assert_string_equal(plat(&out[1], b), "linux/arm64");
	/* No arm64 guest built: only the default's platform. */
	h.guests[VMM_ARCH_ARM64].missing = "guest kernel not found";
	assert_int_equal(cri_handlers_any_platforms(&h, out, IMAGE_PLATFORMS_MAX), 1);
	assert_string_equal(plat(&out[0], b), "linux/amd64");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_is_host),
		cmocka_unit_test(test_runtime_arch),
		cmocka_unit_test(test_unknown_handler),
		cmocka_unit_test(test_any_platforms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
