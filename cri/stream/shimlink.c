/*
 * A session's connection to the pod's shim: stream_open / stream_wait / stream_port /
 * stream_resize requests, and DATA / WINDOW / CLOSE frames with per-stream credit
 * (proto/shim.proto, "streaming").
 */
#include "internal.h"
#include "cleanup.h"
#include "util.h"

#include "proto/shim.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum req_kind { RQ_OPEN, RQ_WAIT, RQ_PORT, RQ_RESIZE };

struct pending_req {
	uint32_t id;
	enum req_kind kind;
	struct pf *pf;
	struct pending_req *next;
};

int shimlink_open(struct sess *s, pv_err_t **err)
{
	int fd = -1;
	if (s->srv->dial(s->srv->dial_opaque, s->req->pod_id, &fd, err) < 0)
		return -1;
	s->shim_fd = fd;
	pv_frame_reader_init(&s->srd, PV_FRAME_MAX_PAYLOAD);
	pv_frame_writer_init(&s->swr);
	s->next_req = 1;
	s->next_ls = 100; /* port-forward streams; exec/attach use the fixed 1..3 */
	return 0;
}

void shimlink_close(struct sess *s)
{
	for (struct chan *c = s->chans; c; c = c->next)
		c->ls = NULL;
	for (struct pf *pf = s->pfs; pf; pf = pf->next)
		pf->ls = NULL;
	while (s->pending) {
		struct pending_req *p = s->pending;
		s->pending = p->next;
		free(p);
	}
	while (s->ls) {
		struct lstream *l = s->ls;
		s->ls = l->next;
		pvs_buf_free(&l->pend);
		free(l);
	}
	if (s->shim_fd >= 0) {
		close(s->shim_fd);
		pv_frame_reader_free(&s->srd);
		pv_frame_writer_free(&s->swr);
	}
	s->shim_fd = -1;
}

struct lstream *shimlink_stream(struct sess *s, uint32_t id, struct chan *c)
{
	struct lstream *l = pv_xcalloc(1, sizeof(*l));
	l->id = id;
	l->chan = c;
	pv_flow_in_init(&l->in, PV_FRAME_DEFAULT_WINDOW);
	pv_flow_out_init(&l->out, PV_FRAME_DEFAULT_WINDOW);
	l->next = s->ls;
	s->ls = l;
	if (c)
		c->ls = l;
	return l;
}

void shimlink_forget(struct sess *s, struct lstream *l)
{
	for (struct lstream **pp = &s->ls; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			pvs_buf_free(&l->pend);
			free(l);
			return;
		}
	}
}

static struct lstream *find_ls(struct sess *s, uint32_t id)
{
	for (struct lstream *l = s->ls; l; l = l->next)
		if (l->id == id)
			return l;
	return NULL;
}

static void push(struct sess *s, struct lstream *l);

static void send_request(struct sess *s, Podvisor__Shim__Request *req, enum req_kind kind, struct pf *pf)
{
	size_t len = podvisor__shim__request__get_packed_size(req);
	cleanup_free uint8_t *buf = pv_xmalloc(len ? len : 1);
	podvisor__shim__request__pack(req, buf);
	struct pending_req *p = pv_xcalloc(1, sizeof(*p));
	p->id = s->next_req++;
	p->kind = kind;
	p->pf = pf;
	p->next = s->pending;
	s->pending = p;
	pv_frame_writer_put(&s->swr, PV_FRAME_REQUEST, p->id, 0, buf, len);
}

