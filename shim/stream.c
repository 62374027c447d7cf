/*
 * Streaming sessions: Exec, Attach and PortForward of the CRI streaming server, relayed
 * between one control connection of podvisord's and the agent (docs/shim.md, Streaming).
 */
#include "stream.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static struct stream_sess *g_sessions;

struct sess_op {
	struct stream_sess *ss;
	struct shim_call *call;
	struct relay *relay;
};

static void reply_err(struct shim_call *call, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_err(struct shim_call *call, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pv_err_t e = { .status = status, .msg = pv_xvasprintf(fmt, ap) };
	va_end(ap);
	shim_call_error(call, &e);
	free(e.msg);
}

/* exec/attach: the three fixed relays (in fixed[]); port-forward: its connections. */
static struct relay **sess_relays(struct stream_sess *ss, struct relay *fixed[3], size_t *n)
{
	if (ss->kind == STREAM_PORTFWD) {
		*n = ss->nports;
		return ss->ports;
	}
	fixed[0] = ss->in;
	fixed[1] = ss->out;
	fixed[2] = ss->err;
	*n = 3;
	return fixed;
}

void stream_sess_hold(struct stream_sess *ss)
{
	ss->refs++;
}

void stream_sess_release(struct stream_sess *ss)
{
	if (--ss->refs > 0)
		return;
	relay_free(ss->in);
	relay_free(ss->out);
	relay_free(ss->err);
	for (size_t i = 0; i < ss->nports; i++)
		relay_free(ss->ports[i]);
	free(ss->ports);
	if (ss->client)
		shim_ctl_client_unref(ss->client);
	free(ss->ctr_id);
	free(ss->exec_id);
	free(ss);
}

static struct stream_sess *sess_new(struct shim *s, struct shim_call *call, enum stream_kind kind, const char *ctr_id)
{
	struct stream_sess *ss = pv_xcalloc(1, sizeof(*ss));
	ss->s = s;
	ss->kind = kind;
	ss->refs = 1;
	ss->ctr_id = pv_xstrdup(ctr_id ? ctr_id : "");
	ss->exec_id = pv_xstrdup("");
	ss->client = shim_call_client(call);
	shim_ctl_client_ref(ss->client);
	shim_ctl_client_bind(ss->client, ss);
	ss->next = g_sessions;
	g_sessions = ss;
	return ss;
}

/* Out of the list and off the connection; freed once the last callback has run. */
static void sess_end(struct stream_sess *ss)
{
	for (struct stream_sess **pp = &g_sessions; *pp; pp = &(*pp)->next) {
		if (*pp == ss) {
			*pp = ss->next;
			break;
		}
	}
	ss->gone = true;
	if (ss->client)
		shim_ctl_client_bind(ss->client, NULL);
	stream_sess_release(ss);
}

void stream_send(struct stream_sess *ss, uint8_t type, uint32_t id, uint8_t flags, const void *buf, size_t len)
{
	if (!ss->gone && ss->client)
		shim_ctl_send(ss->client, type, id, flags, buf, len);
}

/* ---- wait ------------------------------------------------------------------------------ */

static void sess_check_wait(struct stream_sess *ss)
{
	if (!ss->waiter || !ss->exited)
		return;
	if ((ss->out && !ss->out->up_closed) || (ss->err && !ss->err->up_closed))
		return;
	Podvisor__Shim__Response r = PODVISOR__SHIM__RESPONSE__INIT;
	Podvisor__Shim__ExecResponse er = PODVISOR__SHIM__EXEC_RESPONSE__INIT;
	er.exit_code = ss->exit_code;
	er.signal = ss->signal;
	r.resp_case = PODVISOR__SHIM__RESPONSE__RESP_EXEC;
	r.exec = &er;
	struct shim_call *w = ss->waiter;
	ss->waiter = NULL;
	shim_call_reply(w, &r);
}

static void reap_ports(void *opaque)
{
	struct stream_sess *ss = opaque;
	size_t keep = 0;
	for (size_t i = 0; i < ss->nports; i++) {
		if (relay_done(ss->ports[i]))
			relay_free(ss->ports[i]);
		else
			ss->ports[keep++] = ss->ports[i];
	}
	ss->nports = keep;
	stream_sess_release(ss);
}

void stream_sess_changed(struct stream_sess *ss)
{
	sess_check_wait(ss);
	if (ss->kind == STREAM_ATTACH && ss->in && ss->in->down_closed && ss->stdin_once) {
		struct shim_ctr *c = shim_ctr_find(ss->s, ss->ctr_id);
		if (c)
			c->stdin_closed = true;
	}
	if (ss->kind == STREAM_PORTFWD && !ss->gone) {
		/* Relays are freed from a timer: the caller may still be inside one. */
		ss->refs++;
		shim_loop_timer(ss->s->loop, pv_now_monotonic_ns(), reap_ports, ss);
	}
}

static void stream_wait(struct stream_sess *ss, struct shim_call *call)
{
	if (ss->kind == STREAM_PORTFWD)
		return reply_err(call, PV_INVALID_ARGUMENT, "stream_wait: a port-forward session has no process");
	if (ss->waiter)
		return reply_err(call, PV_ALREADY_EXISTS, "stream_wait: already waiting");
	ss->waiter = call;
	sess_check_wait(ss);
}

/* ---- exec ------------------------------------------------------------------------------ */

static void kill_exec(struct stream_sess *ss)
{
	if (!ss->s->agent)
		return;
	shim_exec_kill(ss->s, ss->ctr_id, ss->exec_id);
	pv_info("exec session ended by its client, process killed", "container=%s exec=%s", ss->ctr_id,
		ss->exec_id);
}

static void exec_waited(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
			void *opaque)
{
	struct stream_sess *ss = opaque;
	ss->exited = true;
	if (resp && !resp->status && resp->wait_process) {
		ss->exit_code = resp->wait_process->exit_code;
		ss->signal = resp->wait_process->signal;
	} else {
		ss->exit_code = 255;
		if (ss->out)
			relay_up_eof(ss->out);
		if (ss->err)
			relay_up_eof(ss->err);
	}
	if (ss->in && !ss->in->down_closed)
		relay_abort(ss->in); /* the process is gone: its stdin with it */
	pv_info("exec session process exited", "container=%s exec=%s exit_code=%d", ss->ctr_id, ss->exec_id,
		ss->exit_code);
	sess_check_wait(ss);
	stream_sess_release(ss);
}

static void exec_started(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
			 void *opaque)
{
	struct sess_op *op = opaque;
	struct stream_sess *ss = op->ss;
	if (!resp || resp->status) {
		pv_err_t e = { .status = resp ? (int)resp->status : PV_UNAVAILABLE,
			       .msg = resp ? resp->message : (err ? err->msg : "agent connection lost") };
		shim_call_error(op->call, &e);
		if (!ss->gone)
			sess_end(ss);
	} else if (ss->gone) {
		kill_exec(ss);
		shim_call_ok(op->call);
	} else {
		ss->open = true;
		pv_info("exec session started", "container=%s exec=%s pid=%u", ss->ctr_id, ss->exec_id,
			resp->exec_process ? resp->exec_process->pid : 0);
		shim_call_ok(op->call);
		Podvisor__Agent__WaitProcessRequest w = PODVISOR__AGENT__WAIT_PROCESS_REQUEST__INIT;
		w.container_id = ss->ctr_id;
		w.exec_id = ss->exec_id;
		Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
		areq.req_case = PODVISOR__AGENT__REQUEST__REQ_WAIT_PROCESS;
		areq.wait_process = &w;
		ss->refs++;
		if (pv_agent_call_async(a, &areq, exec_waited, ss, NULL, NULL) < 0)
			exec_waited(a, 0, NULL, NULL, ss);
		shim_agent_kick(ss->s);
	}
	stream_sess_release(ss);
	free(op);
}

static struct relay *open_relay(struct stream_sess *ss, uint32_t host_id, bool up, bool down, pv_err_t **err)
{
	struct relay *r = relay_new(ss, host_id, 0, up, down);
	if (relay_open_agent(r, err) < 0) {
		relay_free(r);
		return NULL;
	}
	return r;
}

static void open_exec(struct shim *s, struct shim_call *call, Podvisor__Shim__StreamOpenRequest *r)
{
	Podvisor__Shim__StreamExec *e = r->exec;
	struct shim_ctr *c = shim_ctr_find(s, e->container_id);
	pv_err_t *err = NULL;
	if (!c)
		return reply_err(call, PV_NOT_FOUND, "container %s not found", e->container_id);
	if (c->state != PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_RUNNING)
		return reply_err(call, PV_FAILED_PRECONDITION, "container %s is not running", c->id);
	if (!e->process || !e->process->n_args)
		return reply_err(call, PV_INVALID_ARGUMENT, "stream_open: exec.process.args is required");
	if (shim_need_agent(s, &err) < 0)
		goto fail;
	struct stream_sess *ss = sess_new(s, call, STREAM_EXEC, c->id);
	free(ss->exec_id);
	ss->exec_id = pv_random_hex(8);
	bool tty = e->process->terminal;
	if ((r->stdin_stream && !(ss->in = open_relay(ss, r->stdin_stream, false, true, &err))) ||
	    (r->stdout_stream && !(ss->out = open_relay(ss, r->stdout_stream, true, false, &err))) ||
	    (r->stderr_stream && !tty && !(ss->err = open_relay(ss, r->stderr_stream, true, false, &err)))) {
		sess_end(ss);
		goto fail;
	}
	e->process->stdin_stream = ss->in ? ss->in->agent_id : 0;
	e->process->stdout_stream = ss->out ? ss->out->agent_id : 0;
	e->process->stderr_stream = ss->err ? ss->err->agent_id : 0;
	Podvisor__Agent__ExecProcessRequest er = PODVISOR__AGENT__EXEC_PROCESS_REQUEST__INIT;
	er.container_id = ss->ctr_id;
	er.exec_id = ss->exec_id;
	er.process = e->process;
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	areq.req_case = PODVISOR__AGENT__REQUEST__REQ_EXEC_PROCESS;
	areq.exec_process = &er;
	struct sess_op *op = pv_xcalloc(1, sizeof(*op));
	op->ss = ss;
	op->call = call;
	ss->refs++;
	if (pv_agent_call_async(s->agent, &areq, exec_started, op, NULL, &err) < 0) {
		ss->refs--;
		free(op);
		sess_end(ss);
		goto fail;
	}
	shim_agent_kick(s);
	return;
fail:
	pv_err_prefix(&err, "exec in %s", e->container_id);
	shim_call_error(call, err);
	pv_err_free(err);
}

/* ---- attach ----------------------------------------------------------------------------- */

static void open_attach(struct shim *s, struct shim_call *call, Podvisor__Shim__StreamOpenRequest *r)
{
	struct shim_ctr *c = shim_ctr_find(s, r->attach->container_id);
	if (!c)
		return reply_err(call, PV_NOT_FOUND, "container %s not found", r->attach->container_id);
	if (c->state != PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_RUNNING)
		return reply_err(call, PV_FAILED_PRECONDITION, "container %s is not running", c->id);
	struct stream_sess *ss = sess_new(s, call, STREAM_ATTACH, c->id);
	ss->stdin_once = c->stdin_once;
	/* stdin only if the container was created with it (as containerd: silently none otherwise). */
	if (r->stdin_stream && c->in_stream && !c->stdin_closed)
		ss->in = relay_new(ss, r->stdin_stream, c->in_stream, false, true);
	if (r->stdout_stream) {
		ss->out = relay_new(ss, r->stdout_stream, 0, true, false);
		if (!c->out_stream)
			relay_up_eof(ss->out);
	}
	if (r->stderr_stream && !c->tty) {
		ss->err = relay_new(ss, r->stderr_stream, 0, true, false);
		if (!c->err_stream)
			relay_up_eof(ss->err);
	}
	ss->open = true;
	pv_info("attach session started", "container=%s stdin=%d", c->id, ss->in != NULL);
	shim_call_ok(call);
}

static void ctr_stdin_writable(pv_agent_t *a, uint32_t stream, void *opaque)
{
	struct stream_sess *ss = g_sessions;
	while (ss) {
		stream_sess_hold(ss);
		if (ss->kind == STREAM_ATTACH && ss->in && ss->in->agent_id == stream && !ss->gone)
			relay_push_down(ss->in);
		struct stream_sess *next = ss->next;
		stream_sess_release(ss);
		ss = next;
	}
}

static const struct pv_agent_stream_ops ctr_stdin_ops = { .writable = ctr_stdin_writable };

uint32_t shim_stream_ctr_stdin_open(struct shim *s, pv_err_t **err)
{
	uint32_t id = pv_agent_stream_alloc(s->agent);
	if (pv_agent_stream_open(s->agent, id, &ctr_stdin_ops, s, err) < 0)
		return 0;
	return id;
}

/* The attach sessions of a container, each held while fn runs (it may end them). */
static void each_attach(const char *ctr_id, void (*fn)(struct stream_sess *ss, void *arg), void *arg)
{
	struct stream_sess *ss = g_sessions;
	while (ss) {
		if (ss->kind != STREAM_ATTACH || strcmp(ss->ctr_id, ctr_id)) {
			ss = ss->next;
			continue;
		}
		stream_sess_hold(ss);
		fn(ss, arg);
		struct stream_sess *next = ss->next;
		stream_sess_release(ss);
		ss = next;
	}
}

struct output {
	bool is_err;
	const uint8_t *buf;
	size_t len;
};

static void attach_output(struct stream_sess *ss, void *arg)
{
	struct output *o = arg;
	/* A tty's output is all on stdout. */
	struct relay *r = o->is_err ? ss->err : ss->out;
	if (r && !ss->gone)
		relay_queue_up(r, o->buf, o->len);
}

void shim_stream_ctr_output(struct shim *s, struct shim_ctr *c, bool is_err, const uint8_t *buf, size_t len)
{
	struct output o = { is_err, buf, len };
	each_attach(c->id, attach_output, &o);
}

static void attach_output_closed(struct stream_sess *ss, void *arg)
{
	struct relay *r = *(bool *)arg ? ss->err : ss->out;
	if (r && !ss->gone)
		relay_up_eof(r);
}

void shim_stream_ctr_output_closed(struct shim *s, struct shim_ctr *c, bool is_err)
{
	each_attach(c->id, attach_output_closed, &is_err);
}

static void attach_exited(struct stream_sess *ss, void *arg)
{
	struct shim_ctr *c = arg;
	if (ss->gone)
		return;
	ss->exited = true;
	ss->exit_code = c->exit_code;
	ss->signal = c->signal;
	/* Normally the output closed before the exit; a lost VM closes nothing. */
	if (ss->out)
		relay_up_eof(ss->out);
	if (ss->err)
		relay_up_eof(ss->err);
	sess_check_wait(ss);
}

void shim_stream_ctr_exited(struct shim *s, struct shim_ctr *c)
{
	each_attach(c->id, attach_exited, c);
}

/* ---- port forward ----------------------------------------------------------------------- */

static void port_connected(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
			   void *opaque)
{
	struct sess_op *op = opaque;
	struct relay *r = op->relay;
	r->port_call = NULL;
	if (!resp || resp->status) {
		pv_err_t e = { .status = resp ? (int)resp->status : PV_UNAVAILABLE,
			       .msg = resp ? resp->message : (err ? err->msg : "agent connection lost") };
		shim_call_error(op->call, &e);
		relay_abort(r);
		stream_sess_changed(op->ss);
	} else {
		shim_call_ok(op->call);
		r->connected = true;
		if (op->ss->gone)
			relay_abort(r);
		else
			relay_push_down(r);
	}
	stream_sess_release(op->ss);
	free(op);
}

static void stream_port(struct stream_sess *ss, struct shim_call *call, Podvisor__Shim__StreamPortRequest *p)
{
	pv_err_t *err = NULL;
	if (ss->kind != STREAM_PORTFWD)
		return reply_err(call, PV_INVALID_ARGUMENT, "stream_port: not a port-forward session");
	if (!p->port || p->port > 65535)
		return reply_err(call, PV_INVALID_ARGUMENT, "stream_port: port %u is out of range", p->port);
	for (size_t i = 0; i < ss->nports; i++)
		if (ss->ports[i]->host_id == p->stream && !relay_done(ss->ports[i]))
			return reply_err(call, PV_ALREADY_EXISTS, "stream_port: stream %u is in use", p->stream);
	if (!p->stream)
		return reply_err(call, PV_INVALID_ARGUMENT, "stream_port: stream id 0 is reserved");
	if (shim_need_agent(ss->s, &err) < 0)
		goto fail;
	struct relay *r = open_relay(ss, p->stream, true, true, &err);
	if (!r)
		goto fail;
	r->connected = false;
	r->port_call = call;
	ss->ports = pv_xrealloc(ss->ports, (ss->nports + 1) * sizeof(*ss->ports));
	ss->ports[ss->nports++] = r;
	Podvisor__Agent__PortForwardRequest pf = PODVISOR__AGENT__PORT_FORWARD_REQUEST__INIT;
	pf.port = p->port;
	pf.stream = r->agent_id;
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	areq.req_case = PODVISOR__AGENT__REQUEST__REQ_PORT_FORWARD;
	areq.port_forward = &pf;
	struct sess_op *op = pv_xcalloc(1, sizeof(*op));
	op->ss = ss;
	op->call = call;
	op->relay = r;
	ss->refs++;
	if (pv_agent_call_async(ss->s->agent, &areq, port_connected, op, NULL, &err) < 0) {
		r->port_call = NULL;
		relay_abort(r);
		ss->refs--;
		free(op);
		goto fail;
	}
	shim_agent_kick(ss->s);
	return;
fail:
	shim_call_error(call, err);
	pv_err_free(err);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static void stream_resize(struct stream_sess *ss, struct shim_call *call, Podvisor__Shim__StreamResizeRequest *r)
{
	if (ss->kind == STREAM_PORTFWD)
		return reply_err(call, PV_INVALID_ARGUMENT, "stream_resize: a port-forward session has no terminal");
	if (!r->rows || !r->cols || r->rows > 65535 || r->cols > 65535)
		return shim_call_ok(call);
	Podvisor__Agent__ResizeTtyRequest rr = PODVISOR__AGENT__RESIZE_TTY_REQUEST__INIT;
	rr.container_id = ss->ctr_id;
	rr.exec_id = ss->exec_id;
	rr.rows = r->rows;
	rr.cols = r->cols;
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	areq.req_case = PODVISOR__AGENT__REQUEST__REQ_RESIZE_TTY;
	areq.resize_tty = &rr;
	shim_forward(ss->s, call, &areq, SHIM_FWD_EMPTY);
}

static void stream_open(struct shim *s, struct shim_call *call, Podvisor__Shim__StreamOpenRequest *r)
{
	if (shim_ctl_client_stream(shim_call_client(call)))
		return reply_err(call, PV_FAILED_PRECONDITION, "stream_open: this connection already carries a session");
	switch (r->kind_case) {
	case PODVISOR__SHIM__STREAM_OPEN_REQUEST__KIND_EXEC:
		return open_exec(s, call, r);
	case PODVISOR__SHIM__STREAM_OPEN_REQUEST__KIND_ATTACH:
		return open_attach(s, call, r);
	case PODVISOR__SHIM__STREAM_OPEN_REQUEST__KIND_PORT_FORWARD: {
		pv_err_t *err = NULL;
		if (shim_need_agent(s, &err) < 0) {
			shim_call_error(call, err);
			pv_err_free(err);
			return;
		}
		struct stream_sess *ss = sess_new(s, call, STREAM_PORTFWD, NULL);
		ss->open = true;
		shim_call_ok(call);
		return;
	}
	default:
		return reply_err(call, PV_INVALID_ARGUMENT, "stream_open: one of exec, attach, port_forward is required");
	}
}

void shim_stream_dispatch(struct shim *s, struct shim_call *call, Podvisor__Shim__Request *req)
{
	if (req->req_case == PODVISOR__SHIM__REQUEST__REQ_STREAM_OPEN)
		return stream_open(s, call, req->stream_open);
	struct stream_sess *ss = shim_ctl_client_stream(shim_call_client(call));
	if (!ss || !ss->open)
		return reply_err(call, PV_FAILED_PRECONDITION, "no streaming session on this connection (stream_open first)");
	switch (req->req_case) {
	case PODVISOR__SHIM__REQUEST__REQ_STREAM_RESIZE:
		return stream_resize(ss, call, req->stream_resize);
	case PODVISOR__SHIM__REQUEST__REQ_STREAM_PORT:
		return stream_port(ss, call, req->stream_port);
	case PODVISOR__SHIM__REQUEST__REQ_STREAM_WAIT:
		return stream_wait(ss, call);
	default:
		return reply_err(call, PV_UNIMPLEMENTED, "unknown stream request");
	}
}

static struct relay *find_relay(struct stream_sess *ss, uint32_t host_id)
{
	size_t n;
	struct relay *fixed[3];
	struct relay **rs = sess_relays(ss, fixed, &n);
	for (size_t i = 0; i < n; i++)
		if (rs[i] && rs[i]->host_id == host_id && !relay_done(rs[i]))
			return rs[i];
	return NULL;
}

void shim_stream_on_frame(struct stream_sess *ss, const struct pv_frame_hdr *h, const uint8_t *payload)
{
	stream_sess_hold(ss);
	struct relay *r = find_relay(ss, h->stream);
	uint32_t inc;
	switch (h->type) {
	case PV_FRAME_DATA:
		if (r) {
			relay_host_data(r, payload, h->len);
		} else if (h->len) {
			/* Not ours (any more): hand the credit back so the host does not stall. */
			uint8_t p[4] = { h->len >> 24, h->len >> 16, h->len >> 8, h->len };
			stream_send(ss, PV_FRAME_WINDOW, h->stream, 0, p, sizeof(p));
		}
		break;
	case PV_FRAME_WINDOW:
		if (r && pv_frame_parse_window(payload, h->len, &inc) == 0)
			relay_host_window(r, inc);
		break;
	case PV_FRAME_CLOSE:
		if (r)
			relay_host_close(r, (h->flags & PV_FRAME_F_RESET) != 0);
		break;
	default:
		break;
	}
	stream_sess_release(ss);
}

void shim_stream_client_gone(struct stream_sess *ss)
{
	if (ss->kind == STREAM_EXEC && ss->open && !ss->exited)
		kill_exec(ss);
	if (ss->kind == STREAM_ATTACH && ss->in && ss->stdin_once && !ss->in->down_closed) {
		ss->in->down_eof = true;
		free(ss->in->dbuf);
		ss->in->dbuf = NULL;
		ss->in->dlen = 0;
		relay_push_down(ss->in);
	}
	size_t n;
	struct relay *fixed[3];
	struct relay **rs = sess_relays(ss, fixed, &n);
	for (size_t i = 0; i < n; i++)
		if (rs[i])
			relay_abort(rs[i]);
	if (ss->waiter) {
		struct shim_call *w = ss->waiter;
		ss->waiter = NULL;
		reply_err(w, PV_CANCELLED, "session closed");
	}
	pv_debug("streaming session closed", "container=%s kind=%d", ss->ctr_id, ss->kind);
	sess_end(ss);
}

void shim_stream_agent_lost(struct shim *s)
{
	for (struct stream_sess *ss = g_sessions; ss; ss = ss->next) {
		size_t n;
		struct relay *fixed[3];
		struct relay **rs = sess_relays(ss, fixed, &n);
		for (size_t i = 0; i < n; i++) {
			struct relay *r = rs[i];
			if (!r)
				continue;
			if (r->owns_agent)
				r->agent_id = 0; /* released with the agent client */
			r->down_closed = true;
			relay_up_eof(r);
		}
	}
}
