/* CRI log lines: format, partial lines, 16 KiB splitting, reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ctr_log.h"
#include "util.h"

static char dir[64], path[128];
/* 2026-11-27T12:00:00.000000042Z */
static const int64_t T = 1795780800LL * 1000000000LL + 42;

static int setup(void **state)
{
	strcpy(dir, "/tmp/pv-shimlog-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ctr.log", dir);
	return 0;
}

static int teardown(void **state)
{
	pv_rm_rf(dir, NULL);
	return 0;
}

static char *slurp(void)
{
	char *buf = NULL;
	size_t len;
	assert_int_equal(pv_read_file(path, 1 << 24, &buf, &len, NULL), 0);
	return buf;
}

static void test_lines(void **state)
{
	unlink(path);
	struct shim_log l;
	struct shim_log_stream out, err;
	assert_int_equal(shim_log_open(&l, NULL, path, NULL), 0);
	shim_log_stream_init(&out, &l, "stdout");
	shim_log_stream_init(&err, &l, "stderr");
	assert_int_equal(shim_log_stream_write(&out, "hello\nwor", 9, T, NULL), 0);
	assert_int_equal(shim_log_stream_write(&err, "oops\n", 5, T, NULL), 0);
	assert_int_equal(shim_log_stream_write(&out, "ld\n\nlast", 8, T, NULL), 0);
	assert_int_equal(shim_log_stream_flush(&out, T, NULL), 0);
	assert_int_equal(shim_log_stream_flush(&err, T, NULL), 0);
	char *got = slurp();
	assert_string_equal(got, "2026-11-27T12:00:00.000000042Z stdout F hello\n"
				 "2026-11-27T12:00:00.000000042Z stderr F oops\n"
				 "2026-11-27T12:00:00.000000042Z stdout F world\n"
				 "2026-11-27T12:00:00.000000042Z stdout F \n"
				 "2026-11-27T12:00:00.000000042Z stdout F last\n");
	free(got);
	shim_log_stream_free(&out);
	shim_log_stream_free(&err);
	shim_log_close(&l);
}

static void test_split_long_line(void **state)
{
	unlink(path);
	struct shim_log l;
	struct shim_log_stream out;
	assert_int_equal(shim_log_open(&l, NULL, path, NULL), 0);
	shim_log_stream_init(&out, &l, "stdout");
	/* 40000 'a's then a newline, fed in odd chunks. */
	size_t n = 40000;
	char *big = malloc(n + 1);
	memset(big, 'a', n);
	big[n] = '\n';
	for (size_t off = 0; off < n + 1;) {
		size_t chunk = (n + 1 - off) < 7001 ? (n + 1 - off) : 7001;
		assert_int_equal(shim_log_stream_write(&out, big + off, chunk, T, NULL), 0);
		off += chunk;
	}
	char *got = slurp();
	/* 16384 P + 16384 P + 7232 F */
	char *line = got;
	size_t lens[3];
	char tags[3];
	for (int i = 0; i < 3; i++) {
		char *nl = strchr(line, '\n');
		assert_non_null(nl);
		assert_true(pv_str_has_prefix(line, "2026-11-27T12:00:00.000000042Z stdout "));
		tags[i] = line[38];
		lens[i] = (size_t)(nl - (line + 40));
		line = nl + 1;
	}
	assert_string_equal(line, "");
	assert_int_equal(tags[0], 'P');
	assert_int_equal(tags[1], 'P');
	assert_int_equal(tags[2], 'F');
	assert_int_equal(lens[0], SHIM_LOG_MAX_LINE);
	assert_int_equal(lens[1], SHIM_LOG_MAX_LINE);
	assert_int_equal(lens[2], n - 2 * SHIM_LOG_MAX_LINE);
	free(got);
	free(big);
	shim_log_stream_free(&out);
	shim_log_close(&l);
}

static void test_reopen_and_discard(void **state)
{
	unlink(path);
	struct shim_log l;
	struct shim_log_stream out;
	assert_int_equal(shim_log_open(&l, NULL, path, NULL), 0);
	shim_log_stream_init(&out, &l, "stdout");
	assert_int_equal(shim_log_stream_write(&out, "one\n", 4, T, NULL), 0);
	char rotated[160];
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	assert_int_equal(rename(path, rotated), 0);
	assert_int_equal(shim_log_reopen(&l, NULL), 0);
	assert_int_equal(shim_log_stream_write(&out, "two\n", 4, T, NULL), 0);
	char *got = slurp();
	assert_string_equal(got, "2026-11-27T12:00:00.000000042Z stdout F two\n");
	free(got);
	shim_log_stream_free(&out);
	shim_log_close(&l);

	/* No path: output is dropped without error. */
	assert_int_equal(shim_log_open(&l, NULL, NULL, NULL), 0);
	shim_log_stream_init(&out, &l, "stdout");
	assert_int_equal(shim_log_stream_write(&out, "x\n", 2, T, NULL), 0);
	shim_log_stream_free(&out);
	shim_log_close(&l);

	/* A log in a missing directory names it: the caller's mistake. */
	pv_err_t *err = NULL;
	assert_true(shim_log_open(&l, NULL, "/nonexistent/dir/c.log", &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "/nonexistent/dir"));
	pv_err_free(err);
	shim_log_close(&l);
}

