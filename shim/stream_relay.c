/* One byte stream of a streaming session: control connection <-> agent, credit on both legs. */
#include "stream.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* Attach output waiting for a slow host beyond this is dropped (the CRI log keeps it all). */
#define ATTACH_MAX_BACKLOG (4u << 20)

struct relay *relay_new(struct stream_sess *ss, uint32_t host_id, uint32_t agent_id, bool up, bool down)
{
	struct relay *r = pv_xcalloc(1, sizeof(*r));
	r->ss = ss;
	r->host_id = host_id;
	r->agent_id = agent_id;
	r->up = up;
	r->down = down;
	r->connected = true;
	r->up_closed = !up;
	r->down_closed = !down;
	pv_flow_out_init(&r->host_out, PV_FRAME_DEFAULT_WINDOW);
	pv_flow_in_init(&r->host_in, PV_FRAME_DEFAULT_WINDOW);
	return r;
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	pv_agent_t *a = r->ss->s->agent;
	if (a && r->owns_agent && r->agent_id)
		pv_agent_stream_release(a, r->agent_id);
	free(r->ubuf);
	free(r->dbuf);
	free(r);
}

bool relay_done(const struct relay *r)
{
	return r->up_closed && r->down_closed && !r->port_call;
}

/* ---- guest -> host ------------------------------------------------------------------ */

void relay_push_up(struct relay *r)
{
	struct stream_sess *ss = r->ss;
	size_t sent = 0;
	while (r->ulen > sent) {
		uint32_t n = pv_flow_out_sendable(&r->host_out, r->ulen - sent);
		if (!n)
			break;
		stream_send(ss, PV_FRAME_DATA, r->host_id, 0, r->ubuf + sent, n);
		pv_flow_out_sent(&r->host_out, n);
		sent += n;
	}
	if (sent) {
		memmove(r->ubuf, r->ubuf + sent, r->ulen - sent);
		r->ulen -= sent;
		/* Credit goes back to the agent only for bytes passed on. */
		if (r->owns_agent && r->agent_id && ss->s->agent) {
			pv_agent_stream_consume(ss->s->agent, r->agent_id, sent);
			shim_agent_kick(ss->s);
		}
	}
	if (!r->ulen && r->up_eof && !r->up_closed) {
		stream_send(ss, PV_FRAME_CLOSE, r->host_id, 0, NULL, 0);
		r->up_closed = true;
		stream_sess_changed(ss);
	}
}

void relay_queue_up(struct relay *r, const uint8_t *buf, size_t len)
{
	if (r->up_eof || !len)
		return;
	if (r->ulen + len > ATTACH_MAX_BACKLOG) {
		if (!r->dropping)
			pv_warn("attach client too slow, dropping its output", "container=%s stream=%u",
				r->ss->ctr_id, r->host_id);
		r->dropping = true;
		return;
	}
	r->dropping = false;
	r->ubuf = pv_xrealloc(r->ubuf, r->ulen + len);
	memcpy(r->ubuf + r->ulen, buf, len);
	r->ulen += len;
	relay_push_up(r);
}

void relay_up_eof(struct relay *r)
{
	if (r->up_eof)
		return;
	r->up_eof = true;
	relay_push_up(r);
}

static size_t agent_data(pv_agent_t *a, uint32_t stream, const uint8_t *buf, size_t len, void *opaque)
{
	struct relay *r = opaque;
	struct stream_sess *ss = r->ss;
	stream_sess_hold(ss);
	/* Bounded by the agent's credit: it sends no more than we returned. */
	r->ubuf = pv_xrealloc(r->ubuf, r->ulen + len);
	memcpy(r->ubuf + r->ulen, buf, len);
	r->ulen += len;
	relay_push_up(r);
	stream_sess_release(ss);
	return 0; /* credited in relay_push_up */
}

static void agent_closed(pv_agent_t *a, uint32_t stream, bool reset, void *opaque)
{
	struct relay *r = opaque;
	struct stream_sess *ss = r->ss;
	stream_sess_hold(ss);
	if (reset && r->down && !r->down_closed) {
		/* The guest dropped the connection: nothing more can be written to it. */
		free(r->dbuf);
		r->dbuf = NULL;
		r->dlen = 0;
		r->down_closed = true;
	}
	relay_up_eof(r);
	stream_sess_release(ss);
}

