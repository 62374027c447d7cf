/*
 * Port forwarding: a TCP connection to localhost:PORT in the guest (the pod's network
 * namespace) bound to one channel stream that carries bytes both ways, each direction
 * with its own credit (docs/agent-protocol.md, PortForwardRequest).
 */
#include "agent.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* A loopback connect normally completes at once; a full accept queue may hold it a while. */
#define CONNECT_TIMEOUT_MS 2000

struct pf_conn {
	struct ev ev;
	uint32_t id;
	int fd;                 /* -1 once closed */
	uint32_t events;        /* registered with epoll */
	bool rd_eof;            /* the peer closed its side: CLOSE sent to the host */
	bool host_closed;       /* CLOSE from the host: shut our write side once drained */
	bool wr_shut;
	bool paused;            /* out of credit (or channel backlogged): not reading */
	struct pv_flow_out out; /* socket -> host */
	struct pv_flow_in in;   /* host -> socket */
	uint8_t *buf;           /* host bytes not yet written to the socket (bounded by the window) */
	size_t len;
	struct pf_conn *next;
};

static struct pf_conn *g_conns;

static struct pf_conn *pf_find(uint32_t id)
{
	for (struct pf_conn *c = g_conns; c; c = c->next)
		if (c->id == id && c->fd >= 0)
			return c;
	return NULL;
}

bool portfwd_stream_in_use(uint32_t id)
{
	return pf_find(id) != NULL;
}

static void set_events(struct pf_conn *c)
{
	uint32_t want = 0;
	if (!c->rd_eof && !c->paused)
		want |= EPOLLIN;
	if (c->len)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	struct epoll_event ev = { .events = want, .data.ptr = &c->ev };
	if (!want)
		epoll_ctl(g_agent.epfd, EPOLL_CTL_DEL, c->fd, NULL);
	else
		epoll_ctl(g_agent.epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
	c->events = want;
}

/* Drop the connection; reset: the stream was aborted (tell the host unless it did). */
static void pf_close(struct pf_conn *c, bool send_reset)
{
	if (c->fd < 0)
		return;
	if (c->events)
		epoll_ctl(g_agent.epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->events = 0;
	free(c->buf);
	c->buf = NULL;
	c->len = 0;
	if (send_reset)
		channel_send_close(c->id, true);
}

/* Both directions finished: the connection is done. */
static void pf_maybe_done(struct pf_conn *c)
{
	if (c->fd >= 0 && c->rd_eof && c->wr_shut)
		pf_close(c, false);
}

static int try_connect(int family, uint32_t port, char *why, size_t n)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	const char *name;
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*sin);
		name = "IPv4: connect 127.0.0.1";
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sin6->sin6_addr = in6addr_loopback;
		sl = sizeof(*sin6);
		name = "IPv6: connect [::1]";
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int e = 0;
	if (fd < 0) {
		e = errno;
	} else if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		e = errno;
		if (e == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			socklen_t el = sizeof(e);
			if (poll(&p, 1, CONNECT_TIMEOUT_MS) != 1)
				e = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
				e = errno;
		}
	}
	if (!e)
		return fd;
	snprintf(why, n, "%s:%u: %s", name, port, strerror(e));
	if (fd >= 0)
		close(fd);
	return -1;
}

int portfwd_open(uint32_t port, uint32_t stream, pv_err_t **err)
{
	if (!port || port > 65535)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "port %u is out of range", port);
	if (!stream)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "stream id 0 is reserved");
	if (stdio_find(stream) || pf_find(stream))
		return pv_err_set(err, PV_ALREADY_EXISTS, EEXIST, "stream %u is in use", stream);
	char why4[160], why6[160];
	int fd = try_connect(AF_INET, port, why4, sizeof(why4));
	if (fd < 0)
		fd = try_connect(AF_INET6, port, why6, sizeof(why6));
	if (fd < 0)
		return pv_err_set(err, PV_UNAVAILABLE, ECONNREFUSED, "%s %s", why4, why6);
	struct pf_conn *c = pv_xcalloc(1, sizeof(*c));
	c->ev.kind = EV_PORTFWD;
	c->ev.ptr = c;
	c->id = stream;
	c->fd = fd;
	pv_flow_out_init(&c->out, PV_FRAME_DEFAULT_WINDOW);
	pv_flow_in_init(&c->in, PV_FRAME_DEFAULT_WINDOW);
	c->next = g_conns;
	g_conns = c;
	set_events(c);
	pv_debug("port forward connected", "port=%u stream=%u", port, stream);
	return 0;
}