static int writes(struct shim_log *l, const char *text)
{
	struct shim_log_stream out;
	shim_log_stream_init(&out, l, "stdout");
	int r = shim_log_stream_write(&out, text, strlen(text), T, NULL);
	shim_log_stream_free(&out);
	return r;
}

/* Opening fails with INVALID_ARGUMENT whose message has `word`. */
static void expect_refused(const char *ldir, const char *lpath, const char *word)
{
	struct shim_log l;
	pv_err_t *err = NULL;
	assert_int_equal(shim_log_open(&l, ldir, lpath, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	if (!strstr(err->msg, word))
		fail_msg("\"%s\" lacks \"%s\"", err->msg, word);
	assert_int_equal(l.fd, -1);
	pv_err_free(err);
}

static size_t file_size(const char *p)
{
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	return (size_t)st.st_size;
}

/* A log path beneath the pod's log directory cannot be steered out of it. */
static void test_beneath_log_dir(void **state)
{
	char victim[160], other[160], p[200];
	snprintf(victim, sizeof(victim), "%s.victim", dir);
	snprintf(other, sizeof(other), "%s.other", dir);
	FILE *f = fopen(victim, "w");
	fputs("precious\n", f);
	fclose(f);
	assert_int_equal(mkdir(other, 0755), 0);

	/* kubelet's layout: <log dir>/<container>/<restart>.log, the container directory made by kubelet. */
	snprintf(p, sizeof(p), "%s/app", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	struct shim_log l;
	assert_int_equal(shim_log_open(&l, dir, "app/0.log", NULL), 0);
	snprintf(p, sizeof(p), "%s/app/0.log", dir);
	assert_string_equal(l.path, p);
	assert_int_equal(writes(&l, "hi\n"), 0);
	assert_true(file_size(p) > 0);
	shim_log_close(&l);
	/* An absolute path inside the directory is the same file. */
	assert_int_equal(shim_log_open(&l, dir, p, NULL), 0);
	assert_string_equal(l.rel, "app/0.log");
	shim_log_close(&l);

	expect_refused(dir, "../x.log", "'..'");
	expect_refused(dir, "app/../../x.log", "'..'");
	expect_refused(dir, victim, "outside");
	expect_refused(dir, "nodir/0.log", "does not exist");
	/* A symlink planted as the file, or as a directory on the way. */
	snprintf(p, sizeof(p), "%s/evil.log", dir);
	assert_int_equal(symlink(victim, p), 0);
	expect_refused(dir, "evil.log", "symlink");
	snprintf(p, sizeof(p), "%s/evildir", dir);
	assert_int_equal(symlink(other, p), 0);
	expect_refused(dir, "evildir/0.log", "symlink");
	snprintf(p, sizeof(p), "%s/0.log", other);
	assert_int_equal(access(p, F_OK), -1);
	/* A hard link to a file elsewhere, a FIFO (which would block the open), a directory. */
	snprintf(p, sizeof(p), "%s/hard.log", dir);
	assert_int_equal(link(victim, p), 0);
	expect_refused(dir, "hard.log", "hard link");
	snprintf(p, sizeof(p), "%s/fifo.log", dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	expect_refused(dir, "fifo.log", "not a regular file");
	expect_refused(dir, "app", "not a regular file");
	assert_int_equal(file_size(victim), strlen("precious\n"));

	/* Re-opening after the file was swapped for a symlink fails; the old file stays in use. */
	assert_int_equal(shim_log_open(&l, dir, "app/1.log", NULL), 0);
	snprintf(p, sizeof(p), "%s/app/1.log", dir);
	char moved[220];
	snprintf(moved, sizeof(moved), "%s.1", p);
	assert_int_equal(rename(p, moved), 0);
	assert_int_equal(symlink(victim, p), 0);
	pv_err_t *err = NULL;
	assert_int_equal(shim_log_reopen(&l, &err), -1);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	pv_err_free(err);
	assert_int_equal(writes(&l, "still here\n"), 0);
	assert_true(file_size(moved) > 0);
	assert_int_equal(file_size(victim), strlen("precious\n"));
	shim_log_close(&l);
	unlink(victim);
	pv_rm_rf(other, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_split_long_line),
		cmocka_unit_test(test_reopen_and_discard),
		cmocka_unit_test(test_beneath_log_dir),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
