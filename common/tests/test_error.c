/* Errors that quote untrusted input stay short and printable; status messages fit the wire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

static void test_echo(void **state)
{
	assert_string_equal(PV_ECHO("abc"), "abc");
	assert_string_equal(PV_ECHO(NULL), "");
	assert_string_equal(PV_ECHO("a\"b\\c\n\x01\xff"), "a\\x22b\\x5cc\\x0a\\x01\\xff");
	char *big = pv_xmalloc(3 << 20);
	memset(big, 'n', (3 << 20) - 1);
	big[(3 << 20) - 1] = '\0';
	const char *e = PV_ECHO(big);
	assert_true(strlen(e) < PV_ECHO_BUF);
	assert_non_null(strstr(e, "...(3145727 bytes)"));
	assert_int_equal(strspn(e, "n"), PV_ECHO_MAX);
	/* Worst case: every byte escaped, and the length note. */
	memset(big, '\x01', (3 << 20) - 1);
	assert_true(strlen(PV_ECHO(big)) < PV_ECHO_BUF);
	free(big);
	pv_err_t *err = NULL;
	pv_err_set(&err, PV_INVALID_ARGUMENT, 0, "id \"%s\" is bad", PV_ECHO("x\0y"));
	assert_string_equal(err->msg, "id \"x\" is bad");
	pv_err_free(err);
}

static size_t wire_len(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += (unsigned char)*s >= 0x20 && (unsigned char)*s <= 0x7e && *s != '%' ? 1 : 3;
	return n;
}

static void test_msg_cut(void **state)
{
	char *m = pv_err_msg_cut("short", 4096);
	assert_string_equal(m, "short");
	free(m);
	size_t n = 3 << 20;
	char *big = pv_xmalloc(n + 1);
	for (size_t i = 0; i < n; i += 2) {
		big[i] = '\xc3'; /* "é": two bytes, each percent-encoded on the wire */
		big[i + 1] = '\xa9';
	}
	big[n] = '\0';
	m = pv_err_msg_cut(big, PV_ERR_WIRE_MAX);
	assert_true(wire_len(m) <= PV_ERR_WIRE_MAX);
	assert_true(wire_len(m) > PV_ERR_WIRE_MAX / 2);
	assert_non_null(strstr(m, "[message cut:"));
	/* Not cut inside a character: the head is whole "é"s. */
	size_t head = (size_t)(strstr(m, " [message cut") - m);
	assert_int_equal(head % 2, 0);
	free(m);
	memset(big, '%', n);
	m = pv_err_msg_cut(big, 100);
	assert_true(wire_len(m) <= 100);
	free(m);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo),
		cmocka_unit_test(test_msg_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
