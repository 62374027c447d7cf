/* The logger keeps every line one record of key=value fields, whatever the values hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "log.h"

static char *fmt(const char *fields, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *fields, ...)
{
	static char out[256];
	size_t pos = 0;
	va_list ap;
	va_start(ap, fields);
	pv_log_format_fields(out, sizeof(out), &pos, fields, ap);
	va_end(ap);
	out[pos] = '\0';
	return out;
}

static void test_plain_values_unquoted(void **state)
{
	assert_string_equal(fmt("pod=%s n=%d", "abc", 5), "pod=abc n=5");
}

static void test_quotes_and_newlines_escaped(void **state)
{
	assert_string_equal(fmt("error=%s x=%s", "bad \"thing\"\nforged=1", "ok"),
			    "error=\"bad \\\"thing\\\"\\nforged=1\" x=ok");
}

static void test_empty_and_null(void **state)
{
	const char *volatile none = NULL; /* a NULL %s prints as an empty value */
	assert_string_equal(fmt("a=%s b=%s", "", none), "a=\"\" b=\"\"");
}

static void test_equals_and_backslash(void **state)
{
	assert_string_equal(fmt("v=%s", "k=v\\"), "v=\"k=v\\\\\"");
	assert_string_equal(fmt("c=%s", "\x01"), "c=\"\\x01\"");
}

static void test_numbers_and_lengths(void **state)
{
	long long big = -9000000000LL;
	size_t z = 42;
	assert_string_equal(fmt("a=%lld b=%zu c=%u d=%x e=%.2f f=%%", big, z, 7u, 255u, 1.5),
			    "a=-9000000000 b=42 c=7 d=ff e=1.50 f=%");
	assert_string_equal(fmt("s=%.3s w=%*d", "abcdef", 4, 7), "s=abc w=   7");
	assert_string_equal(fmt("scsi=0:0:%d:0", 3), "scsi=0:0:3:0");
}

static void test_truncation_stays_in_bounds(void **state)
{
	char out[16];
	size_t pos = 0;
	pv_log_put_value(out, sizeof(out), &pos, "a long value with spaces in it");
	assert_true(pos < sizeof(out));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_values_unquoted),
		cmocka_unit_test(test_quotes_and_newlines_escaped),
		cmocka_unit_test(test_empty_and_null),
		cmocka_unit_test(test_equals_and_backslash),
		cmocka_unit_test(test_numbers_and_lengths),
		cmocka_unit_test(test_truncation_stays_in_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
