/* Unit tests: common/agent_client against a scripted fake agent on a socketpair. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_client.h"
#include "util.h"

struct fake {
	int fd;                  /* the "guest" end */
	struct pv_frame_reader rd;
	struct pv_frame_writer wr;
};

static void fake_init(struct fake *f, int fd)
{
	f->fd = fd;
	pv_frame_reader_init(&f->rd, PV_FRAME_MAX_PAYLOAD);
	pv_frame_writer_init(&f->wr);
}

static void fake_free(struct fake *f)
{
	pv_frame_reader_free(&f->rd);
	pv_frame_writer_free(&f->wr);
	close(f->fd);
}

static void fake_send(struct fake *f)
{
	while (pv_frame_writer_flush(&f->wr, f->fd) == 1)
		;
}

/* Read frames from the client until one of `type` arrives. */
static void fake_expect(struct fake *f, uint8_t type, struct pv_frame_hdr *h, uint8_t *buf, size_t cap)
{
	for (;;) {
		const uint8_t *p;
		int rc = pv_frame_reader_next(&f->rd, h, &p, NULL);
		if (rc == 1) {
			if (h->type != type)
				continue;
			assert_true(h->len <= cap);
			memcpy(buf, p, h->len);
			return;
		}
		assert_int_equal(rc, 0);
		int n = pv_frame_reader_read_fd(&f->rd, f->fd);
		assert_true(n > 0);
	}
}

static void setup_pair(pv_agent_t **a, struct fake *f)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	*a = pv_agent_new(sv[0]);
	fake_init(f, sv[1]);
}

struct got {
	int calls;
	uint32_t status;
	bool null_resp;
	char msg[128];
};

static void on_resp(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
		    void *opaque)
{
	struct got *g = opaque;
	g->calls++;
	g->null_resp = resp == NULL;
	if (resp) {
		g->status = resp->status;
		snprintf(g->msg, sizeof(g->msg), "%s", resp->message);
	}
}

static void ping_req(Podvisor__Agent__Request *req, Podvisor__Agent__PingRequest *ping)
{
	podvisor__agent__request__init(req);
	podvisor__agent__ping_request__init(ping);
	req->req_case = PODVISOR__AGENT__REQUEST__REQ_PING;
	req->ping = ping;
}

static void test_async_call_and_notice(void **state)
{
	pv_agent_t *a;
	struct fake f;
	setup_pair(&a, &f);
	Podvisor__Agent__Request req;
	Podvisor__Agent__PingRequest ping;
	ping_req(&req, &ping);
	struct got g = { 0 };
	uint32_t id = 0;
	assert_int_equal(pv_agent_call_async(a, &req, on_resp, &g, &id, NULL), 0);
	assert_true(id != 0);
	assert_true(pv_agent_want_write(a));
	assert_int_equal(pv_agent_flush(a, NULL), 0);
	struct pv_frame_hdr h;
	uint8_t buf[4096];
	fake_expect(&f, PV_FRAME_REQUEST, &h, buf, sizeof(buf));
	assert_int_equal(h.stream, id);
	/* A reply for an id nobody waits for, a notice, then the real reply. */
	pv_frame_put_error(&f.wr, id + 100, PV_INTERNAL, "stray");
	pv_frame_put_error(&f.wr, 0, PV_INVALID_ARGUMENT, "bad frame");
	pv_frame_put_error(&f.wr, id, PV_NOT_FOUND, "nope");
	fake_send(&f);
	while (g.calls == 0)
		assert_int_equal(pv_agent_on_readable(a, NULL), 0);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, PV_NOT_FOUND);
	assert_string_equal(g.msg, "nope");
	assert_string_equal(pv_agent_last_notice(a), "bad frame");
	/* EOF fails what is pending. */
	struct got g2 = { 0 };
	assert_int_equal(pv_agent_call_async(a, &req, on_resp, &g2, NULL, NULL), 0);
	fake_free(&f);
	pv_err_t *err = NULL;
	assert_true(pv_agent_on_readable(a, &err) < 0);
	assert_int_equal(err->status, PV_UNAVAILABLE);
	pv_err_free(err);
	assert_int_equal(g2.calls, 1);
	assert_true(g2.null_resp);
	pv_agent_free(a);
}

static void test_call_timeout(void **state)
{
	pv_agent_t *a;
	struct fake f;
	setup_pair(&a, &f);
	Podvisor__Agent__Request req;
	Podvisor__Agent__PingRequest ping;
	ping_req(&req, &ping);
	Podvisor__Agent__Response *resp = NULL;
	pv_err_t *err = NULL;
	assert_int_equal(pv_agent_call(a, &req, 50, &resp, &err), -ETIMEDOUT);
	assert_int_equal(err->status, PV_DEADLINE_EXCEEDED);
	assert_null(resp);
	pv_err_free(err);
	pv_agent_free(a);
	fake_free(&f);
}

