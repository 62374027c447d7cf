/* Unit tests: frame header, incremental reader (incl. bad input), writer, flow control, messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "proto/agent.pb-c.h"

static void test_hdr_roundtrip(void **state)
{
	struct pv_frame_hdr h = { .len = 1234, .stream = 0xdeadbeef, .type = PV_FRAME_DATA, .flags = 1 }, g;
	uint8_t b[PV_FRAME_HDR_SIZE];
	pv_frame_hdr_encode(&h, b);
	/* Big-endian on the wire. */
	assert_int_equal(b[0], 0);
	assert_int_equal(b[2], 0x04);
	assert_int_equal(b[3], 0xd2);
	assert_int_equal(b[4], 0xde);
	assert_int_equal(pv_frame_hdr_decode(b, PV_FRAME_MAX_PAYLOAD, &g, NULL), 0);
	assert_int_equal(g.len, 1234);
	assert_int_equal(g.stream, 0xdeadbeef);
	assert_int_equal(g.type, PV_FRAME_DATA);
	assert_int_equal(g.flags, 1);
}

static void test_hdr_rejects(void **state)
{
	struct pv_frame_hdr h = { .len = PV_FRAME_MAX_PAYLOAD + 1, .stream = 1, .type = PV_FRAME_REQUEST }, g;
	uint8_t b[PV_FRAME_HDR_SIZE];
	pv_err_t *err = NULL;
	pv_frame_hdr_encode(&h, b);
	assert_int_equal(pv_frame_hdr_decode(b, PV_FRAME_MAX_PAYLOAD, &g, &err), -EMSGSIZE);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	pv_err_free(err);
	err = NULL;
	h.len = 1;
	h.type = 0;
	pv_frame_hdr_encode(&h, b);
	assert_int_equal(pv_frame_hdr_decode(b, PV_FRAME_MAX_PAYLOAD, &g, &err), -EPROTO);
	pv_err_free(err);
	h.type = 6;
	pv_frame_hdr_encode(&h, b);
	assert_int_equal(pv_frame_hdr_decode(b, PV_FRAME_MAX_PAYLOAD, &g, NULL), -EPROTO);
	h.type = PV_FRAME_DATA;
	h.reserved = 1;
	pv_frame_hdr_encode(&h, b);
	assert_int_equal(pv_frame_hdr_decode(b, PV_FRAME_MAX_PAYLOAD, &g, NULL), -EPROTO);
}

/* Writer -> bytes -> reader fed one byte at a time yields the same frames. */
static void test_reader_byte_by_byte(void **state)
{
	struct pv_frame_writer w;
	struct pv_frame_reader r;
	pv_frame_writer_init(&w);
	pv_frame_reader_init(&r, PV_FRAME_MAX_PAYLOAD);
	pv_frame_writer_put(&w, PV_FRAME_DATA, 5, 0, "hello", 5);
	pv_frame_writer_put(&w, PV_FRAME_CLOSE, 5, 0, NULL, 0);
	pv_frame_writer_put_window(&w, 9, 4096);
	size_t n = pv_frame_writer_pending(&w);
	assert_int_equal(n, 3 * PV_FRAME_HDR_SIZE + 5 + 4);
	int frames = 0;
	for (size_t i = 0; i < n; i++) {
		pv_frame_reader_feed(&r, w.buf + w.off + i, 1);
		struct pv_frame_hdr h;
		const uint8_t *p;
		int rc;
		while ((rc = pv_frame_reader_next(&r, &h, &p, NULL)) == 1) {
			if (frames == 0) {
				assert_int_equal(h.type, PV_FRAME_DATA);
				assert_int_equal(h.stream, 5);
				assert_memory_equal(p, "hello", 5);
			} else if (frames == 1) {
				assert_int_equal(h.type, PV_FRAME_CLOSE);
				assert_int_equal(h.len, 0);
			} else {
				uint32_t inc;
				assert_int_equal(h.type, PV_FRAME_WINDOW);
				assert_int_equal(pv_frame_parse_window(p, h.len, &inc), 0);
				assert_int_equal(inc, 4096);
			}
			frames++;
		}
		assert_int_equal(rc, 0);
	}
	assert_int_equal(frames, 3);
	pv_frame_reader_free(&r);
	pv_frame_writer_free(&w);
}

