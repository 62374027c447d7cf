/* Host-side client of the agent protocol (see agent_client.h). */
#if __has_include("proto/agent.pb-c.h")
#include "agent_client.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct pending {
	uint32_t id;
	pv_agent_response_cb cb;
	void *opaque;
	struct pending *next;
};

struct stream {
	uint32_t id;
	struct pv_agent_stream_ops ops;
	bool has_ops;
	void *opaque;
	struct pv_flow_in in;   /* guest -> host (stdout/stderr) */
	struct pv_flow_out out; /* host -> guest (stdin) */
	bool closed_out;
	struct stream *next;
};

struct pv_agent {
	int fd;
	bool dead;
	uint32_t next_id;
	uint32_t next_stream;
	struct pv_frame_reader rd;
	struct pv_frame_writer wr;
	struct pending *pending;
	struct stream *streams;
	char *notice;
};

pv_agent_t *pv_agent_new(int fd)
{
	pv_agent_t *a = pv_xcalloc(1, sizeof(*a));
	a->fd = fd;
	a->next_id = 1;
	a->next_stream = 1;
	pv_frame_reader_init(&a->rd, PV_FRAME_MAX_PAYLOAD);
	pv_frame_writer_init(&a->wr);
	return a;
}

int pv_agent_connect_unix(const char *path, int timeout_ms, pv_agent_t **out, pv_err_t **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return pv_err_sys(err, PV_INTERNAL, "socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			*out = pv_agent_new(steal_fd(&fd));
			return 0;
		}
		if ((errno != ENOENT && errno != ECONNREFUSED) || pv_now_monotonic_ns() >= deadline)
			return pv_err_sys(err, PV_UNAVAILABLE, "connect %s", path);
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void fail_pending(pv_agent_t *a, const pv_err_t *e)
{
	while (a->pending) {
		struct pending *p = a->pending;
		a->pending = p->next;
		if (p->cb)
			p->cb(a, p->id, NULL, e, p->opaque);
		free(p);
	}
}

void pv_agent_free(pv_agent_t *a)
{
	if (!a)
		return;
	pv_err_t e = { .status = PV_CANCELLED, .errnum = ECANCELED, .msg = (char *)"agent client closed" };
	a->dead = true; /* callbacks cannot queue new requests now */
	fail_pending(a, &e);
	while (a->streams) {
		struct stream *s = a->streams;
		a->streams = s->next;
		free(s);
	}
	if (a->fd >= 0)
		close(a->fd);
	pv_frame_reader_free(&a->rd);
	pv_frame_writer_free(&a->wr);
	free(a->notice);
	free(a);
}

int pv_agent_fd(const pv_agent_t *a)
{
	return a->fd;
}

bool pv_agent_want_write(const pv_agent_t *a)
{
	return pv_frame_writer_pending(&a->wr) > 0;
}

const char *pv_agent_last_notice(const pv_agent_t *a)
{
	return a->notice;
}

static int mark_dead(pv_agent_t *a, int rc, pv_err_t **err, const char *what)
{
	pv_err_t *e = NULL;
	pv_err_set(&e, PV_UNAVAILABLE, -rc, "agent channel %s: %s", what, strerror(-rc));
	a->dead = true;
	fail_pending(a, e);
	pv_err_move(err, e);
	return rc;
}

int pv_agent_flush(pv_agent_t *a, pv_err_t **err)
{
	if (a->dead)
		return pv_err_set(err, PV_UNAVAILABLE, EPIPE, "agent channel is closed");
	int rc = pv_frame_writer_flush(&a->wr, a->fd);
	if (rc < 0)
		return mark_dead(a, rc, err, "write");
	return rc;
}

static struct stream *find_stream(const pv_agent_t *a, uint32_t id)
{
	for (struct stream *s = a->streams; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void handle_response(pv_agent_t *a, const struct pv_frame_hdr *h, const uint8_t *payload)
{
	Podvisor__Agent__Response *resp = NULL;
	cleanup_err pv_err_t *e = NULL;
	int rc = pv_frame_decode_response(payload, h->len, &resp, &e);
	if (h->stream == 0) {
		free(a->notice);
		a->notice = pv_xstrdup(rc == 0 ? resp->message : e->msg);
		if (resp)
			podvisor__agent__response__free_unpacked(resp, NULL);
		return;
	}
	struct pending **pp = &a->pending;
	while (*pp && (*pp)->id != h->stream)
		pp = &(*pp)->next;
	struct pending *p = *pp;
	if (!p) {
		if (resp)
			podvisor__agent__response__free_unpacked(resp, NULL);
		return;
	}
	*pp = p->next;
	if (p->cb)
		p->cb(a, p->id, resp, e, p->opaque);
	free(p);
	if (resp)
		podvisor__agent__response__free_unpacked(resp, NULL);
}

static void handle_data(pv_agent_t *a, const struct pv_frame_hdr *h, const uint8_t *payload)
{
	struct stream *s = find_stream(a, h->stream);
	if (!s) {
		/* Unknown or released stream: hand the credit straight back so the process does not stall. */
		if (h->len)
			pv_frame_writer_put_window(&a->wr, h->stream, h->len);
		return;
	}
	if (pv_flow_in_receive(&s->in, h->len) < 0) {
		free(a->notice);
		a->notice = pv_xasprintf("agent exceeded credit on stream %u", h->stream);
		return;
	}
	size_t used = h->len;
	uint32_t id = h->stream, len = h->len;
	if (s->has_ops && s->ops.data)
		used = s->ops.data(a, id, payload, len, s->opaque);
	if (used > len)
		used = len;
	/* The callback may have released the stream: look it up again. */
	s = find_stream(a, id);
	if (!s) {
		if (used)
			pv_frame_writer_put_window(&a->wr, id, (uint32_t)used);
		return;
	}
	uint32_t inc = pv_flow_in_consume(&s->in, (uint32_t)used);
	if (inc)
		pv_frame_writer_put_window(&a->wr, id, inc);
}

static void dispatch(pv_agent_t *a, const struct pv_frame_hdr *h, const uint8_t *payload)
{
	switch (h->type) {
	case PV_FRAME_RESPONSE:
		handle_response(a, h, payload);
		break;
	case PV_FRAME_DATA:
		handle_data(a, h, payload);
		break;
	case PV_FRAME_WINDOW: {
		uint32_t inc;
		struct stream *s = find_stream(a, h->stream);
		if (!s || pv_frame_parse_window(payload, h->len, &inc) < 0)
			break;
		if (pv_flow_out_grant(&s->out, inc) == 0 && s->has_ops && s->ops.writable)
			s->ops.writable(a, h->stream, s->opaque);
		break;
	}
	case PV_FRAME_CLOSE: {
		struct stream *s = find_stream(a, h->stream);
		if (s && s->has_ops && s->ops.closed)
			s->ops.closed(a, h->stream, (h->flags & PV_FRAME_F_RESET) != 0, s->opaque);
		break;
	}
	default:
		/* REQUEST frames from the guest are not part of the protocol: ignore. */
		break;
	}
}

int pv_agent_on_readable(pv_agent_t *a, pv_err_t **err)
{
	if (a->dead)
		return pv_err_set(err, PV_UNAVAILABLE, EPIPE, "agent channel is closed");
	int rc = pv_frame_reader_read_fd(&a->rd, a->fd);
	if (rc == -EAGAIN)
		return 0;
	if (rc < 0)
		return mark_dead(a, rc, err, "read");
	if (rc == 0)
		return mark_dead(a, -EPIPE, err, "closed by peer");
	for (;;) {
		struct pv_frame_hdr h;
		const uint8_t *payload;
		cleanup_err pv_err_t *e = NULL;
		rc = pv_frame_reader_next(&a->rd, &h, &payload, &e);
		if (rc == 0)
			break;
		if (rc < 0) {
			free(a->notice);
			a->notice = pv_xstrdup(e->msg);
			continue;
		}
		dispatch(a, &h, payload);
	}
	/* Opportunistic flush of credit returned while dispatching. */
	rc = pv_frame_writer_flush(&a->wr, a->fd);
	if (rc < 0)
		return mark_dead(a, rc, err, "write");
	return 0;
}

/* ---- RPCs --------------------------------------------------------------------------- */

int pv_agent_call_async(pv_agent_t *a, const Podvisor__Agent__Request *req, pv_agent_response_cb cb,
			void *opaque, uint32_t *id_out, pv_err_t **err)
{
	if (a->dead)
		return pv_err_set(err, PV_UNAVAILABLE, EPIPE, "agent channel is closed");
	uint32_t id = a->next_id++;
	if (!a->next_id)
		a->next_id = 1;
	if (pv_frame_put_request(&a->wr, id, req, err) < 0)
		return -EMSGSIZE;
	struct pending *p = pv_xcalloc(1, sizeof(*p));
	p->id = id;
	p->cb = cb;
	p->opaque = opaque;
	p->next = a->pending;
	a->pending = p;
	if (id_out)
		*id_out = id;
	return 0;
}

int pv_agent_run_until(pv_agent_t *a, const bool *done, int64_t deadline_ns, pv_err_t **err)
{
	while (!(done && *done)) {
		if (a->dead)
			return pv_err_set(err, PV_UNAVAILABLE, EPIPE, "agent channel is closed");
		int timeout = -1;
		if (deadline_ns >= 0) {
			int64_t left = deadline_ns - pv_now_monotonic_ns();
			if (left <= 0)
				return pv_err_set(err, PV_DEADLINE_EXCEEDED, ETIMEDOUT, "agent did not answer in time");
			timeout = (int)((left + 999999) / 1000000);
		}
		struct pollfd pfd = { .fd = a->fd, .events = POLLIN };
		if (pv_agent_want_write(a))
			pfd.events |= POLLOUT;
		int n = poll(&pfd, 1, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return pv_err_sys(err, PV_INTERNAL, "poll");
		}
		if (pfd.revents & POLLOUT) {
			if (pv_agent_flush(a, err) < 0)
				return -EPIPE;
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			if (pv_agent_on_readable(a, err) < 0)
				return -EPIPE;
		}
	}
	return 0;
}

struct sync_call {
	bool done;
	Podvisor__Agent__Response *resp;
	pv_err_t *err;
};

static void sync_cb(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp,
		    const pv_err_t *e, void *opaque)
{
	struct sync_call *sc = opaque;
	sc->done = true;
	if (resp) {
		/* Copy by re-packing: the callback does not own resp. */
		size_t n = podvisor__agent__response__get_packed_size(resp);
		uint8_t *buf = pv_xmalloc(n);
		podvisor__agent__response__pack(resp, buf);
		sc->resp = podvisor__agent__response__unpack(NULL, n, buf);
		free(buf);
	} else if (e) {
		pv_err_set(&sc->err, e->status, e->errnum, "%s", e->msg);
	} else {
		pv_err_set(&sc->err, PV_UNAVAILABLE, EPIPE, "agent channel closed");
	}
}

/* Drop a pending entry (timed out): its late reply will be ignored. */
static void forget_pending(pv_agent_t *a, uint32_t id)
{
	for (struct pending **pp = &a->pending; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct pending *p = *pp;
			*pp = p->next;
			free(p);
			return;
		}
	}
}

int pv_agent_call(pv_agent_t *a, const Podvisor__Agent__Request *req, int timeout_ms,
		  Podvisor__Agent__Response **resp, pv_err_t **err)
{
	struct sync_call sc = { 0 };
	uint32_t id;
	int rc = pv_agent_call_async(a, req, sync_cb, &sc, &id, err);
	if (rc < 0)
		return rc;
	int64_t deadline = timeout_ms < 0 ? -1 : pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	pv_err_t *loop_err = NULL;
	rc = pv_agent_run_until(a, &sc.done, deadline, &loop_err);
	if (!sc.done) {
		forget_pending(a, id);
		pv_err_move(err, loop_err);
		return rc < 0 ? rc : -EIO;
	}
	pv_err_free(loop_err);
	if (!sc.resp) {
		pv_err_move(err, sc.err);
		return -EPIPE;
	}
	*resp = sc.resp;
	return 0;
}

int pv_agent_check(const Podvisor__Agent__Response *resp, pv_err_t **err)
{
	if (resp->status == PV_OK)
		return 0;
	return pv_err_set(err, (int)resp->status, (int)resp->errnum, "agent: %s",
			  resp->message && *resp->message ? resp->message : pv_status_name((int)resp->status));
}

int pv_agent_call_ok(pv_agent_t *a, const Podvisor__Agent__Request *req, int timeout_ms,
		     Podvisor__Agent__Response **resp, pv_err_t **err)
{
	Podvisor__Agent__Response *r = NULL;
	int rc = pv_agent_call(a, req, timeout_ms, &r, err);
	if (rc < 0)
		return rc;
	if (pv_agent_check(r, err) < 0) {
		podvisor__agent__response__free_unpacked(r, NULL);
		return -1;
	}
	if (resp)
		*resp = r;
	else
		podvisor__agent__response__free_unpacked(r, NULL);
	return 0;
}

int pv_agent_wait_ready(pv_agent_t *a, int timeout_ms, Podvisor__Agent__PingResponse **ping_out,
			pv_err_t **err)
{
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	Podvisor__Agent__PingRequest ping = PODVISOR__AGENT__PING_REQUEST__INIT;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_PING;
	req.ping = &ping;
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	/*
	 * QEMU holds our bytes until the guest opens its port, so one ping is
	 * normally enough; it is repeated because the agent drops a frame left
	 * half-sent by a previous host connection, which can swallow our first one.
	 */
	for (;;) {
		struct sync_call sc = { 0 };
		uint32_t id;
		if (pv_agent_call_async(a, &req, sync_cb, &sc, &id, err) < 0)
			return -EPIPE;
		int64_t now = pv_now_monotonic_ns();
		int64_t until = now + 1500LL * 1000000;
		if (until > deadline)
			until = deadline;
		pv_err_t *loop_err = NULL;
		int rc = pv_agent_run_until(a, &sc.done, until, &loop_err);
		if (!sc.done) {
			forget_pending(a, id);
			if (rc != -ETIMEDOUT || pv_now_monotonic_ns() >= deadline) {
				pv_err_move(err, loop_err);
				pv_err_prefix(err, "waiting for the agent");
				return rc < 0 ? rc : -ETIMEDOUT;
			}
			pv_err_free(loop_err);
			continue;
		}
		pv_err_free(loop_err);
		if (!sc.resp) {
			pv_err_move(err, sc.err);
			pv_err_prefix(err, "waiting for the agent");
			return -EPIPE;
		}
		Podvisor__Agent__Response *resp = sc.resp;
		if (pv_agent_check(resp, err) < 0 || resp->resp_case != PODVISOR__AGENT__RESPONSE__RESP_PING) {
			podvisor__agent__response__free_unpacked(resp, NULL);
			return pv_err_set(err, PV_INTERNAL, EPROTO, "agent answered ping with the wrong message");
		}
		if (ping_out) {
			*ping_out = resp->ping;
			resp->ping = NULL;
			resp->resp_case = PODVISOR__AGENT__RESPONSE__RESP__NOT_SET;
		}
		podvisor__agent__response__free_unpacked(resp, NULL);
		return 0;
	}
}

/* ---- streams ------------------------------------------------------------------------ */

uint32_t pv_agent_stream_alloc(pv_agent_t *a)
{
	uint32_t id;
	do {
		id = a->next_stream++;
		if (!a->next_stream)
			a->next_stream = 1;
	} while (!id || find_stream(a, id));
	return id;
}

int pv_agent_stream_open(pv_agent_t *a, uint32_t stream, const struct pv_agent_stream_ops *ops,
			 void *opaque, pv_err_t **err)
{
	if (!stream)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "stream id 0 is reserved");
	if (find_stream(a, stream))
		return pv_err_set(err, PV_ALREADY_EXISTS, EEXIST, "stream %u already open", stream);
	struct stream *s = pv_xcalloc(1, sizeof(*s));
	s->id = stream;
	if (ops) {
		s->ops = *ops;
		s->has_ops = true;
	}
	s->opaque = opaque;
	pv_flow_in_init(&s->in, PV_FRAME_DEFAULT_WINDOW);
	pv_flow_out_init(&s->out, PV_FRAME_DEFAULT_WINDOW);
	s->next = a->streams;
	a->streams = s;
	return 0;
}

void pv_agent_stream_release(pv_agent_t *a, uint32_t stream)
{
	for (struct stream **sp = &a->streams; *sp; sp = &(*sp)->next) {
		if ((*sp)->id == stream) {
			struct stream *s = *sp;
			*sp = s->next;
			/* Return any credit held back so the guest side is not left stalled. */
			if (s->in.consumed)
				pv_frame_writer_put_window(&a->wr, stream, s->in.consumed);
			free(s);
			return;
		}
	}
}

void pv_agent_stream_consume(pv_agent_t *a, uint32_t stream, size_t n)
{
	struct stream *s = find_stream(a, stream);
	if (!s || !n)
		return;
	uint32_t inc = pv_flow_in_consume(&s->in, (uint32_t)n);
	if (inc)
		pv_frame_writer_put_window(&a->wr, stream, inc);
}

ssize_t pv_agent_stdin_write(pv_agent_t *a, uint32_t stream, const void *buf, size_t len,
			     pv_err_t **err)
{
	struct stream *s = find_stream(a, stream);
	if (!s)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "stream %u is not open", stream);
	if (s->closed_out)
		return pv_err_set(err, PV_FAILED_PRECONDITION, EPIPE, "stdin of stream %u is closed", stream);
	size_t done = 0;
	const uint8_t *p = buf;
	while (done < len) {
		uint32_t n = pv_flow_out_sendable(&s->out, len - done);
		if (!n)
			break;
		pv_frame_writer_put(&a->wr, PV_FRAME_DATA, stream, 0, p + done, n);
		pv_flow_out_sent(&s->out, n);
		done += n;
	}
	return (ssize_t)done;
}

int pv_agent_stdin_close(pv_agent_t *a, uint32_t stream, pv_err_t **err)
{
	struct stream *s = find_stream(a, stream);
	if (!s)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "stream %u is not open", stream);
	if (!s->closed_out)
		pv_frame_writer_put(&a->wr, PV_FRAME_CLOSE, stream, 0, NULL, 0);
	s->closed_out = true;
	return 0;
}

void pv_agent_stream_reset(pv_agent_t *a, uint32_t stream)
{
	if (!find_stream(a, stream))
		return;
	pv_frame_writer_put(&a->wr, PV_FRAME_CLOSE, stream, PV_FRAME_F_RESET, NULL, 0);
	pv_agent_stream_release(a, stream);
}

size_t pv_agent_stdin_credit(const pv_agent_t *a, uint32_t stream)
{
	const struct stream *s = find_stream(a, stream);
	return s ? s->out.credit : 0;
}
#endif