static void agent_writable(pv_agent_t *a, uint32_t stream, void *opaque)
{
	struct relay *r = opaque;
	struct stream_sess *ss = r->ss;
	stream_sess_hold(ss);
	relay_push_down(r);
	stream_sess_release(ss);
}

static const struct pv_agent_stream_ops relay_ops = {
	.data = agent_data,
	.closed = agent_closed,
	.writable = agent_writable,
};

int relay_open_agent(struct relay *r, pv_err_t **err)
{
	pv_agent_t *a = r->ss->s->agent;
	r->agent_id = pv_agent_stream_alloc(a);
	if (pv_agent_stream_open(a, r->agent_id, &relay_ops, r, err) < 0) {
		r->agent_id = 0;
		return -1;
	}
	r->owns_agent = true;
	return 0;
}

/* ---- host -> guest ------------------------------------------------------------------ */

void relay_push_down(struct relay *r)
{
	struct stream_sess *ss = r->ss;
	pv_agent_t *a = ss->s->agent;
	if (!r->connected || !r->down || r->down_closed || !a)
		return;
	size_t taken = 0;
	while (r->dlen > taken) {
		ssize_t n = pv_agent_stdin_write(a, r->agent_id, r->dbuf + taken, r->dlen - taken, NULL);
		if (n <= 0)
			break;
		taken += (size_t)n;
	}
	if (taken) {
		memmove(r->dbuf, r->dbuf + taken, r->dlen - taken);
		r->dlen -= taken;
		uint32_t inc = pv_flow_in_consume(&r->host_in, (uint32_t)taken);
		if (inc) {
			uint8_t p[4] = { inc >> 24, inc >> 16, inc >> 8, inc };
			stream_send(ss, PV_FRAME_WINDOW, r->host_id, 0, p, sizeof(p));
		}
	}
	if (!r->dlen && r->down_eof) {
		/* An attach passes the host's EOF on only with stdin_once (others may still attach). */
		if (r->owns_agent || ss->stdin_once)
			pv_agent_stdin_close(a, r->agent_id, NULL);
		r->down_closed = true;
		stream_sess_changed(ss);
	}
	shim_agent_kick(ss->s);
}

void relay_host_data(struct relay *r, const uint8_t *buf, uint32_t len)
{
	if (!r->down || r->down_eof || pv_flow_in_receive(&r->host_in, len) < 0) {
		pv_warn("stream data beyond credit or after close, dropped", "stream=%u len=%u", r->host_id, len);
		return;
	}
	if (r->down_closed) {
		/* The guest side is gone: keep the host's credit flowing. */
		uint32_t inc = pv_flow_in_consume(&r->host_in, len);
		if (inc) {
			uint8_t p[4] = { inc >> 24, inc >> 16, inc >> 8, inc };
			stream_send(r->ss, PV_FRAME_WINDOW, r->host_id, 0, p, sizeof(p));
		}
		return;
	}
	r->dbuf = pv_xrealloc(r->dbuf, r->dlen + len);
	memcpy(r->dbuf + r->dlen, buf, len);
	r->dlen += len;
	relay_push_down(r);
}

void relay_host_window(struct relay *r, uint32_t inc)
{
	if (!r->up || pv_flow_out_grant(&r->host_out, inc) < 0)
		return;
	relay_push_up(r);
}

void relay_host_close(struct relay *r, bool reset)
{
	if (reset) {
		relay_abort(r);
		stream_sess_changed(r->ss);
		return;
	}
	if (!r->down || r->down_eof)
		return;
	r->down_eof = true;
	relay_push_down(r); /* a port stream not connected yet passes it on once it is */
}

void relay_abort(struct relay *r)
{
	pv_agent_t *a = r->ss->s->agent;
	if (a && r->owns_agent && r->agent_id) {
		if (r->down && !r->down_closed)
			pv_agent_stream_reset(a, r->agent_id);
		else
			pv_agent_stream_release(a, r->agent_id);
		r->agent_id = 0;
		shim_agent_kick(r->ss->s);
	}
	free(r->ubuf);
	r->ubuf = NULL;
	r->ulen = 0;
	free(r->dbuf);
	r->dbuf = NULL;
	r->dlen = 0;
	r->up_eof = r->up_closed = true;
	r->down_eof = r->down_closed = true;
}
