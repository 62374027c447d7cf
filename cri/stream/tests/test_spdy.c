/* Unit tests: the SPDY/3 codec (frames, zlib header blocks with the SPDY dictionary, bad input). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "spdy.h"

/* A client and a server codec: what one encodes, the other decodes. */
struct pair {
	struct spdy_codec client, server;
};

static int setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	assert_int_equal(spdy_codec_init(&p->client, NULL), 0);
	assert_int_equal(spdy_codec_init(&p->server, NULL), 0);
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;
	spdy_codec_free(&p->client);
	spdy_codec_free(&p->server);
	free(p);
	return 0;
}

static void test_dictionary_is_the_spec_one(void **state)
{
	(void)state;
	assert_int_equal(adler32(1, spdy_dictionary, SPDY_DICTIONARY_SIZE), 0xe3c6a7c2);
}

static void test_syn_stream_headers_round_trip(void **state)
{
	struct pair *p = *state;
	struct pvs_buf b = { 0 };
	/* Several header blocks share one zlib stream: each must decode in turn. */
	for (uint32_t id = 1; id < 10; id += 2) {
		char port[16];
		snprintf(port, sizeof(port), "%u", 8000 + id);
		struct spdy_header h[] = { { "StreamType", "data" }, { "port", port }, { "requestID", "7" } };
		assert_int_equal(spdy_put_syn_stream(&p->client, &b, id, 0, h, 3, NULL), 0);
	}
	for (uint32_t id = 1; id < 10; id += 2) {
		struct spdy_frame f;
		ssize_t n = spdy_decode(&p->server, pvs_buf_data(&b), pvs_buf_size(&b), &f, NULL);
		assert_true(n > 0);
		assert_int_equal(f.type, SPDY_SYN_STREAM);
		assert_int_equal(f.stream, id);
		assert_int_equal(f.nheaders, 3);
		assert_string_equal(f.headers[0].name, "streamtype"); /* sent lower-cased */
		assert_string_equal(spdy_header_get(&f, "STREAMTYPE"), "data");
		assert_int_equal(atoi(spdy_header_get(&f, "port")), 8000 + id);
		assert_null(spdy_header_get(&f, "missing"));
		spdy_frame_clear(&f);
		pvs_buf_drop(&b, (size_t)n);
	}
	assert_int_equal(pvs_buf_size(&b), 0);
	pvs_buf_free(&b);
}

static void test_data_and_control_frames(void **state)
{
	struct pair *p = *state;
	struct pvs_buf b = { 0 };
	spdy_put_data(&b, 3, SPDY_FLAG_FIN, "hello", 5);
	spdy_put_rst_stream(&b, 5, SPDY_CANCEL);
	spdy_put_ping(&b, 7);
	spdy_put_goaway(&b, 9, 0);
	spdy_put_window_update(&b, 3, 1000);
	assert_int_equal(spdy_put_syn_reply(&p->server, &b, 3, 0, NULL, 0, NULL), 0);
	struct spdy_frame f;
	ssize_t n = spdy_decode(&p->client, pvs_buf_data(&b), pvs_buf_size(&b), &f, NULL);
	assert_int_equal(n, 8 + 5);
	assert_int_equal(f.type, SPDY_DATA);
	assert_int_equal(f.stream, 3);
	assert_int_equal(f.flags, SPDY_FLAG_FIN);
	assert_memory_equal(f.data, "hello", 5);
	pvs_buf_drop(&b, (size_t)n);
	uint16_t types[] = { SPDY_RST_STREAM, SPDY_PING, SPDY_GOAWAY, SPDY_WINDOW_UPDATE, SPDY_SYN_REPLY };
	uint32_t values[] = { SPDY_CANCEL, 7, 0, 1000, 0 };
	for (size_t i = 0; i < 5; i++) {
		n = spdy_decode(&p->client, pvs_buf_data(&b), pvs_buf_size(&b), &f, NULL);
		assert_true(n > 0);
		assert_int_equal(f.type, types[i]);
		assert_int_equal(f.value, values[i]);
		spdy_frame_clear(&f);
		pvs_buf_drop(&b, (size_t)n);
	}
	pvs_buf_free(&b);
}

static void test_partial_input_waits(void **state)
{
	struct pair *p = *state;
	struct pvs_buf b = { 0 };
	spdy_put_data(&b, 1, 0, "abcdef", 6);
	struct spdy_frame f;
	for (size_t len = 0; len < pvs_buf_size(&b); len++)
		assert_int_equal(spdy_decode(&p->server, pvs_buf_data(&b), len, &f, NULL), 0);
	assert_int_equal(spdy_decode(&p->server, pvs_buf_data(&b), pvs_buf_size(&b), &f, NULL), 14);
	pvs_buf_free(&b);
}