/* An oversized frame is reported once, its payload skipped, and the next frame still parses. */
static void test_reader_skips_bad_frames(void **state)
{
	struct pv_frame_reader r;
	pv_frame_reader_init(&r, 64);
	uint8_t b[PV_FRAME_HDR_SIZE];
	struct pv_frame_hdr h = { .len = 100, .stream = 1, .type = PV_FRAME_REQUEST };
	pv_frame_hdr_encode(&h, b);
	pv_frame_reader_feed(&r, b, sizeof(b));
	struct pv_frame_hdr g;
	const uint8_t *p;
	pv_err_t *err = NULL;
	assert_int_equal(pv_frame_reader_next(&r, &g, &p, &err), -EMSGSIZE);
	assert_non_null(err);
	pv_err_free(err);
	uint8_t junk[100];
	memset(junk, 0xab, sizeof(junk));
	pv_frame_reader_feed(&r, junk, 60);
	assert_int_equal(pv_frame_reader_next(&r, &g, &p, NULL), 0);
	/* The buffer never held the skipped bytes. */
	assert_true(r.len == 0);
	pv_frame_reader_feed(&r, junk, 40);
	/* Unknown type: skipped likewise. */
	h.type = 77;
	h.len = 3;
	pv_frame_hdr_encode(&h, b);
	pv_frame_reader_feed(&r, b, sizeof(b));
	pv_frame_reader_feed(&r, "xyz", 3);
	h.type = PV_FRAME_DATA;
	h.len = 2;
	h.stream = 42;
	pv_frame_hdr_encode(&h, b);
	pv_frame_reader_feed(&r, b, sizeof(b));
	pv_frame_reader_feed(&r, "ok", 2);
	assert_int_equal(pv_frame_reader_next(&r, &g, &p, NULL), -EPROTO);
	assert_int_equal(pv_frame_reader_next(&r, &g, &p, NULL), 1);
	assert_int_equal(g.stream, 42);
	assert_memory_equal(p, "ok", 2);
	assert_int_equal(pv_frame_reader_next(&r, &g, &p, NULL), 0);
	pv_frame_reader_free(&r);
}

static void test_reader_truncated_then_reset(void **state)
{
	struct pv_frame_reader r;
	pv_frame_reader_init(&r, PV_FRAME_MAX_PAYLOAD);
	uint8_t b[PV_FRAME_HDR_SIZE];
	struct pv_frame_hdr h = { .len = 10, .stream = 3, .type = PV_FRAME_REQUEST }, g;
	const uint8_t *p;
	pv_frame_hdr_encode(&h, b);
	pv_frame_reader_feed(&r, b, sizeof(b));
	pv_frame_reader_feed(&r, "abc", 3);
	assert_int_equal(pv_frame_reader_next(&r, &g, &p, NULL), 0);
	pv_frame_reader_reset(&r);
	h.len = 1;
	pv_frame_hdr_encode(&h, b);
	pv_frame_reader_feed(&r, b, sizeof(b));
	pv_frame_reader_feed(&r, "z", 1);
	assert_int_equal(pv_frame_reader_next(&r, &g, &p, NULL), 1);
	assert_int_equal(p[0], 'z');
	pv_frame_reader_free(&r);
}

static void test_writer_flush_partial(void **state)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct pv_frame_writer w;
	pv_frame_writer_init(&w);
	static uint8_t big[PV_FRAME_MAX_DATA];
	/* Far more than the socket buffer: flush must report "pending", not block or fail. */
	for (int i = 0; i < 200; i++)
		pv_frame_writer_put(&w, PV_FRAME_DATA, 1, 0, big, sizeof(big));
	assert_int_equal(pv_frame_writer_flush(&w, sv[0]), 1);
	assert_true(pv_frame_writer_pending(&w) > 0);
	/* Drain the peer through a reader and count bytes. */
	struct pv_frame_reader r;
	pv_frame_reader_init(&r, PV_FRAME_MAX_PAYLOAD);
	size_t got = 0;
	int frames = 0;
	while (pv_frame_writer_pending(&w) || got < 200 * sizeof(big)) {
		pv_frame_writer_flush(&w, sv[0]);
		int n = pv_frame_reader_read_fd(&r, sv[1]);
		if (n == -EAGAIN)
			continue;
		assert_true(n > 0);
		struct pv_frame_hdr h;
		const uint8_t *p;
		while (pv_frame_reader_next(&r, &h, &p, NULL) == 1) {
			got += h.len;
			frames++;
		}
	}
	assert_int_equal(frames, 200);
	pv_frame_reader_free(&r);
	pv_frame_writer_free(&w);
	close(sv[0]);
	close(sv[1]);
}