struct streamlog {
	size_t bytes;
	int closed;
	int writable;
	size_t consume_limit; /* consume at most this per callback (0 = all) */
};

static size_t s_data(pv_agent_t *a, uint32_t stream, const uint8_t *buf, size_t len, void *opaque)
{
	struct streamlog *l = opaque;
	l->bytes += len;
	return l->consume_limit && len > l->consume_limit ? l->consume_limit : len;
}

static void s_closed(pv_agent_t *a, uint32_t stream, bool reset, void *opaque)
{
	((struct streamlog *)opaque)->closed++;
}

static void s_writable(pv_agent_t *a, uint32_t stream, void *opaque)
{
	((struct streamlog *)opaque)->writable++;
}

static const struct pv_agent_stream_ops ops = { .data = s_data, .closed = s_closed, .writable = s_writable };

static void test_stream_output_credit(void **state)
{
	pv_agent_t *a;
	struct fake f;
	setup_pair(&a, &f);
	struct streamlog l = { 0 };
	uint32_t sid = pv_agent_stream_alloc(a);
	assert_int_equal(pv_agent_stream_open(a, sid, &ops, &l, NULL), 0);
	assert_int_equal(pv_agent_stream_open(a, sid, &ops, &l, NULL), -EEXIST);
	/* The guest sends half its window: the client returns that much credit. */
	static uint8_t chunk[PV_FRAME_MAX_DATA];
	size_t half = PV_FRAME_DEFAULT_WINDOW / 2;
	for (size_t sent = 0; sent < half; sent += sizeof(chunk))
		pv_frame_writer_put(&f.wr, PV_FRAME_DATA, sid, 0, chunk, sizeof(chunk));
	pv_frame_writer_put(&f.wr, PV_FRAME_CLOSE, sid, 0, NULL, 0);
	fake_send(&f);
	while (!l.closed)
		assert_int_equal(pv_agent_on_readable(a, NULL), 0);
	assert_int_equal(l.bytes, half);
	struct pv_frame_hdr h;
	uint8_t buf[64];
	fake_expect(&f, PV_FRAME_WINDOW, &h, buf, sizeof(buf));
	uint32_t inc;
	assert_int_equal(pv_frame_parse_window(buf, h.len, &inc), 0);
	assert_int_equal(h.stream, sid);
	assert_int_equal(inc, half);
	pv_agent_free(a);
	fake_free(&f);
}

static void test_stdin_respects_credit(void **state)
{
	pv_agent_t *a;
	struct fake f;
	setup_pair(&a, &f);
	struct streamlog l = { 0 };
	uint32_t sid = pv_agent_stream_alloc(a);
	assert_int_equal(pv_agent_stream_open(a, sid, &ops, &l, NULL), 0);
	size_t big = PV_FRAME_DEFAULT_WINDOW + 1000;
	uint8_t *data = calloc(1, big);
	ssize_t n = pv_agent_stdin_write(a, sid, data, big, NULL);
	assert_int_equal(n, PV_FRAME_DEFAULT_WINDOW);
	assert_int_equal(pv_agent_stdin_credit(a, sid), 0);
	assert_int_equal(pv_agent_stdin_write(a, sid, data, 10, NULL), 0);
	/* The guest grants more. */
	pv_frame_writer_put_window(&f.wr, sid, 500);
	fake_send(&f);
	while (!l.writable) {
		pv_agent_flush(a, NULL);
		/* drain what the client sent so the socket does not fill */
		uint8_t sink[65536];
		(void)recv(f.fd, sink, sizeof(sink), MSG_DONTWAIT);
		assert_int_equal(pv_agent_on_readable(a, NULL), 0);
	}
	assert_int_equal(pv_agent_stdin_credit(a, sid), 500);
	assert_int_equal(pv_agent_stdin_write(a, sid, data, 1000, NULL), 500);
	assert_int_equal(pv_agent_stdin_close(a, sid, NULL), 0);
	pv_err_t *err = NULL;
	assert_true(pv_agent_stdin_write(a, sid, data, 1, &err) < 0);
	pv_err_free(err);
	assert_true(pv_agent_stdin_write(a, sid + 1000, data, 1, NULL) < 0);
	free(data);
	pv_agent_free(a);
	fake_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_async_call_and_notice),
		cmocka_unit_test(test_call_timeout),
		cmocka_unit_test(test_stream_output_credit),
		cmocka_unit_test(test_stdin_respects_credit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