void shimlink_send_open(struct sess *s)
{
	/* exec/attach: the CRI handler packed the request; port-forward: an empty one. */
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__StreamOpenRequest *open = NULL;
	Podvisor__Shim__StreamPortForward pf = PODVISOR__SHIM__STREAM_PORT_FORWARD__INIT;
	Podvisor__Shim__StreamOpenRequest pfo = PODVISOR__SHIM__STREAM_OPEN_REQUEST__INIT;
	if (s->req->kind == CRI_STREAM_PORTFORWARD) {
		pfo.kind_case = PODVISOR__SHIM__STREAM_OPEN_REQUEST__KIND_PORT_FORWARD;
		pfo.port_forward = &pf;
		req.stream_open = &pfo;
	} else {
		open = podvisor__shim__stream_open_request__unpack(NULL, s->req->open_len, s->req->open_req);
		if (!open) {
			sess_fail(s, "internal error: bad stream request");
			return;
		}
		req.stream_open = open;
	}
	/* A terminal exec starts at the size the client already sent. */
	Podvisor__Agent__ConsoleSize size = PODVISOR__AGENT__CONSOLE_SIZE__INIT;
	if (open && open->kind_case == PODVISOR__SHIM__STREAM_OPEN_REQUEST__KIND_EXEC && open->exec->process &&
	    open->exec->process->terminal && s->resize_cols) {
		size.cols = s->resize_cols;
		size.rows = s->resize_rows;
		open->exec->process->console_size = &size;
	}
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_STREAM_OPEN;
	send_request(s, &req, RQ_OPEN, NULL);
	if (open) {
		if (open->kind_case == PODVISOR__SHIM__STREAM_OPEN_REQUEST__KIND_EXEC && open->exec->process &&
		    open->exec->process->console_size == &size)
			open->exec->process->console_size = NULL; /* ours, on the stack */
		podvisor__shim__stream_open_request__free_unpacked(open, NULL);
	}
	s->open_sent = true;
	for (struct lstream *l = s->ls; l; l = l->next)
		push(s, l);
}

void shimlink_send_wait(struct sess *s)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__StreamWaitRequest w = PODVISOR__SHIM__STREAM_WAIT_REQUEST__INIT;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_STREAM_WAIT;
	req.stream_wait = &w;
	send_request(s, &req, RQ_WAIT, NULL);
}

void shimlink_send_resize(struct sess *s, uint16_t cols, uint16_t rows)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__StreamResizeRequest r = PODVISOR__SHIM__STREAM_RESIZE_REQUEST__INIT;
	r.rows = rows;
	r.cols = cols;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_STREAM_RESIZE;
	req.stream_resize = &r;
	send_request(s, &req, RQ_RESIZE, NULL);
}

void shimlink_send_port(struct sess *s, struct pf *pf)
{
	pf->ls = shimlink_stream(s, s->next_ls++, pf->data);
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__StreamPortRequest p = PODVISOR__SHIM__STREAM_PORT_REQUEST__INIT;
	p.port = (uint32_t)pf->port;
	p.stream = pf->ls->id;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_STREAM_PORT;
	req.stream_port = &p;
	pf->state = PF_CONNECTING;
	send_request(s, &req, RQ_PORT, pf);
}

/* Send what credit allows; the CLOSE once everything is out. */
static void push(struct sess *s, struct lstream *l)
{
	if (!s->open_sent)
		return; /* the shim learns of the session with stream_open; frames wait for it */
	while (pvs_buf_size(&l->pend) && !l->closed_out) {
		uint32_t n = pv_flow_out_sendable(&l->out, pvs_buf_size(&l->pend));
		if (!n)
			break;
		pv_frame_writer_put(&s->swr, PV_FRAME_DATA, l->id, 0, pvs_buf_data(&l->pend), n);
		pv_flow_out_sent(&l->out, n);
		pvs_buf_drop(&l->pend, n);
	}
	if (l->eof_pending && !pvs_buf_size(&l->pend) && !l->closed_out) {
		pv_frame_writer_put(&s->swr, PV_FRAME_CLOSE, l->id, 0, NULL, 0);
		l->closed_out = true;
	}
}

