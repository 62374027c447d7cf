/* Store records, lookup by name/id/digest, removal with GC, pins, config validation at open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../digest.h"
#include "../store.h"
#include "error.h"
#include "util.h"

#define CHAIN "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define LAYER "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define MANI "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

static char root[64];
static char config_id[IMAGE_DIGEST_LEN + 1];

static void put(const char *rel, const char *data)
{
	char *p = pv_xasprintf("%s/images/%s", root, rel);
	pv_err_t *e = NULL;
	assert_int_equal(pv_write_file_atomic(p, data, strlen(data), 0644, &e), 0);
	free(p);
}

static int exists(const char *rel)
{
	char *p = pv_xasprintf("%s/images/%s", root, rel);
	int r = access(p, F_OK) == 0;
	free(p);
	return r;
}

/* A store with one image written by hand: config blob, a layer blob, a record, an ext4 file. */
static int setup(void **state)
{
	snprintf(root, sizeof(root), "/tmp/pv-test-store-XXXXXX");
	assert_non_null(mkdtemp(root));
	struct image_store *s;
	pv_err_t *e = NULL;
	assert_int_equal(image_store_open(root, NULL, &s, &e), 0); /* creates the layout */
	image_store_close(s);
	const char *cfg = "{\"config\":{\"User\":\"nobody\",\"Entrypoint\":[\"/bin/app\"],\"WorkingDir\":\"/srv\"},"
			  "\"rootfs\":{\"diff_ids\":[\"" LAYER "\"]}}";
	image_digest_buf(cfg, strlen(cfg), config_id);
	char *rel = pv_xasprintf("blobs/sha256/%s", config_id + 7);
	put(rel, cfg);
	free(rel);
	put("blobs/sha256/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd", "layer");
	put("blobs/sha256/ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "orphan");
	put("ext4/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.ext4", "fs");
	char *recj = pv_xasprintf("{\"id\":\"%s\",\"repo_tags\":[\"docker.io/library/app:1\"],"
				  "\"repo_digests\":[\"docker.io/library/app@" MANI "\"],"
				  "\"blobs\":[\"%s\",\"" LAYER "\"],\"chain_id\":\"" CHAIN "\",\"size\":42,\"created_ns\":1}",
				  config_id, config_id);
	rel = pv_xasprintf("records/%s.json", config_id + 7);
	put(rel, recj);
	free(rel);
	free(recj);
	return 0;
}

static int teardown(void **state)
{
	pv_err_t *e = NULL;
	pv_rm_rf(root, &e);
	return 0;
}

static void test_lookup(void **state)
{
	struct image_store *s;
	pv_err_t *e = NULL;
	assert_int_equal(image_store_open(root, NULL, &s, &e), 0);
	const char *names[] = { "app:1", "docker.io/library/app:1", config_id, config_id + 7, "app@" MANI };
	char short_id[20];
	snprintf(short_id, sizeof(short_id), "%.12s", config_id + 7);
	for (size_t i = 0; i < 6; i++) {
		struct image_info *info;
		const char *n = i < 5 ? names[i] : short_id;
		assert_int_equal(image_store_resolve(s, n, &info, &e), 0);
		assert_string_equal(info->id, config_id);
		assert_int_equal(info->size, 42);
		assert_false(info->has_uid);
		assert_string_equal(info->username, "nobody");
		assert_string_equal(info->entrypoint[0], "/bin/app");
		assert_string_equal(info->workdir, "/srv");
		assert_non_null(strstr(info->ext4_path, "/images/ext4/cccc"));
		image_info_free(info);
	}
	struct image_info *info;
	assert_int_not_equal(image_store_resolve(s, "app:2", &info, &e), 0);
	assert_int_equal(e->status, PV_NOT_FOUND);
	pv_err_free(e);
	e = NULL;
	struct image_info **v;
	size_t n;
	assert_int_equal(image_store_list(s, &v, &n, &e), 0);
	assert_int_equal(n, 1);
	image_info_list_free(v, n);
	/* a second process cannot open the same store */
	struct image_store *s2;
	assert_int_not_equal(image_store_open(root, NULL, &s2, &e), 0);
	assert_int_equal(e->status, PV_FAILED_PRECONDITION);
	pv_err_free(e);
	image_store_close(s);
}

static void test_remove_pinned_then_release(void **state)
{
	struct image_store *s;
	pv_err_t *e = NULL;
	assert_int_equal(image_store_open(root, NULL, &s, &e), 0);
	struct image_info *info;
	assert_int_equal(image_store_acquire(s, "app:1", &info, &e), 0);
	int removed = -1;
	assert_int_equal(image_store_remove(s, "app:1", &removed, &e), 0);
	assert_int_equal(removed, 1);
	assert_false(exists("blobs/sha256/ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"));
	assert_false(exists("blobs/sha256/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"));
	/* still in use: the ext4 stays */
	assert_true(exists("ext4/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.ext4"));
	assert_int_equal(image_store_remove(s, "app:1", &removed, &e), 0);
	assert_int_equal(removed, 0);
	image_store_release(s, info->chain_id);
	assert_false(exists("ext4/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.ext4"));
	image_info_free(info);
	image_store_close(s);
}

/* A second image under the same tag for linux/arm64 (the hand-written one has no platform: it
 * counts as the store's default, the host's). */
static void add_arm64_image(char *arm_id)
{
	const char *cfg = "{\"architecture\":\"arm64\",\"os\":\"linux\",\"rootfs\":{\"diff_ids\":[\"" LAYER "\"]}}";
	image_digest_buf(cfg, strlen(cfg), arm_id);
	char *rel = pv_xasprintf("blobs/sha256/%s", arm_id + 7);
	put(rel, cfg);
	free(rel);
	char *recj = pv_xasprintf("{\"id\":\"%s\",\"repo_tags\":[\"docker.io/library/app:1\"],"
				  "\"repo_digests\":[\"docker.io/library/app@" MANI "\"],"
				  "\"blobs\":[\"%s\",\"" LAYER "\"],\"chain_id\":\"" CHAIN "\",\"size\":7,"
				  "\"created_ns\":2,\"platform\":\"linux/arm64\"}",
				  arm_id, arm_id);
	rel = pv_xasprintf("records/%s.json", arm_id + 7);
	put(rel, recj);
	free(rel);
	free(recj);
}

static void test_one_tag_per_platform(void **state)
{
	char arm_id[IMAGE_DIGEST_LEN + 1];
	add_arm64_image(arm_id);
	struct image_store *s;
	pv_err_t *e = NULL;
	assert_int_equal(image_store_open(root, NULL, &s, &e), 0);
	struct image_platform arm, x86;
	assert_int_equal(image_platform_parse("linux/arm64", &arm, &e), 0);
	assert_int_equal(image_platform_parse("linux/amd64", &x86, &e), 0);
	struct image_info *info;
	/* No platform named: the host's (amd64 here) wins the tag and the repo digest. */
	assert_int_equal(image_store_resolve(s, "app:1", &info, &e), 0);
	assert_string_equal(info->id, config_id);
	image_info_free(info);
	assert_int_equal(image_store_resolve_for(s, "app@" MANI, &arm, 1, &info, &e), 0);
	assert_string_equal(info->id, arm_id);
	assert_string_equal(info->platform, "linux/arm64");
	image_info_free(info);
	struct image_platform arm_then_x86[] = { arm, x86 }, x86_then_arm[] = { x86, arm };
	assert_int_equal(image_store_resolve_for(s, "app:1", arm_then_x86, 2, &info, &e), 0);
	assert_string_equal(info->id, arm_id);
	image_info_free(info);
	assert_int_equal(image_store_resolve_for(s, "app:1", x86_then_arm, 2, &info, &e), 0);
	assert_string_equal(info->id, config_id);
	image_info_free(info);
	/* An id names one image whatever the platform asked for. */
	assert_int_equal(image_store_resolve_for(s, config_id, &arm, 1, &info, &e), 0);
	assert_string_equal(info->id, config_id);
	image_info_free(info);
	/* A platform nobody pulled for gets some image with the tag; the caller checks ->platform. */
	struct image_platform s390;
	assert_int_equal(image_platform_parse("linux/s390x", &s390, &e), 0);
	assert_int_equal(image_store_resolve_for(s, "app:1", &s390, 1, &info, &e), 0);
	assert_non_null(info->platform);
	image_info_free(info);
	image_store_close(s);
}

static void test_bad_config(void **state)
{
	json_t *cfg = json_loads("{\"mirrors\":{}, \"bogus\":true}", 0, NULL);
	struct image_store *s;
	pv_err_t *e = NULL;
	assert_int_not_equal(image_store_open(root, cfg, &s, &e), 0);
	assert_int_equal(e->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(e->msg, "image: unknown key \"bogus\""));
	pv_err_free(e);
	json_decref(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_pinned_then_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_tag_per_platform, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
