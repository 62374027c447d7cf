/* Unit tests: WebSocket frames (masking, lengths, bad frames) and the handshake's accept key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

static void test_accept_key_rfc_example(void **state)
{
	(void)state;
	/* RFC 6455, 1.3 */
	char *k = ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==");
	assert_string_equal(k, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	free(k);
	assert_null(ws_accept_key("short"));
	assert_null(ws_accept_key(NULL));
	assert_null(ws_accept_key("!!!!!!!!!!!!!!!!!!!!!!!!"));
}

static void round_trip(size_t len)
{
	struct pvs_buf b = { 0 };
	uint8_t *data = malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 7);
	ws_put_masked(&b, WS_BINARY, true, data, len, 0xa1b2c3d4);
	struct ws_frame f;
	ssize_t n = ws_decode(b.p, pvs_buf_size(&b), 1 << 20, &f, NULL);
	assert_int_equal(n, (ssize_t)pvs_buf_size(&b));
	assert_int_equal(f.opcode, WS_BINARY);
	assert_true(f.fin);
	assert_int_equal(f.len, len);
	if (len)
		assert_memory_equal(f.payload, data, len);
	/* Every shorter prefix asks for more. */
	for (size_t l = 0; l < pvs_buf_size(&b); l += 1 + l / 3)
		assert_int_equal(ws_decode(b.p, l, 1 << 20, &f, NULL), 0);
	free(data);
	pvs_buf_free(&b);
}

static void test_lengths(void **state)
{
	(void)state;
	round_trip(0);
	round_trip(125);
	round_trip(126);
	round_trip(65535);
	round_trip(65536);
}

static void test_server_frames(void **state)
{
	(void)state;
	struct pvs_buf b = { 0 };
	ws_put_frame(&b, WS_BINARY, "\x01hi", 3);
	assert_int_equal(pvs_buf_size(&b), 5);
	assert_int_equal(b.p[0], 0x82);
	assert_int_equal(b.p[1], 3); /* not masked */
	pvs_buf_free(&b);
	ws_put_close(&b, WS_CLOSE_NORMAL, "bye");
	assert_int_equal(b.p[0], 0x88);
	assert_int_equal(b.p[1], 5);
	assert_int_equal(b.p[2] << 8 | b.p[3], 1000);
	pvs_buf_free(&b);
}

static void expect_error(uint8_t *buf, size_t len, size_t max, int code)
{
	struct ws_frame f;
	pv_err_t *err = NULL;
	assert_int_equal(ws_decode(buf, len, max, &f, &err), -code);
	assert_non_null(err);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	pv_err_free(err);
}

static void test_bad_frames(void **state)
{
	(void)state;
	uint8_t unmasked[] = { 0x82, 0x01, 'x' };
	expect_error(unmasked, sizeof(unmasked), 100, EPROTO);
	uint8_t rsv[] = { 0xc2, 0x81, 0, 0, 0, 0, 'x' };
	expect_error(rsv, sizeof(rsv), 100, EPROTO);
	uint8_t opcode[] = { 0x83, 0x81, 0, 0, 0, 0, 'x' };
	expect_error(opcode, sizeof(opcode), 100, EPROTO);
	uint8_t frag_ping[] = { 0x09, 0x80, 0, 0, 0, 0 };
	expect_error(frag_ping, sizeof(frag_ping), 100, EPROTO);
	uint8_t long_ping[] = { 0x89, 0xfe, 0, 126, 0, 0, 0, 0 };
	expect_error(long_ping, sizeof(long_ping), 1000, EPROTO);
	uint8_t big[] = { 0x82, 0xfe, 0x10, 0x00, 0, 0, 0, 0 };
	expect_error(big, sizeof(big), 100, EMSGSIZE);
	uint8_t top[] = { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 };
	expect_error(top, sizeof(top), 100, EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_key_rfc_example),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_server_frames),
		cmocka_unit_test(test_bad_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
