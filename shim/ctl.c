/* The control socket: podvisord's connections, framed requests, deferred replies. */
#include "shim.h"
#include "cleanup.h"
#include "frame.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Bytes of replies a client may leave unread before it is dropped. */
#define CTL_MAX_PENDING_OUT (64u << 20)

struct ctl_client {
	struct shim *shim;
	int fd;
	int refs;          /* the connection + each call not yet answered */
	bool closed;
	struct shim_watch *watch;
	struct pv_frame_reader rd;
	struct pv_frame_writer wr;
	struct stream_sess *stream; /* a streaming session bound to this connection */
	struct ctl_client *next; /* in shim_ctl.clients while open */
};

struct shim_call {
	struct ctl_client *client;
	uint32_t id;
};

struct shim_ctl {
	int fd;
	struct shim_watch *watch;
	struct ctl_client *clients;
};

static void client_unref(struct ctl_client *c)
{
	if (--c->refs > 0)
		return;
	pv_frame_reader_free(&c->rd);
	pv_frame_writer_free(&c->wr);
	free(c);
}

static void client_close(struct ctl_client *c)
{
	if (c->closed)
		return;
	c->closed = true;
	if (c->shim->ctl) {
		for (struct ctl_client **pp = &c->shim->ctl->clients; *pp; pp = &(*pp)->next) {
			if (*pp == c) {
				*pp = c->next;
				break;
			}
		}
	}
	shim_loop_del(c->shim->loop, c->watch);
	if (c->stream)
		shim_stream_client_gone(c->stream); /* unbinds */
	pv_debug("control client gone", "fd=%d", c->fd);
	close(c->fd);
	c->fd = -1;
	client_unref(c);
}

static void client_flush(struct ctl_client *c)
{
	if (c->closed)
		return;
	int r = pv_frame_writer_flush(&c->wr, c->fd);
	if (r < 0) {
		client_close(c);
		return;
	}
	shim_loop_mod(c->shim->loop, c->watch, EPOLLIN | (r > 0 ? EPOLLOUT : 0));
}

void shim_call_reply(struct shim_call *call, Podvisor__Shim__Response *resp)
{
	struct ctl_client *c = call->client;
	resp->seq = c->shim->seq;
	if (!c->closed) {
		size_t len = podvisor__shim__response__get_packed_size(resp);
		if (len > PV_FRAME_MAX_PAYLOAD) {
			Podvisor__Shim__Response small = PODVISOR__SHIM__RESPONSE__INIT;
			small.status = PV_RESOURCE_EXHAUSTED;
			small.message = "reply larger than the frame limit";
			len = podvisor__shim__response__get_packed_size(&small);
			resp = &small;
			uint8_t buf[256];
			podvisor__shim__response__pack(resp, buf);
			pv_frame_writer_put(&c->wr, PV_FRAME_RESPONSE, call->id, 0, buf, len);
		} else {
			cleanup_free uint8_t *buf = pv_xmalloc(len ? len : 1);
			podvisor__shim__response__pack(resp, buf);
			pv_frame_writer_put(&c->wr, PV_FRAME_RESPONSE, call->id, 0, buf, len);
		}
		if (pv_frame_writer_pending(&c->wr) > CTL_MAX_PENDING_OUT)
			client_close(c);
		else
			client_flush(c);
	}
	client_unref(c);
	free(call);
}

void shim_call_error(struct shim_call *call, const pv_err_t *err)
{
	Podvisor__Shim__Response resp = PODVISOR__SHIM__RESPONSE__INIT;
	resp.status = err ? (uint32_t)err->status : PV_UNKNOWN;
	resp.errnum = err && err->errnum > 0 ? (uint32_t)err->errnum : 0;
	resp.message = err ? err->msg : "unknown error";
	if (!resp.status)
		resp.status = PV_UNKNOWN;
	shim_call_reply(call, &resp);
}

void shim_call_ok(struct shim_call *call)
{
	Podvisor__Shim__Response resp = PODVISOR__SHIM__RESPONSE__INIT;
	Podvisor__Shim__Empty empty = PODVISOR__SHIM__EMPTY__INIT;
	resp.resp_case = PODVISOR__SHIM__RESPONSE__RESP_EMPTY;
	resp.empty = &empty;
	shim_call_reply(call, &resp);
}

struct ctl_client *shim_call_client(struct shim_call *call)
{
	return call->client;
}

void shim_ctl_client_ref(struct ctl_client *c)
{
	c->refs++;
}

void shim_ctl_client_unref(struct ctl_client *c)
{
	client_unref(c);
}

void shim_ctl_client_bind(struct ctl_client *c, struct stream_sess *ss)
{
	c->stream = ss;
}

struct stream_sess *shim_ctl_client_stream(struct ctl_client *c)
{
	return c->stream;
}