void shimlink_write(struct sess *s, struct lstream *l, const uint8_t *buf, size_t len)
{
	if (l->closed_out || l->eof_pending)
		return;
	pvs_buf_put(&l->pend, buf, len);
	push(s, l);
}

void shimlink_eof(struct sess *s, struct lstream *l, bool reset)
{
	if (l->closed_out)
		return;
	if (reset) {
		pvs_buf_free(&l->pend);
		pv_frame_writer_put(&s->swr, PV_FRAME_CLOSE, l->id, PV_FRAME_F_RESET, NULL, 0);
		l->closed_out = true;
		return;
	}
	l->eof_pending = true;
	push(s, l);
}

size_t shimlink_backlog(const struct sess *s)
{
	size_t n = 0;
	for (struct lstream *l = s->ls; l; l = l->next)
		n += pvs_buf_size(&l->pend);
	return n;
}

static void on_response(struct sess *s, uint32_t id, const uint8_t *payload, uint32_t len)
{
	struct pending_req **pp = &s->pending;
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	struct pending_req *p = *pp;
	if (!p)
		return;
	*pp = p->next;
	Podvisor__Shim__Response *r = podvisor__shim__response__unpack(NULL, len, payload);
	int status = r ? (int)r->status : PV_INTERNAL;
	const char *msg = r ? r->message : "cannot decode the shim's response";
	switch (p->kind) {
	case RQ_OPEN:
		k8s_shim_open_reply(s, status, msg);
		break;
	case RQ_WAIT:
		k8s_shim_wait_reply(s, status, msg, r && r->exec ? r->exec->exit_code : 255);
		break;
	case RQ_PORT:
		k8s_shim_port_reply(s, p->pf, status, msg);
		break;
	case RQ_RESIZE:
		break; /* a resize that did not take is not worth ending the session for */
	}
	if (r)
		podvisor__shim__response__free_unpacked(r, NULL);
	free(p);
}

static void on_frame(struct sess *s, const struct pv_frame_hdr *h, const uint8_t *payload)
{
	struct lstream *l = h->type == PV_FRAME_RESPONSE ? NULL : find_ls(s, h->stream);
	uint32_t inc;
	switch (h->type) {
	case PV_FRAME_RESPONSE:
		on_response(s, h->stream, payload, h->len);
		break;
	case PV_FRAME_DATA:
		if (!l || pv_flow_in_receive(&l->in, h->len) < 0)
			break;
		if (l->chan && !l->chan->fin_out && !s->client_gone)
			s->x->data(s, l->chan, payload, h->len);
		/* Queued for the client: the session stops reading the shim while that queue is long. */
		inc = pv_flow_in_consume(&l->in, h->len);
		if (inc)
			pv_frame_writer_put_window(&s->swr, l->id, inc);
		break;
	case PV_FRAME_WINDOW:
		if (l && pv_frame_parse_window(payload, h->len, &inc) == 0 && pv_flow_out_grant(&l->out, inc) == 0)
			push(s, l);
		break;
	case PV_FRAME_CLOSE:
		if (l && !l->closed_in) {
			l->closed_in = true;
			k8s_shim_closed(s, l);
		}
		break;
	default:
		break;
	}
}

int shimlink_on_readable(struct sess *s)
{
	int n = pv_frame_reader_read_fd(&s->srd, s->shim_fd);
	if (n == -EAGAIN || n == -EINTR)
		return 0;
	if (n <= 0)
		return -EPIPE;
	for (;;) {
		struct pv_frame_hdr h;
		const uint8_t *payload;
		pv_err_t *e = NULL;
		int r = pv_frame_reader_next(&s->srd, &h, &payload, &e);
		pv_err_free(e);
		if (r == 0)
			break;
		if (r > 0)
			on_frame(s, &h, payload);
	}
	return 0;
}

int shimlink_flush(struct sess *s)
{
	if (s->shim_fd < 0)
		return 0;
	return pv_frame_writer_flush(&s->swr, s->shim_fd);
}
