/*
 * The Kubernetes channel protocols over either transport: which streams an exec/attach
 * or a port-forward has, what each carries, what the shim is asked, and what goes on the
 * error stream at the end (kubelet's pkg/kubelet/cri/streaming behaviour).
 */
#include "internal.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RESIZE_MAX_PENDING 4096

enum chan_role k8s_role(const char *t)
{
	static const struct {
		const char *name;
		enum chan_role role;
	} roles[] = { { "stdin", CH_STDIN },   { "stdout", CH_STDOUT }, { "stderr", CH_STDERR },
		      { "error", CH_ERROR },   { "resize", CH_RESIZE }, { "data", CH_PF_DATA } };
	for (size_t i = 0; t && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (!strcasecmp(t, roles[i].name))
			return roles[i].role;
	return CH_UNKNOWN;
}

static struct chan *chan_of(struct sess *s, enum chan_role role)
{
	for (struct chan *c = s->chans; c; c = c->next)
		if (c->role == role)
			return c;
	return NULL;
}

/* How long a terminal exec waits for the client's first terminal size. */
#define SIZE_WAIT_NS (1000LL * 1000 * 1000)

/* ---- exec / attach ------------------------------------------------------------------------- */

static bool streams_complete(struct sess *s)
{
	const struct stream_req *r = s->req;
	if (!chan_of(s, CH_ERROR) && s->proto != K8S_V1)
		return false;
	if (r->stdin && !chan_of(s, CH_STDIN))
		return false;
	if (r->stdout && !chan_of(s, CH_STDOUT))
		return false;
	if (r->stderr && !r->tty && !chan_of(s, CH_STDERR))
		return false;
	if (r->tty && s->proto >= K8S_V3 && !chan_of(s, CH_RESIZE))
		return false;
	return true;
}

static struct pf *pf_find(struct sess *s, uint32_t request_id)
{
	for (struct pf *p = s->pfs; p; p = p->next)
		if (p->request_id == request_id && p->state != PF_DONE)
			return p;
	return NULL;
}

static void pf_fail(struct sess *s, struct pf *pf, const char *why)
{
	if (pf->error && !pf->error->fin_out) {
		cleanup_free char *msg = k8s_port_error(s->req->pod_id, pf->port, why);
		s->x->data(s, pf->error, msg, strlen(msg));
		s->x->fin(s, pf->error);
	}
	if (pf->data && !pf->data->fin_out)
		s->x->fin(s, pf->data);
	if (pf->ls)
		pf->ls->closed_out = true;
	pf->state = PF_DONE;
}

/* SPDY: a port-forward stream ("data" or "error", with "port" and "requestid"). */
static void pf_chan_opened(struct sess *s, struct chan *c, int32_t port, uint32_t request_id)
{
	struct pf *pf = pf_find(s, request_id);
	if (!pf) {
		pf = pv_xcalloc(1, sizeof(*pf));
		pf->request_id = request_id;
		pf->port = port;
		pf->next = s->pfs;
		s->pfs = pf;
	}
	c->pf = pf;
	if (c->role == CH_PF_DATA)
		pf->data = c;
	else
		pf->error = c;
	if (!pf->data || !pf->error || pf->state != PF_WAIT)
		return;
	if (pf->port <= 0 || pf->port > 65535) {
		pf_fail(s, pf, "invalid port");
		return;
	}
	if (s->phase == PH_RUNNING || s->phase == PH_OPENING)
		shimlink_send_port(s, pf);
}

/* The shim stream of an exec/attach channel, made when the channel appears: the client may
 * send stdin (even its EOF) before its other streams are there; it waits in the stream. */
static void bind_stream(struct sess *s, struct chan *c)
{
	const struct stream_req *r = s->req;
	uint32_t id = 0;
	if (c->role == CH_STDIN && r->stdin)
		id = CRI_STREAM_ID_STDIN;
	else if (c->role == CH_STDOUT && r->stdout)
		id = CRI_STREAM_ID_STDOUT;
	else if (c->role == CH_STDERR && r->stderr && !r->tty)
		id = CRI_STREAM_ID_STDERR;
	if (!id || c->ls)
		return;
	for (struct chan *o = s->chans; o; o = o->next)
		if (o != c && o->ls && o->ls->id == id)
			return; /* a second stream of the same role: ignored */
	shimlink_stream(s, id, c);
}

void k8s_chan_opened(struct sess *s, struct chan *c)
{
	if (s->req->kind == CRI_STREAM_PORTFORWARD)
		return;
	bind_stream(s, c);
	if (s->phase == PH_STREAMS && streams_complete(s))
		k8s_streams_ready(s);
}

void k8s_pf_chan_opened(struct sess *s, struct chan *c, const char *port, const char *request_id)
{
	char *end = NULL;
	long p = port ? strtol(port, &end, 10) : -1;
	if (!port || !*port || *end)
		p = -1;
	/* Clients older than request ids: one pair at a time, keyed by the port. */
	uint32_t rid = request_id && *request_id ? (uint32_t)strtoul(request_id, NULL, 10) : (uint32_t)p;
	pf_chan_opened(s, c, (int32_t)p, rid);
}

void k8s_streams_ready(struct sess *s)
{
	if (s->shim_fd < 0) {
		sess_fail(s, "%s", s->error ? s->error : "cannot reach the pod's shim");
		return;
	}
	/* A terminal exec starts at the client's size: clients send it right behind their
	 * streams, so wait for it a little (a process that asks at once would see 0x0). */
	if (s->req->kind == CRI_STREAM_EXEC && s->req->tty && chan_of(s, CH_RESIZE) && !s->resize_cols &&
	    !s->size_wait) {
		s->size_wait = true;
		int64_t until = pv_now_monotonic_ns() + SIZE_WAIT_NS;
		if (until < s->deadline_ns)
			s->deadline_ns = until;
		return;
	}
	s->phase = PH_OPENING;
	if (s->req->kind != CRI_STREAM_PORTFORWARD)
		for (struct chan *c = s->chans; c; c = c->next)
			bind_stream(s, c);
	shimlink_send_open(s);
	/* Port-forward: connections whose streams are all there go right behind the open. */
	for (struct pf *pf = s->pfs; pf; pf = pf->next)
		if (pf->state == PF_WAIT && pf->data && pf->error)
			shimlink_send_port(s, pf);
}

void k8s_shim_open_reply(struct sess *s, int status, const char *msg)
{
	if (status) {
		sess_fail(s, "%s", msg && *msg ? msg : "the shim refused the session");
		return;
	}
	s->phase = PH_RUNNING;
	s->x->ready(s);
	if (s->resize_cols)
		shimlink_send_resize(s, s->resize_cols, s->resize_rows);
	if (s->req->kind != CRI_STREAM_PORTFORWARD)
		shimlink_send_wait(s);
}

void k8s_shim_wait_reply(struct sess *s, int status, const char *msg, int32_t exit_code)
{
	if (status) {
		sess_fail(s, "%s", msg && *msg ? msg : "lost the process");
		return;
	}
	s->exited = true;
	s->exit_code = exit_code;
	sess_finish(s);
}

static bool all_ports_done(const struct sess *s)
{
	for (struct pf *p = s->pfs; p; p = p->next)
		if (p->state != PF_DONE)
			return false;
	return true;
}

void k8s_shim_port_reply(struct sess *s, struct pf *pf, int status, const char *msg)
{
	if (pf->state != PF_CONNECTING)
		return;
	if (status) {
		pf_fail(s, pf, msg && *msg ? msg : "connection refused");
	} else {
		pf->state = PF_OPEN;
		return;
	}
	/* WebSocket port-forward: the session is its fixed ports; it ends with the last. */
	if (s->x == &ws_xport && all_ports_done(s))
		sess_finish(s);
}

void k8s_shim_closed(struct sess *s, struct lstream *ls)
{
	if (s->req->kind != CRI_STREAM_PORTFORWARD) {
		if (ls->chan && !ls->chan->fin_out)
			s->x->fin(s, ls->chan);
		return;
	}
	for (struct pf *pf = s->pfs; pf; pf = pf->next) {
		if (pf->ls != ls || pf->state == PF_DONE)
			continue;
		/* The server in the pod finished: both streams end, as kubelet ends them. */
		if (pf->data && !pf->data->fin_out)
			s->x->fin(s, pf->data);
		if (pf->error && !pf->error->fin_out)
			s->x->fin(s, pf->error);
		shimlink_eof(s, ls, false);
		pf->state = PF_DONE;
	}
	if (s->x == &ws_xport && all_ports_done(s))
		sess_finish(s);
}

/* ---- client data ------------------------------------------------------------------------------- */

int k8s_parse_resize(struct pvs_buf *acc, const uint8_t *buf, size_t len, uint16_t *cols, uint16_t *rows)
{
	pvs_buf_put(acc, buf, len);
	if (pvs_buf_size(acc) > RESIZE_MAX_PENDING) {
		pvs_buf_free(acc);
		return -EMSGSIZE;
	}
	/* Skip whitespace between objects. */
	while (pvs_buf_size(acc) && strchr(" \t\r\n", *pvs_buf_data(acc)))
		pvs_buf_drop(acc, 1);
	if (!pvs_buf_size(acc))
		return 0;
	json_error_t e;
	json_t *j = json_loadb((const char *)pvs_buf_data(acc), pvs_buf_size(acc), JSON_DISABLE_EOF_CHECK, &e);
	if (!j) {
		if (e.position >= (int)pvs_buf_size(acc))
			return 0; /* not all there yet */
		pvs_buf_free(acc);
		return -EBADMSG;
	}
	pvs_buf_drop(acc, (size_t)e.position);
	json_int_t w = json_integer_value(json_object_get(j, "Width"));
	json_int_t h = json_integer_value(json_object_get(j, "Height"));
	json_decref(j);
	if (w <= 0 || h <= 0 || w > 65535 || h > 65535)
		return -EINVAL;
	*cols = (uint16_t)w;
	*rows = (uint16_t)h;
	return 1;
}

void k8s_client_data(struct sess *s, struct chan *c, const uint8_t *buf, size_t len)
{
	switch (c->role) {
	case CH_STDIN:
	case CH_PF_DATA:
		if (c->ls && (!c->pf || c->pf->state != PF_DONE))
			shimlink_write(s, c->ls, buf, len);
		break;
	case CH_RESIZE: {
		uint16_t cols, rows;
		int r;
		while ((r = k8s_parse_resize(&c->acc, buf, len, &cols, &rows)) != 0) {
			if (r > 0 && s->phase == PH_RUNNING) {
				shimlink_send_resize(s, cols, rows);
			} else if (r > 0) {
				/* The process is not there yet: the last size is sent once it is. */
				s->resize_cols = cols;
				s->resize_rows = rows;
				if (s->phase == PH_STREAMS && s->size_wait)
					k8s_streams_ready(s);
			}
			if (r == -EBADMSG || r == -EMSGSIZE)
				break;
			buf = NULL;
			len = 0;
		}
		break;
	}
	default:
		break; /* nothing is read from output or error streams */
	}
}

void k8s_client_fin(struct sess *s, struct chan *c, bool reset)
{
	c->fin_in = true;
	if (reset)
		c->fin_out = true; /* a reset stream takes no more data */
	if ((c->role == CH_STDIN || c->role == CH_PF_DATA) && c->ls)
		shimlink_eof(s, c->ls, reset);
	if (reset && c->pf && c->pf->state != PF_DONE) {
		if (c->pf->ls)
			shimlink_eof(s, c->pf->ls, true);
		c->pf->state = PF_DONE;
	}
}

static void chan_unlink(struct sess *s, struct chan *c)
{
	for (struct chan **pp = &s->chans; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			pvs_buf_free(&c->acc);
			free(c);
			return;
		}
	}
}

