/* The RPC table: every path unique and well formed, lookups exact, handlers wired where built. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "server.h"

static void test_paths_unique_and_well_formed(void **state)
{
	assert_true(cri_methods_count >= 40);
	for (size_t i = 0; i < cri_methods_count; i++) {
		const char *p = cri_methods[i].path;
		assert_true(!strncmp(p, "/runtime.v1.RuntimeService/", 27) ||
			    !strncmp(p, "/runtime.v1.ImageService/", 25));
		assert_non_null(cri_methods[i].request);
		for (size_t j = i + 1; j < cri_methods_count; j++)
			assert_string_not_equal(p, cri_methods[j].path);
	}
}

static void test_find(void **state)
{
	const struct cri_method *m = cri_method_find("/runtime.v1.RuntimeService/Version");
	assert_non_null(m);
	assert_ptr_equal(m->request, &runtime__v1__version_request__descriptor);
	assert_non_null(m->handler);
	m = cri_method_find("/runtime.v1.ImageService/PullImage");
	assert_non_null(m);
	assert_ptr_equal(m->request, &runtime__v1__pull_image_request__descriptor);
	assert_null(cri_method_find("/runtime.v1.RuntimeService/Versio"));
	assert_null(cri_method_find("/runtime.v1alpha2.RuntimeService/Version"));
	assert_null(cri_method_find(""));
	m = cri_method_find("/runtime.v1.RuntimeService/GetContainerEvents");
	assert_non_null(m);
	assert_true(m->server_streaming);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths_unique_and_well_formed),
		cmocka_unit_test(test_find),
	};
	return cmocka_run_group_tests_name("cri_methods", tests, NULL, NULL);
}
