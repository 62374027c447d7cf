/*
 * The SPDY/3.1 transport: the client opens one SPDY stream per role (headers
 * "streamType", and for port-forward "port" and "requestID"); every stream is answered
 * with a SYN_REPLY at once, as kubelet's server does. SPDY's own windows are not
 * enforced: spdystream, which every Kubernetes client uses, neither sends nor honours
 * WINDOW_UPDATE; TCP carries the back-pressure.
 */
#include "internal.h"
#include "spdy.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>

struct spdy_x {
	struct spdy_codec codec;
	uint32_t last_stream; /* highest stream id the client opened */
};

int spdy_xport_init(struct sess *s, pv_err_t **err)
{
	struct spdy_x *x = pv_xcalloc(1, sizeof(*x));
	if (spdy_codec_init(&x->codec, err) < 0) {
		free(x);
		return -1;
	}
	s->xd = x;
	return 0;
}

static void syn_stream(struct sess *s, struct spdy_x *x, struct spdy_frame *f)
{
	if (f->stream <= x->last_stream || !(f->stream & 1) || sess_chan_find(s, f->stream)) {
		spdy_put_rst_stream(&s->out, f->stream, SPDY_PROTOCOL_ERROR);
		return;
	}
	x->last_stream = f->stream;
	const char *type = spdy_header_get(f, "streamtype");
	enum chan_role role = k8s_role(type);
	bool pf = s->req->kind == CRI_STREAM_PORTFORWARD;
	if (pf && role == CH_ERROR)
		role = CH_PF_ERROR;
	if (role == CH_UNKNOWN || (pf && role != CH_PF_DATA && role != CH_PF_ERROR) || (!pf && role == CH_PF_DATA)) {
		spdy_put_rst_stream(&s->out, f->stream, SPDY_REFUSED_STREAM);
		return;
	}
	struct chan *c = sess_chan_new(s, role, f->stream);
	pv_err_t *e = NULL;
	if (spdy_put_syn_reply(&x->codec, &s->out, f->stream, 0, NULL, 0, &e) < 0) {
		pv_err_free(e);
		return;
	}
	if (pf)
		k8s_pf_chan_opened(s, c, spdy_header_get(f, "port"), spdy_header_get(f, "requestid"));
	else
		k8s_chan_opened(s, c);
	if (f->flags & SPDY_FLAG_FIN)
		k8s_client_fin(s, c, false);
}

static int handle(struct sess *s, struct spdy_x *x, struct spdy_frame *f)
{
	struct chan *c;
	switch (f->type) {
	case SPDY_DATA:
		c = sess_chan_find(s, f->stream);
		if (!c || c->fin_in)
			break;
		if (f->len)
			k8s_client_data(s, c, f->data, f->len);
		if (f->flags & SPDY_FLAG_FIN)
			k8s_client_fin(s, c, false);
		break;
	case SPDY_SYN_STREAM:
		syn_stream(s, x, f);
		break;
	case SPDY_RST_STREAM:
		c = sess_chan_find(s, f->stream);
		if (c)
			k8s_client_fin(s, c, true);
		break;
	case SPDY_PING:
		if (f->value & 1) /* the client's: echo it (ours would be even) */
			spdy_put_ping(&s->out, f->value);
		break;
	case SPDY_GOAWAY:
		s->client_gone = true;
		break;
	default:
		break; /* SETTINGS, WINDOW_UPDATE, HEADERS, unknown: nothing to do */
	}
	return 0;
}

static int spdy_parse(struct sess *s)
{
	struct spdy_x *x = s->xd;
	while (pvs_buf_size(&s->in) && !s->client_gone) {
		struct spdy_frame f;
		pv_err_t *e = NULL;
		ssize_t n = spdy_decode(&x->codec, pvs_buf_data(&s->in), pvs_buf_size(&s->in), &f, &e);
		if (n == 0)
			break;
		if (n < 0) {
			s->error = s->error ? s->error : pv_xstrdup(e->msg);
			pv_err_free(e);
			spdy_put_goaway(&s->out, x->last_stream, SPDY_PROTOCOL_ERROR);
			return -EPROTO;
		}
		handle(s, x, &f);
		spdy_frame_clear(&f);
		pvs_buf_drop(&s->in, (size_t)n);
	}
	return 0;
}

static void spdy_data(struct sess *s, struct chan *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		size_t n = len > SPDY_MAX_DATA ? SPDY_MAX_DATA : len;
		spdy_put_data(&s->out, c->id, 0, p, n);
		p += n;
		len -= n;
	}
}

static void spdy_fin(struct sess *s, struct chan *c)
{
	if (c->fin_out)
		return;
	spdy_put_data(&s->out, c->id, SPDY_FLAG_FIN, NULL, 0);
	c->fin_out = true;
}

static void spdy_ready(struct sess *s)
{
	(void)s;
}

static void spdy_finish(struct sess *s)
{
	struct spdy_x *x = s->xd;
	spdy_put_goaway(&s->out, x->last_stream, 0);
}

static void spdy_free(struct sess *s)
{
	struct spdy_x *x = s->xd;
	if (!x)
		return;
	spdy_codec_free(&x->codec);
	free(x);
	s->xd = NULL;
}

const struct xport_ops spdy_xport = {
	.parse = spdy_parse,
	.data = spdy_data,
	.fin = spdy_fin,
	.ready = spdy_ready,
	.finish = spdy_finish,
	.free = spdy_free,
};
