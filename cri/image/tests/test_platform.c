/* Platforms: parsing, aliases, matching with variants, and choosing from an index by preference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../manifest.h"
#include "../platform.h"
#include "error.h"

#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define MT_M "\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\""

static const char index_json[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
	"{" MT_M ",\"digest\":\"" DA "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\","
	"\"variant\":\"v8\"}},"
	"{" MT_M ",\"digest\":\"" DB "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
	"{" MT_M ",\"digest\":\"" DC "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\","
	"\"variant\":\"v7\"}}]}";

static struct image_platform plat(const char *s)
{
	struct image_platform p;
	pv_err_t *e = NULL;
	if (image_platform_parse(s, &p, &e) < 0)
		fail_msg("%s: %s", s, e->msg);
	return p;
}

static void test_parse_and_format(void **state)
{
	char b[IMAGE_PLATFORM_STR];
	struct image_platform p = plat("linux/aarch64");
	assert_string_equal(image_platform_format(&p, b), "linux/arm64");
	p = plat("linux/x86_64");
	assert_string_equal(image_platform_format(&p, b), "linux/amd64");
	p = plat("linux/arm/v7");
	assert_string_equal(image_platform_format(&p, b), "linux/arm/v7");
	static const char *const bad[] = { "", "linux", "linux/", "/amd64", "linux/amd64/v1/x", "Linux/amd64",
					   "linux/amd 64", "linux/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pv_err_t *e = NULL;
		if (image_platform_parse(bad[i], &p, &e) == 0)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_int_equal(e->status, PV_INVALID_ARGUMENT);
		pv_err_free(e);
	}
}

static void test_match(void **state)
{
	struct image_platform a = plat("linux/arm64"), a8 = plat("linux/arm64/v8"), a9 = plat("linux/arm64/v9");
	struct image_platform x = plat("linux/amd64"), w = plat("windows/amd64");
	assert_true(image_platform_match(&a, &a8)); /* arm64 means v8 */
	assert_true(image_platform_match(&a8, &a));
	assert_false(image_platform_match(&a9, &a));
	assert_false(image_platform_match(&a, &x));
	assert_false(image_platform_match(&x, &w));
	struct image_platform want[] = { a, x };
	assert_int_equal(image_platform_find(want, 2, &x), 1);
	assert_int_equal(image_platform_find(want, 2, &a8), 0);
	assert_int_equal(image_platform_find(want, 2, &w), -1);
	char *d = image_platforms_describe(want, 2);
	assert_string_equal(d, "linux/arm64 or linux/amd64");
	free(d);
}

static void test_select_by_preference(void **state)
{
	struct image_doc d;
	pv_err_t *e = NULL;
	const struct image_descriptor *sel;
	assert_int_equal(image_doc_parse(index_json, strlen(index_json), NULL, &d, &e), 0);
	struct image_platform arm_first[] = { plat("linux/arm64"), plat("linux/amd64") };
	assert_int_equal(image_doc_select_platforms(&d, arm_first, 2, &sel, &e), 0);
	assert_string_equal(sel->digest, DA);
	struct image_platform x86_first[] = { plat("linux/amd64"), plat("linux/arm64") };
	assert_int_equal(image_doc_select_platforms(&d, x86_first, 2, &sel, &e), 0);
	assert_string_equal(sel->digest, DB);
	struct image_platform v7 = plat("linux/arm/v7");
	assert_int_equal(image_doc_select_platforms(&d, &v7, 1, &sel, &e), 0);
	assert_string_equal(sel->digest, DC);
	/* Nothing wanted is there: the error names what was wanted and every platform there is. */
	struct image_platform none[] = { plat("linux/riscv64"), plat("linux/s390x") };
	assert_int_not_equal(image_doc_select_platforms(&d, none, 2, &sel, &e), 0);
	assert_int_equal(e->status, PV_NOT_FOUND);
	assert_string_equal(e->msg, "no manifest for platform linux/riscv64 or linux/s390x in index "
				    "(has: linux/arm64/v8, linux/amd64, linux/arm/v7)");
	pv_err_free(e);
	image_doc_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_format),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_select_by_preference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
