/* Process stdio <-> channel streams, with per-stream credit. */
#include "agent.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>


struct stdio_stream *stdio_find(uint32_t id)
{
	for (struct stdio_stream *s = g_agent.streams; s; s = s->next)
		if (s->id == id && s->fd >= 0)
			return s;
	return NULL;
}

/* events == 0 unregisters: epoll reports HUP/ERR even when not asked for. */
static void set_events(struct stdio_stream *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = &s->ev };
	if (!events) {
		if (s->registered)
			epoll_ctl(g_agent.epfd, EPOLL_CTL_DEL, s->fd, NULL);
		s->registered = false;
		return;
	}
	if (!s->registered) {
		if (epoll_ctl(g_agent.epfd, EPOLL_CTL_ADD, s->fd, &ev) == 0)
			s->registered = true;
	} else {
		epoll_ctl(g_agent.epfd, EPOLL_CTL_MOD, s->fd, &ev);
	}
}

struct stdio_stream *stdio_new(uint32_t id, int fd, bool input, struct proc *p)
{
	struct stdio_stream *s = pv_xcalloc(1, sizeof(*s));
	s->ev.kind = EV_STDIO;
	s->ev.ptr = s;
	s->id = id;
	s->fd = fd;
	s->input = input;
	s->proc = p;
	pv_flow_out_init(&s->out, PV_FRAME_DEFAULT_WINDOW);
	pv_flow_in_init(&s->in, PV_FRAME_DEFAULT_WINDOW);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	s->next = g_agent.streams;
	g_agent.streams = s;
	/* Output is polled right away; stdin only while bytes wait to be written. */
	set_events(s, input ? 0 : EPOLLIN);
	return s;
}

void stdio_close(struct stdio_stream *s, bool send_close)
{
	if (s->fd < 0)
		return;
	if (s->registered)
		epoll_ctl(g_agent.epfd, EPOLL_CTL_DEL, s->fd, NULL);
	close(s->fd);
	s->fd = -1;
	s->registered = false;
	free(s->buf);
	s->buf = NULL;
	s->len = 0;
	if (send_close && !s->input)
		channel_send_close(s->id, false);
	if (s->proc)
		proc_maybe_finish(s->proc);
}

/* Unlink streams closed during this loop iteration (their fd is -1). */
void stdio_free_closed(void)
{
	struct stdio_stream **sp = &g_agent.streams;
	while (*sp) {
		struct stdio_stream *s = *sp;
		if (s->fd < 0) {
			*sp = s->next;
			if (s->proc) {
				if (s->proc->sin == s)
					s->proc->sin = NULL;
				if (s->proc->sout == s)
					s->proc->sout = NULL;
				if (s->proc->serr == s)
					s->proc->serr = NULL;
			}
			free(s);
		} else {
			sp = &s->next;
		}
	}
}

static void pump_output(struct stdio_stream *s)
{
	uint8_t buf[PV_FRAME_MAX_DATA];
	for (int round = 0; round < 8; round++) {
		uint32_t n = pv_flow_out_sendable(&s->out, sizeof(buf));
		if (n == 0 || channel_backlogged()) {
			/* Out of credit: stop polling; a WINDOW frame resumes us. */
			s->paused = true;
			set_events(s, 0);
			return;
		}
		ssize_t got = read(s->fd, buf, n);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			/* EIO: pty master after the last slave fd closed. */
			stdio_close(s, true);
			return;
		}
		if (got == 0) {
			stdio_close(s, true);
			return;
		}
		pv_flow_out_sent(&s->out, (uint32_t)got);
		channel_send_data(s->id, buf, (size_t)got);
	}
}

static void pump_input(struct stdio_stream *s)
{
	while (s->len) {
		ssize_t n = write(s->fd, s->buf, s->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				set_events(s, EPOLLOUT);
				return;
			}
			/* Reader went away (EPIPE): drop what is queued, keep the credit flowing. */
			uint32_t inc = pv_flow_in_consume(&s->in, (uint32_t)s->len);
			if (inc)
				channel_send_window(s->id, inc);
			stdio_close(s, false);
			return;
		}
		memmove(s->buf, s->buf + n, s->len - (size_t)n);
		s->len -= (size_t)n;
		uint32_t inc = pv_flow_in_consume(&s->in, (uint32_t)n);
		if (inc)
			channel_send_window(s->id, inc);
	}
	set_events(s, 0);
	if (s->host_closed)
		stdio_close(s, false);
}

void stdio_on_event(struct stdio_stream *s, uint32_t events)
{
	if (s->fd < 0)
		return;
	if (s->input)
		pump_input(s);
	else
		pump_output(s);
}

void stdio_on_data(uint32_t stream, const uint8_t *buf, uint32_t len)
{
	struct stdio_stream *s = stdio_find(stream);
	if (!s || !s->input) {
		/* Unknown/closed stdin: give the credit back so the host does not stall. */
		if (len)
			channel_send_window(stream, len);
		return;
	}
	if (pv_flow_in_receive(&s->in, len) < 0) {
		pv_warn("stdin credit exceeded, dropping data", "stream=%u len=%u", stream, len);
		pv_frame_put_error(&g_agent.wr, 0, PV_RESOURCE_EXHAUSTED, "stdin stream exceeded its window");
		return;
	}
	/* Bounded by the window: at most PV_FRAME_DEFAULT_WINDOW bytes are ever queued. */
	s->buf = pv_xrealloc(s->buf, s->len + len);
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	pump_input(s);
}

void stdio_on_window(uint32_t stream, uint32_t inc)
{
	struct stdio_stream *s = stdio_find(stream);
	if (!s || s->input)
		return;
	if (pv_flow_out_grant(&s->out, inc) < 0) {
		pv_frame_put_error(&g_agent.wr, 0, PV_INVALID_ARGUMENT, "WINDOW overflows the stream credit");
		return;
	}
	if (s->paused) {
		s->paused = false;
		set_events(s, EPOLLIN);
	}
}

void stdio_on_close(uint32_t stream)
{
	struct stdio_stream *s = stdio_find(stream);
	if (!s || !s->input)
		return;
	s->host_closed = true;
	if (!s->len)
		stdio_close(s, false);
}

/* The channel drained below its high-water mark: resume streams that still have credit. */
void stdio_resume_all(void)
{
	for (struct stdio_stream *s = g_agent.streams; s; s = s->next) {
		if (s->fd >= 0 && !s->input && s->paused && s->out.credit) {
			s->paused = false;
			set_events(s, EPOLLIN);
		}
	}
}