void k8s_reap(struct sess *s)
{
	/* SPDY port-forward sessions live long and see many connections: drop finished ones. */
	if (s->x != &spdy_xport || s->req->kind != CRI_STREAM_PORTFORWARD)
		return;
	struct pf **pp = &s->pfs;
	while (*pp) {
		struct pf *pf = *pp;
		bool done = pf->state == PF_DONE && pf->data && pf->error && pf->data->fin_in && pf->data->fin_out &&
			    pf->error->fin_out && (!pf->ls || pf->ls->closed_out);
		if (!done) {
			pp = &pf->next;
			continue;
		}
		*pp = pf->next;
		if (pf->ls)
			shimlink_forget(s, pf->ls);
		chan_unlink(s, pf->data);
		chan_unlink(s, pf->error);
		free(pf);
	}
}

/* ---- the error stream ------------------------------------------------------------------------ */

static char *status_json(const char *status, const char *message, const char *reason, json_t *causes, int code)
{
	json_t *j = json_pack("{s:{}, s:s}", "metadata", "status", status);
	if (message)
		json_object_set_new(j, "message", json_string(message));
	if (reason)
		json_object_set_new(j, "reason", json_string(reason));
	if (causes)
		json_object_set_new(j, "details", json_pack("{s:o}", "causes", causes));
	if (code)
		json_object_set_new(j, "code", json_integer(code));
	char *out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}

