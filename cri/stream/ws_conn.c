/*
 * The WebSocket transport of the channel protocols: every message starts with its
 * channel number (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; port-forward: 2i data
 * and 2i+1 error of the i-th port), as a byte, or as a digit followed by base64 in the
 * base64 variants. v5 adds the client's close signal: 255 then the channel it closes.
 */
#include "internal.h"
#include "ws.h"
#include "util.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define WS_MAX_MESSAGE (8u << 20)
#define WS_STREAM_CLOSE 255

struct ws_x {
	struct pvs_buf msg; /* a fragmented message being put together */
	uint8_t msg_op;
	bool in_msg;
};

int ws_xport_init(struct sess *s, pv_err_t **err)
{
	s->xd = pv_xcalloc(1, sizeof(struct ws_x));
	const struct stream_req *r = s->req;
	if (r->kind == CRI_STREAM_PORTFORWARD) {
		for (size_t i = 0; i < r->nports; i++) {
			struct pf *pf = pv_xcalloc(1, sizeof(*pf));
			pf->port = r->ports[i];
			pf->request_id = (uint32_t)i;
			pf->data = sess_chan_new(s, CH_PF_DATA, (uint32_t)(2 * i));
			pf->error = sess_chan_new(s, CH_PF_ERROR, (uint32_t)(2 * i + 1));
			pf->data->pf = pf->error->pf = pf;
			pf->next = s->pfs;
			s->pfs = pf;
		}
		return 0;
	}
	if (r->stdin)
		sess_chan_new(s, CH_STDIN, 0);
	if (r->stdout)
		sess_chan_new(s, CH_STDOUT, 1);
	if (r->stderr && !r->tty)
		sess_chan_new(s, CH_STDERR, 2);
	sess_chan_new(s, CH_ERROR, 3);
	if (r->tty)
		sess_chan_new(s, CH_RESIZE, 4);
	return 0;
}

static void on_message(struct sess *s, uint8_t op, const uint8_t *p, size_t len)
{
	if (!len)
		return;
	if (op == WS_TEXT && s->base64) {
		uint8_t ch = (uint8_t)(p[0] - '0');
		size_t blen = len - 1;
		uint8_t *raw = pv_xmalloc(blen / 4 * 3 + 3);
		int n = blen ? EVP_DecodeBlock(raw, p + 1, (int)blen) : 0;
		if (n >= 0) {
			/* EVP_DecodeBlock counts padding as data: take it off. */
			for (size_t i = blen; i > 1 && p[i] == '='; i--)
				n--;
			struct chan *c = sess_chan_find(s, ch);
			if (c && n > 0)
				k8s_client_data(s, c, raw, (size_t)n);
		}
		free(raw);
		return;
	}
	if (op != WS_BINARY)
		return;
	if (p[0] == WS_STREAM_CLOSE && s->proto >= K8S_V5) {
		struct chan *c = len == 2 ? sess_chan_find(s, p[1]) : NULL;
		if (c && !c->fin_in)
			k8s_client_fin(s, c, false);
		return;
	}
	struct chan *c = sess_chan_find(s, p[0]);
	if (c && !c->fin_in && len > 1)
		k8s_client_data(s, c, p + 1, len - 1);
}

static int ws_parse(struct sess *s)
{
	struct ws_x *x = s->xd;
	while (pvs_buf_size(&s->in) && !s->client_gone) {
		struct ws_frame f;
		pv_err_t *e = NULL;
		ssize_t n = ws_decode(s->in.p + s->in.off, pvs_buf_size(&s->in), WS_MAX_MESSAGE, &f, &e);
		if (n == 0)
			break;
		if (n < 0) {
			ws_put_close(&s->out, n == -EMSGSIZE ? WS_CLOSE_TOO_BIG : WS_CLOSE_PROTOCOL, e->msg);
			pv_err_free(e);
			return -EPROTO;
		}
		switch (f.opcode) {
		case WS_PING:
			ws_put_frame(&s->out, WS_PONG, f.payload, f.len);
			break;
		case WS_PONG:
			break;
		case WS_CLOSE:
			ws_put_close(&s->out, WS_CLOSE_NORMAL, NULL);
			s->client_gone = true;
			break;
		default:
			if ((f.opcode == WS_CONT) != x->in_msg || pvs_buf_size(&x->msg) + f.len > WS_MAX_MESSAGE) {
				ws_put_close(&s->out, WS_CLOSE_PROTOCOL, "bad fragmentation");
				return -EPROTO;
			}
			if (f.opcode != WS_CONT)
				x->msg_op = f.opcode;
			if (f.fin && !x->in_msg) {
				on_message(s, f.opcode, f.payload, f.len);
			} else {
				pvs_buf_put(&x->msg, f.payload, f.len);
				x->in_msg = !f.fin;
				if (f.fin) {
					on_message(s, x->msg_op, pvs_buf_data(&x->msg), pvs_buf_size(&x->msg));
					pvs_buf_free(&x->msg);
				}
			}
		}
		pvs_buf_drop(&s->in, (size_t)n);
	}
	return 0;
}

static void ws_send(struct sess *s, uint8_t ch, const void *buf, size_t len)
{
	if (s->base64) {
		char *txt = pv_xmalloc(2 + 4 * ((len + 2) / 3) + 1);
		txt[0] = (char)('0' + ch);
		int n = EVP_EncodeBlock((unsigned char *)txt + 1, buf, (int)len);
		ws_put_frame(&s->out, WS_TEXT, txt, 1 + (size_t)n);
		free(txt);
		return;
	}
	uint8_t *m = pv_xmalloc(len + 1);
	m[0] = ch;
	if (len)
		memcpy(m + 1, buf, len);
	ws_put_frame(&s->out, WS_BINARY, m, len + 1);
	free(m);
}

static void ws_data(struct sess *s, struct chan *c, const void *buf, size_t len)
{
	if (len)
		ws_send(s, (uint8_t)c->id, buf, len);
}

static void ws_fin(struct sess *s, struct chan *c)
{
	c->fin_out = true; /* the channel protocols have no end-of-stream from the server */
}

static void ws_ready(struct sess *s)
{
	if (s->req->kind == CRI_STREAM_PORTFORWARD) {
		/* Each channel starts with its port, little-endian (kubelet's wsstream port-forward). */
		for (struct pf *pf = s->pfs; pf; pf = pf->next) {
			uint8_t p[2] = { (uint8_t)(pf->port & 0xff), (uint8_t)(pf->port >> 8) };
			ws_send(s, (uint8_t)pf->data->id, p, 2);
			ws_send(s, (uint8_t)pf->error->id, p, 2);
		}
		return;
	}
	/* An empty message on the first output channel tells the client the session is up. */
	const struct stream_req *r = s->req;
	ws_send(s, r->stdout ? 1 : (r->stderr && !r->tty) ? 2 : 3, NULL, 0);
}

static void ws_finish(struct sess *s)
{
	ws_put_close(&s->out, WS_CLOSE_NORMAL, NULL);
}

static void ws_free(struct sess *s)
{
	struct ws_x *x = s->xd;
	if (!x)
		return;
	pvs_buf_free(&x->msg);
	free(x);
	s->xd = NULL;
}

const struct xport_ops ws_xport = {
	.parse = ws_parse,
	.data = ws_data,
	.fin = ws_fin,
	.ready = ws_ready,
	.finish = ws_finish,
	.free = ws_free,
};