static void pump_in(struct pf_conn *c)
{
	uint8_t buf[PV_FRAME_MAX_DATA];
	for (int round = 0; round < 8 && !c->rd_eof; round++) {
		uint32_t n = pv_flow_out_sendable(&c->out, sizeof(buf));
		if (!n || channel_backlogged()) {
			c->paused = true;
			break;
		}
		ssize_t got = read(c->fd, buf, n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EAGAIN)
			break;
		if (got < 0) {
			pv_debug("port forward connection failed", "stream=%u error=%s", c->id, strerror(errno));
			pf_close(c, true);
			return;
		}
		if (got == 0) {
			c->rd_eof = true;
			channel_send_close(c->id, false);
			break;
		}
		pv_flow_out_sent(&c->out, (uint32_t)got);
		channel_send_data(c->id, buf, (size_t)got);
	}
	set_events(c);
	pf_maybe_done(c);
}

static void pump_out(struct pf_conn *c)
{
	while (c->len) {
		ssize_t n = write(c->fd, c->buf, c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			pf_close(c, true);
			return;
		}
		memmove(c->buf, c->buf + n, c->len - (size_t)n);
		c->len -= (size_t)n;
		uint32_t inc = pv_flow_in_consume(&c->in, (uint32_t)n);
		if (inc)
			channel_send_window(c->id, inc);
	}
	if (!c->len && c->host_closed && !c->wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->wr_shut = true;
	}
	set_events(c);
	pf_maybe_done(c);
}

void portfwd_on_event(struct pf_conn *c, uint32_t events)
{
	if (c->fd >= 0 && (events & EPOLLOUT))
		pump_out(c);
	if (c->fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		pump_in(c);
}

bool portfwd_on_data(uint32_t stream, const uint8_t *buf, uint32_t len)
{
	struct pf_conn *c = pf_find(stream);
	if (!c)
		return false;
	if (c->host_closed || pv_flow_in_receive(&c->in, len) < 0) {
		pv_frame_put_error(&g_agent.wr, 0, PV_RESOURCE_EXHAUSTED, "port stream exceeded its window");
		return true;
	}
	c->buf = pv_xrealloc(c->buf, c->len + len);
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	pump_out(c);
	return true;
}

bool portfwd_on_window(uint32_t stream, uint32_t inc)
{
	struct pf_conn *c = pf_find(stream);
	if (!c)
		return false;
	if (pv_flow_out_grant(&c->out, inc) < 0) {
		pv_frame_put_error(&g_agent.wr, 0, PV_INVALID_ARGUMENT, "WINDOW overflows the stream credit");
		return true;
	}
	if (c->paused) {
		c->paused = false;
		set_events(c);
	}
	return true;
}

bool portfwd_on_close(uint32_t stream, bool reset)
{
	struct pf_conn *c = pf_find(stream);
	if (!c)
		return false;
	if (reset) {
		pf_close(c, false);
		return true;
	}
	c->host_closed = true;
	pump_out(c);
	return true;
}

void portfwd_resume_all(void)
{
	for (struct pf_conn *c = g_conns; c; c = c->next) {
		if (c->fd >= 0 && c->paused && c->out.credit) {
			c->paused = false;
			set_events(c);
		}
	}
}

/* The host went away: its side of every connection is gone with it. */
void portfwd_close_all(void)
{
	for (struct pf_conn *c = g_conns; c; c = c->next)
		pf_close(c, false);
}

void portfwd_free_closed(void)
{
	struct pf_conn **pp = &g_conns;
	while (*pp) {
		struct pf_conn *c = *pp;
		if (c->fd < 0) {
			*pp = c->next;
			free(c);
		} else {
			pp = &c->next;
		}
	}
}