void shim_ctl_send(struct ctl_client *c, uint8_t type, uint32_t stream, uint8_t flags, const void *buf, size_t len)
{
	if (c->closed)
		return;
	pv_frame_writer_put(&c->wr, type, stream, flags, buf, len);
	/* A write error is left for the loop to see (EPOLLERR): closing here would end the
	 * session under its caller's feet. */
	int r = pv_frame_writer_flush(&c->wr, c->fd);
	shim_loop_mod(c->shim->loop, c->watch, EPOLLIN | (r != 0 ? EPOLLOUT : 0));
}

static void handle_frame(struct ctl_client *c, const struct pv_frame_hdr *h, const uint8_t *payload)
{
	if (c->stream && h->type != PV_FRAME_REQUEST && h->type != PV_FRAME_RESPONSE) {
		shim_stream_on_frame(c->stream, h, payload);
		return;
	}
	if (h->type != PV_FRAME_REQUEST || h->stream == 0) {
		pv_frame_put_error(&c->wr, h->stream, PV_INVALID_ARGUMENT, "expected a REQUEST frame");
		return;
	}
	Podvisor__Shim__Request *req = podvisor__shim__request__unpack(NULL, h->len, payload);
	struct shim_call *call = pv_xcalloc(1, sizeof(*call));
	call->client = c;
	call->id = h->stream;
	c->refs++;
	if (!req) {
		pv_err_t e = { .status = PV_INVALID_ARGUMENT, .msg = "cannot decode request" };
		shim_call_error(call, &e);
		return;
	}
	shim_dispatch(c->shim, call, req);
	podvisor__shim__request__free_unpacked(req, NULL);
}

static void client_event(void *opaque, uint32_t events)
{
	struct ctl_client *c = opaque;
	c->refs++; /* keep c alive while its requests are handled */
	if (events & EPOLLOUT)
		client_flush(c);
	if (!c->closed && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		for (;;) {
			int n = pv_frame_reader_read_fd(&c->rd, c->fd);
			if (n == -EAGAIN)
				break;
			if (n <= 0) {
				client_close(c);
				break;
			}
			struct pv_frame_hdr h;
			const uint8_t *payload;
			int r;
			while (!c->closed) {
				cleanup_err pv_err_t *err = NULL;
				r = pv_frame_reader_next(&c->rd, &h, &payload, &err);
				if (r == 0)
					break;
				if (r < 0) {
					pv_frame_put_error(&c->wr, h.stream, PV_INVALID_ARGUMENT, err ? err->msg : "bad frame");
					continue;
				}
				handle_frame(c, &h, payload);
			}
			if (c->closed)
				break;
		}
		client_flush(c);
	}
	client_unref(c);
}

static void accept_event(void *opaque, uint32_t events)
{
	struct shim *s = opaque;
	for (;;) {
		int fd = accept4(s->ctl->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct ctl_client *c = pv_xcalloc(1, sizeof(*c));
		c->shim = s;
		c->fd = fd;
		c->refs = 1;
		pv_frame_reader_init(&c->rd, PV_FRAME_MAX_PAYLOAD);
		pv_frame_writer_init(&c->wr);
		cleanup_err pv_err_t *err = NULL;
		c->watch = shim_loop_add(s->loop, fd, EPOLLIN, client_event, c, &err);
		if (!c->watch) {
			pv_warn("cannot watch control client", "error=%s", err->msg);
			close(fd);
			client_unref(c);
			continue;
		}
		c->next = s->ctl->clients;
		s->ctl->clients = c;
		pv_debug("control client connected", "fd=%d", fd);
	}
}

int shim_ctl_listen(struct shim *s, pv_err_t **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(s->sock_path) >= sizeof(sa.sun_path))
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENAMETOOLONG, "socket path too long: %s", s->sock_path);
	strcpy(sa.sun_path, s->sock_path);
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "socket");
	unlink(s->sock_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return pv_err_sys(err, PV_INTERNAL, "bind %s", s->sock_path);
	chmod(s->sock_path, 0600);
	if (listen(fd, 16) < 0)
		return pv_err_sys(err, PV_INTERNAL, "listen %s", s->sock_path);
	s->ctl = pv_xcalloc(1, sizeof(*s->ctl));
	s->ctl->fd = steal_fd(&fd);
	s->ctl->watch = shim_loop_add(s->loop, s->ctl->fd, EPOLLIN, accept_event, s, err);
	if (!s->ctl->watch)
		return -1;
	return 0;
}

void shim_ctl_close(struct shim *s)
{
	if (!s->ctl)
		return;
	/* Flush what replies can still go out (the Shutdown answer), then hang up. */
	while (s->ctl->clients) {
		struct ctl_client *c = s->ctl->clients;
		if (pv_frame_writer_pending(&c->wr))
			pv_frame_writer_flush(&c->wr, c->fd);
		client_close(c);
	}
	shim_loop_del(s->loop, s->ctl->watch);
	close(s->ctl->fd);
	unlink(s->sock_path);
	free(s->ctl);
	s->ctl = NULL;
}
