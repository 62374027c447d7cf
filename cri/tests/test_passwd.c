/* /etc/passwd and /etc/group of an image: parsed from text and read out of a real ext4 image. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passwd.h"
#include "util.h"

static const char *passwd_txt = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\n"
				"app:x:1000:1001::/home/app:/bin/sh\n";
static const char *group_txt = "root:x:0:\nwheel:x:10:root,app\napp:x:1001:\naudio:x:29:app\n";

static void test_parse_and_lookup(void **state)
{
	struct pv_passwd *pw = pv_passwd_parse(passwd_txt, group_txt);
	struct spec_ids ids = pv_passwd_ids(pw);
	uint32_t uid = 9, gid = 9;
	assert_int_equal(ids.user(ids.opaque, "app", &uid, &gid), 0);
	assert_int_equal(uid, 1000);
	assert_int_equal(gid, 1001);
	assert_int_equal(ids.user(ids.opaque, "broken line", &uid, &gid), -1);
	assert_int_equal(ids.group(ids.opaque, "wheel", &gid), 0);
	assert_int_equal(gid, 10);
	uint32_t groups[8];
	size_t n = ids.groups_of(ids.opaque, "app", 1001, groups, 8);
	assert_int_equal(n, 2);
	assert_int_equal(groups[0], 10);
	assert_int_equal(groups[1], 29);
	assert_string_equal(ids.name_of(ids.opaque, 1000), "app");
	assert_null(ids.name_of(ids.opaque, 5));
	pv_passwd_free(pw);
}

static void test_read_from_ext4(void **state)
{
	char dir[] = "/tmp/pv-passwd-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *etc = pv_xasprintf("%s/tree/etc", dir);
	assert_int_equal(pv_mkdir_p(etc, 0755, NULL), 0);
	char *p = pv_xasprintf("%s/passwd", etc), *g = pv_xasprintf("%s/group", etc);
	assert_int_equal(pv_write_file_atomic(p, passwd_txt, strlen(passwd_txt), 0644, NULL), 0);
	assert_int_equal(pv_write_file_atomic(g, group_txt, strlen(group_txt), 0644, NULL), 0);
	char *cmd = pv_xasprintf("mkfs.ext4 -q -F -d %s/tree %s/img.ext4 8M >/dev/null 2>&1", dir, dir);
	assert_int_equal(system(cmd), 0);
	char *img = pv_xasprintf("%s/img.ext4", dir);
	struct pv_passwd *pw = NULL;
	pv_err_t *err = NULL;
	assert_int_equal(pv_passwd_load_ext4(img, &pw, &err), 0);
	struct spec_ids ids = pv_passwd_ids(pw);
	uint32_t uid, gid;
	assert_int_equal(ids.user(ids.opaque, "app", &uid, &gid), 0);
	assert_int_equal(uid, 1000);
	pv_passwd_free(pw);
	/* Not an ext4 image: a clear error naming it. */
	assert_true(pv_passwd_load_ext4(p, &pw, &err) < 0);
	assert_non_null(strstr(err->msg, p));
	pv_err_free(err);
	pv_rm_rf(dir, NULL);
	free(etc);
	free(p);
	free(g);
	free(cmd);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_lookup),
		cmocka_unit_test(test_read_from_ext4),
	};
	return cmocka_run_group_tests_name("cri_passwd", tests, NULL, NULL);
}