char *k8s_status_text(const struct sess *s)
{
	bool nonzero = !s->failed && s->exited && s->exit_code != 0 && s->req->kind == CRI_STREAM_EXEC;
	cleanup_free char *msg = NULL;
	if (s->failed)
		msg = pv_xstrdup(s->error ? s->error : "stream failed");
	else if (nonzero)
		msg = pv_xasprintf("command terminated with non-zero exit code: exit status %d", s->exit_code);
	if (s->proto < K8S_V4)
		return msg ? steal_pointer(&msg) : NULL; /* v1..v3: the error text, nothing on success */
	if (!msg)
		return status_json("Success", NULL, NULL, NULL, 0);
	if (nonzero) {
		char code[16];
		snprintf(code, sizeof(code), "%d", s->exit_code);
		json_t *causes = json_pack("[{s:s, s:s}]", "reason", "ExitCode", "message", code);
		return status_json("Failure", msg, "NonZeroExitCode", causes, 0);
	}
	json_t *causes = json_pack("[{s:s}]", "message", msg);
	return status_json("Failure", msg, "InternalError", causes, 500);
}

char *k8s_port_error(const char *pod_id, int32_t port, const char *why)
{
	return pv_xasprintf("error forwarding port %d to pod %s, uid : failed to connect to localhost:%d inside "
			    "namespace \"%s\", %s",
			    port, pod_id, port, pod_id, why);
}