static void test_flow_control(void **state)
{
	struct pv_flow_out out;
	struct pv_flow_in in;
	pv_flow_out_init(&out, 100);
	pv_flow_in_init(&in, 100);
	assert_int_equal(pv_flow_out_sendable(&out, 1000), 100);
	pv_flow_out_sent(&out, 70);
	assert_int_equal(pv_flow_in_receive(&in, 70), 0);
	assert_int_equal(pv_flow_out_sendable(&out, 1000), 30);
	/* The receiver batches credit until half the window is consumed. */
	assert_int_equal(pv_flow_in_consume(&in, 20), 0);
	uint32_t inc = pv_flow_in_consume(&in, 40);
	assert_int_equal(inc, 60);
	assert_int_equal(pv_flow_out_grant(&out, inc), 0);
	assert_int_equal(pv_flow_out_sendable(&out, 1000), 90);
	/* A sender that ignores its credit is caught. */
	assert_int_equal(pv_flow_in_receive(&in, 80), 0);
	assert_int_equal(pv_flow_in_receive(&in, 30), -EPROTO);
	/* Grants cannot overflow the window cap. */
	assert_int_equal(pv_flow_out_grant(&out, PV_FRAME_MAX_WINDOW), -EPROTO);
	assert_int_equal(pv_flow_out_grant(&out, 0xffffffffu), -EPROTO);
	/* Chunks are capped so RPCs interleave. */
	pv_flow_out_init(&out, PV_FRAME_DEFAULT_WINDOW);
	assert_int_equal(pv_flow_out_sendable(&out, 1 << 20), PV_FRAME_MAX_DATA);
	uint8_t bad[3] = { 0 };
	assert_int_equal(pv_frame_parse_window(bad, 3, &inc), -EPROTO);
	uint8_t zero[4] = { 0 };
	assert_int_equal(pv_frame_parse_window(zero, 4, &inc), -EPROTO);
}

static void test_messages(void **state)
{
	struct pv_frame_writer w;
	struct pv_frame_reader r;
	pv_frame_writer_init(&w);
	pv_frame_reader_init(&r, PV_FRAME_MAX_PAYLOAD);
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	Podvisor__Agent__StartContainerRequest st = PODVISOR__AGENT__START_CONTAINER_REQUEST__INIT;
	st.container_id = (char *)"abc";
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_START_CONTAINER;
	req.start_container = &st;
	assert_int_equal(pv_frame_put_request(&w, 77, &req, NULL), 0);
	pv_frame_put_error(&w, 78, PV_NOT_FOUND, "no such thing \xff");
	pv_frame_reader_feed(&r, w.buf + w.off, pv_frame_writer_pending(&w));
	struct pv_frame_hdr h;
	const uint8_t *p;
	assert_int_equal(pv_frame_reader_next(&r, &h, &p, NULL), 1);
	assert_int_equal(h.type, PV_FRAME_REQUEST);
	assert_int_equal(h.stream, 77);
	Podvisor__Agent__Request *got = NULL;
	assert_int_equal(pv_frame_decode_request(p, h.len, &got, NULL), 0);
	assert_int_equal(got->req_case, PODVISOR__AGENT__REQUEST__REQ_START_CONTAINER);
	assert_string_equal(got->start_container->container_id, "abc");
	podvisor__agent__request__free_unpacked(got, NULL);
	assert_int_equal(pv_frame_reader_next(&r, &h, &p, NULL), 1);
	assert_int_equal(h.type, PV_FRAME_RESPONSE);
	Podvisor__Agent__Response *resp = NULL;
	assert_int_equal(pv_frame_decode_response(p, h.len, &resp, NULL), 0);
	assert_int_equal(resp->status, PV_NOT_FOUND);
	/* Non-ASCII is replaced so the notice itself is valid UTF-8. */
	assert_string_equal(resp->message, "no such thing ?");
	podvisor__agent__response__free_unpacked(resp, NULL);
	/* Garbage and invalid UTF-8 in a string field do not decode. */
	pv_err_t *err = NULL;
	const uint8_t junk[] = { 0x0a, 0xff };
	assert_int_equal(pv_frame_decode_request(junk, sizeof(junk), &got, &err), -EBADMSG);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	pv_err_free(err);
	const uint8_t badutf[] = { 0x6a, 0x04, 0x0a, 0x02, 0xc3, 0x28 }; /* start_container{container_id="\xc3("} */
	assert_int_equal(pv_frame_decode_request(badutf, sizeof(badutf), &got, NULL), -EBADMSG);
	pv_frame_reader_free(&r);
	pv_frame_writer_free(&w);
}

static void test_utf8(void **state)
{
	assert_true(pv_utf8_valid("abc/\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80", 15));
	assert_false(pv_utf8_valid("\xc3", 1));
	assert_false(pv_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
	assert_false(pv_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	assert_false(pv_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	assert_false(pv_utf8_valid("a\0b", 3));
	assert_false(pv_utf8_valid("\xff", 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_roundtrip),
		cmocka_unit_test(test_hdr_rejects),
		cmocka_unit_test(test_reader_byte_by_byte),
		cmocka_unit_test(test_reader_skips_bad_frames),
		cmocka_unit_test(test_reader_truncated_then_reset),
		cmocka_unit_test(test_writer_flush_partial),
		cmocka_unit_test(test_flow_control),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
