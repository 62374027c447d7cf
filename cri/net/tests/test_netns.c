/* pv_netns_*: create, exists, run inside, delete (root only; skipped otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/netns.h"
#include "util.h"

static int ns_inode(ino_t *out, pv_err_t **err)
{
	struct stat st;
	if (stat("/proc/thread-self/ns/net", &st) < 0)
		return pv_err_sys(err, PV_INTERNAL, "stat");
	*out = st.st_ino;
	return 0;
}

static int inode_fn(void *arg, pv_err_t **err)
{
	return ns_inode(arg, err);
}

static int failing_fn(void *arg, pv_err_t **err)
{
	return pv_err_set(err, PV_ABORTED, 0, "inner failure");
}

static void test_lifecycle(void **state)
{
	char dir[] = "/tmp/pv-test-netns-XXXXXX";
	char *path = NULL, *path2 = NULL;
	pv_err_t *err = NULL;
	struct stat st, mine;

	if (geteuid() != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	char *sub = pv_xasprintf("%s/a/b", dir); /* made on demand */
	assert_int_equal(pv_netns_create(sub, "pod1", &path, &err), 0);
	assert_null(err);
	assert_true(pv_netns_exists(path));

	/* It is a different namespace from ours, and code can run inside it. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(stat("/proc/self/ns/net", &mine), 0);
	assert_true(st.st_ino != mine.st_ino);
	ino_t inside = 0;
	assert_int_equal(pv_netns_run(path, inode_fn, &inside, &err), 0);
	assert_true(inside == st.st_ino);
	/* ... and the caller's thread is untouched. */
	assert_int_equal(stat("/proc/thread-self/ns/net", &st), 0);
	assert_true(st.st_ino == mine.st_ino);
	assert_true(pv_netns_run(path, failing_fn, NULL, &err) < 0);
	assert_string_equal(err->msg, "inner failure");
	pv_err_free(err);
	err = NULL;

	int fd = pv_netns_open(path, &err);
	assert_true(fd >= 0);
	close(fd);

	/* Names are unique; bad names are refused. */
	assert_true(pv_netns_create(sub, "pod1", &path2, &err) < 0);
	assert_int_equal(err->status, PV_ALREADY_EXISTS);
	assert_null(path2);
	pv_err_free(err);
	err = NULL;
	assert_true(pv_netns_create(sub, "../x", &path2, &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	pv_err_free(err);
	err = NULL;

	assert_int_equal(pv_netns_delete(path, &err), 0);
	assert_false(pv_netns_exists(path));
	assert_true(access(path, F_OK) < 0);
	assert_int_equal(pv_netns_delete(path, &err), 0); /* idempotent */

	/* A plain file is not a namespace. */
	char *plain = pv_xasprintf("%s/plain", dir);
	fd = open(plain, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	assert_false(pv_netns_exists(plain));
	assert_true(pv_netns_open(plain, &err) < 0);
	assert_int_equal(err->status, PV_NOT_FOUND);
	pv_err_free(err);
	err = NULL;
	assert_true(pv_netns_enter("/nonexistent/ns", &err) < 0);
	pv_err_free(err);

	assert_int_equal(pv_rm_rf(dir, NULL), 0);
	free(plain);
	free(sub);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
