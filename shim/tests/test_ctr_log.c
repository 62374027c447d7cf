/* CRI log lines: format, partial lines, 16 KiB splitting, reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	assert_int_equal(shim_log_open(&l, path, NULL), 0);
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
	assert_int_equal(shim_log_open(&l, path, NULL), 0);
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
	assert_int_equal(shim_log_open(&l, path, NULL), 0);
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
	assert_int_equal(shim_log_open(&l, NULL, NULL), 0);
	shim_log_stream_init(&out, &l, "stdout");
	assert_int_equal(shim_log_stream_write(&out, "x\n", 2, T, NULL), 0);
	shim_log_stream_free(&out);
	shim_log_close(&l);

	/* A log in a missing directory names the path. */
	pv_err_t *err = NULL;
	assert_true(shim_log_open(&l, "/nonexistent/dir/c.log", &err) < 0);
	assert_non_null(strstr(err->msg, "/nonexistent/dir/c.log"));
	pv_err_free(err);
	shim_log_close(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_split_long_line),
		cmocka_unit_test(test_reopen_and_discard),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