/* Decode raw bytes, expect a protocol error naming `what`. */
static void expect_error(struct spdy_codec *c, const uint8_t *buf, size_t len, const char *what)
{
	struct spdy_frame f;
	pv_err_t *err = NULL;
	ssize_t n = spdy_decode(c, buf, len, &f, &err);
	assert_true(n < 0);
	assert_non_null(err);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	if (!strstr(err->msg, what))
		fail_msg("error \"%s\" does not mention \"%s\"", err->msg, what);
	pv_err_free(err);
}

static void test_bad_frames(void **state)
{
	struct pair *p = *state;
	/* version 2 */
	uint8_t v2[] = { 0x80, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1 };
	expect_error(&p->server, v2, sizeof(v2), "version 2");
	/* data on stream 0 */
	uint8_t d0[] = { 0, 0, 0, 0, 0, 0, 0, 1, 'x' };
	expect_error(&p->server, d0, sizeof(d0), "stream 0");
	/* a frame over the limit is refused from its header alone */
	uint8_t big[] = { 0, 0, 0, 1, 0, 0xff, 0xff, 0xff };
	expect_error(&p->server, big, sizeof(big), "bytes");
	/* SYN_STREAM too short, PING of the wrong length, WINDOW_UPDATE of 0 */
	uint8_t syn[] = { 0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1 };
	expect_error(&p->server, syn, sizeof(syn), "too short");
	uint8_t ping[] = { 0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x05, 0, 0, 0, 1, 0 };
	expect_error(&p->server, ping, sizeof(ping), "wrong length");
	uint8_t wu[] = { 0x80, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 1, 0, 0, 0, 0 };
	expect_error(&p->server, wu, sizeof(wu), "WINDOW_UPDATE of 0");
	/* SETTINGS whose length does not match its entries */
	uint8_t st[] = { 0x80, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 9 };
	expect_error(&p->server, st, sizeof(st), "SETTINGS");
}

static void test_bad_header_blocks(void **state)
{
	struct pair *p = *state;
	/* A SYN_STREAM whose block is not zlib data. */
	uint8_t junk[] = { 0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0e, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
			   'j', 'u', 'n', 'k' };
	expect_error(&p->server, junk, sizeof(junk), "compressed header block");
}

/* A header block that claims more pairs than it holds, compressed with a codec of its own. */
static void test_truncated_block(void **state)
{
	(void)state;
	struct spdy_codec c;
	assert_int_equal(spdy_codec_init(&c, NULL), 0);
	uint8_t plain[] = { 0, 0, 0, 2, 0, 0, 0, 1, 'a', 0, 0, 0, 1, 'b' }; /* 2 pairs, 1 present */
	uint8_t z[256];
	z_stream zs = { 0 };
	deflateInit(&zs, Z_DEFAULT_COMPRESSION);
	deflateSetDictionary(&zs, spdy_dictionary, SPDY_DICTIONARY_SIZE);
	zs.next_in = plain;
	zs.avail_in = sizeof(plain);
	zs.next_out = z;
	zs.avail_out = sizeof(z);
	deflate(&zs, Z_SYNC_FLUSH);
	size_t zl = sizeof(z) - zs.avail_out;
	deflateEnd(&zs);
	struct pvs_buf b = { 0 };
	uint8_t hdr[] = { 0x80, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, (uint8_t)(4 + zl), 0, 0, 0, 1 };
	pvs_buf_put(&b, hdr, sizeof(hdr));
	pvs_buf_put(&b, z, zl);
	expect_error(&c, pvs_buf_data(&b), pvs_buf_size(&b), "truncated");
	pvs_buf_free(&b);
	spdy_codec_free(&c);
}

static void test_unknown_control_type_is_skipped(void **state)
{
	struct pair *p = *state;
	uint8_t f10[] = { 0x80, 0x03, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x02, 1, 2 };
	struct spdy_frame f;
	assert_int_equal(spdy_decode(&p->server, f10, sizeof(f10), &f, NULL), sizeof(f10));
	assert_int_equal(f.type, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dictionary_is_the_spec_one),
		cmocka_unit_test_setup_teardown(test_syn_stream_headers_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_and_control_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_input_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_header_blocks, setup, teardown),
		cmocka_unit_test(test_truncated_block),
		cmocka_unit_test_setup_teardown(test_unknown_control_type_is_skipped, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
