/* Paths from outside kept beneath a directory: cleaning, refusals, and the open that follows nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "path.h"
#include "util.h"

static void expect_rel(const char *dir, const char *path, const char *want)
{
	char *rel = NULL;
	pv_err_t *err = NULL;
	if (pv_path_beneath(dir, path, "log_path", &rel, &err) < 0)
		fail_msg("%s beneath %s: %s", path, dir, err->msg);
	assert_string_equal(rel, want);
	free(rel);
}

static void expect_bad(const char *dir, const char *path, const char *word)
{
	char *rel = NULL;
	pv_err_t *err = NULL;
	assert_int_equal(pv_path_beneath(dir, path, "log_path", &rel, &err), -EINVAL);
	assert_null(rel);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	if (!strstr(err->msg, word) || !strstr(err->msg, "log_path"))
		fail_msg("\"%s\" lacks \"%s\"", err->msg, word);
	pv_err_free(err);
}

static void test_beneath(void **state)
{
	expect_rel("/var/log/pods/ns_p_u", "app/0.log", "app/0.log");
	expect_rel("/var/log/pods/ns_p_u", "./app//0.log", "app/0.log");
	expect_rel("/var/log/pods/ns_p_u", "/var/log/pods/ns_p_u/app/0.log", "app/0.log");
	expect_rel("/var/log/pods/ns_p_u/", "//var/log//pods/ns_p_u/./x.log", "x.log");
	expect_rel("/", "/etc/x", "etc/x");
	expect_bad("/var/log/pods/ns_p_u", "../x", "'..'");
	expect_bad("/var/log/pods/ns_p_u", "app/../../../etc/passwd", "'..'");
	expect_bad("/var/log/pods/ns_p_u", "/var/log/pods/ns_p_u/../x", "'..'");
	expect_bad("/var/log/pods/ns_p_u", "/etc/passwd", "outside");
	expect_bad("/var/log/pods/ns_p_u", "/var/log/pods/ns_p_uX/0.log", "outside");
	expect_bad("/var/log/pods/ns_p_u", "/var/log/pods", "outside");
	expect_bad("/var/log/pods/ns_p_u", "/var/log/pods/ns_p_u", "names no file");
	expect_bad("/var/log/pods/ns_p_u", ".", "names no file");
	expect_bad("/var/log/pods/ns_p_u", "", "names no file");
	expect_bad("relative/dir", "x.log", "absolute");
	expect_bad("/var/log/../etc", "x.log", "'..'");
}

static void test_clean_abs(void **state)
{
	assert_true(pv_path_is_clean_abs("/"));
	assert_true(pv_path_is_clean_abs("/a//b/"));
	assert_false(pv_path_is_clean_abs("a/b"));
	assert_false(pv_path_is_clean_abs("/a/./b"));
	assert_false(pv_path_is_clean_abs("/a/.."));
	assert_true(pv_path_is_clean_abs("/a/..b/.c"));
	assert_false(pv_path_is_clean_abs(NULL));
}

static void test_open_beneath(void **state)
{
	char dir[] = "/tmp/pv-path-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *sub = pv_xasprintf("%s/a/b", dir);
	pv_err_t *err = NULL;
	assert_int_equal(pv_mkdir_p(sub, 0755, &err), 0);
	int fd = pv_open_file_beneath(dir, "a/b/f", O_WRONLY | O_CREAT, 0600, "log_path", &err);
	assert_true(fd >= 0);
	/* Blocking again once open: the O_NONBLOCK used for the open does not stay. */
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
	/* A symlink anywhere below dir, including one that points back inside it. */
	char *ln = pv_xasprintf("%s/a/link", dir);
	assert_int_equal(symlink("b", ln), 0);
	assert_true(pv_open_file_beneath(dir, "a/link/f", O_WRONLY, 0, "log_path", &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "symlink"));
	pv_err_free(err);
	err = NULL;
	/* The directory itself may be reached through a symlink: it is the caller's to name. */
	char *dlink = pv_xasprintf("%s.link", dir);
	assert_int_equal(symlink(dir, dlink), 0);
	fd = pv_open_file_beneath(dlink, "a/b/f", O_WRONLY, 0, "log_path", &err);
	assert_true(fd >= 0);
	close(fd);
	assert_true(pv_open_file_beneath("/nonexistent-pv", "f", O_WRONLY | O_CREAT, 0600, "log_path", &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "does not exist"));
	pv_err_free(err);
	unlink(dlink);
	free(dlink);
	free(ln);
	free(sub);
	pv_rm_rf(dir, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_beneath),
		cmocka_unit_test(test_clean_abs),
		cmocka_unit_test(test_open_beneath),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
