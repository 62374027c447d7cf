/* Exec a process in a container and answer with its collected output (ExecSync). */
#include "shim.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define EXEC_DEFAULT_MAX_OUTPUT (16u << 20)

struct exec_buf {
	uint8_t *data;
	size_t len;
	bool open;
};

struct exec_op {
	struct shim *s;
	struct shim_call *call;
	char *ctr_id, *exec_id;
	uint32_t out_stream, err_stream;
	struct exec_buf out, err;
	size_t max;
	struct shim_timer *timer;
	bool timed_out, started;
	int refs; /* the op itself + each open stream */
};

static void exec_unref(struct exec_op *x)
{
	if (--x->refs > 0)
		return;
	free(x->ctr_id);
	free(x->exec_id);
	free(x->out.data);
	free(x->err.data);
	free(x);
}

static size_t exec_data(pv_agent_t *a, uint32_t stream, const uint8_t *buf, size_t len, void *opaque)
{
	struct exec_op *x = opaque;
	struct exec_buf *b = stream == x->out_stream ? &x->out : &x->err;
	size_t take = len;
	if (b->len + take > x->max)
		take = x->max - b->len; /* over the cap: dropped, still credited */
	if (take) {
		b->data = pv_xrealloc(b->data, b->len + take);
		memcpy(b->data + b->len, buf, take);
		b->len += take;
	}
	return len;
}

static void exec_closed(pv_agent_t *a, uint32_t stream, bool reset, void *opaque)
{
	struct exec_op *x = opaque;
	pv_agent_stream_release(a, stream);
	if (stream == x->out_stream)
		x->out_stream = 0;
	else
		x->err_stream = 0;
	exec_unref(x);
}

static const struct pv_agent_stream_ops exec_ops = {
	.data = exec_data,
	.closed = exec_closed,
};

static void exec_release_streams(struct exec_op *x)
{
	pv_agent_t *a = x->s->agent;
	if (x->out_stream) {
		if (a)
			pv_agent_stream_release(a, x->out_stream);
		x->out_stream = 0;
		exec_unref(x);
	}
	if (x->err_stream) {
		if (a)
			pv_agent_stream_release(a, x->err_stream);
		x->err_stream = 0;
		exec_unref(x);
	}
}

static void exec_fail(struct exec_op *x, int status, const char *msg)
{
	if (x->timer)
		shim_loop_timer_cancel(x->s->loop, x->timer);
	x->timer = NULL;
	pv_err_t e = { .status = status, .msg = (char *)msg };
	shim_call_error(x->call, &e);
	exec_release_streams(x);
	exec_unref(x);
}

static void exec_waited(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
			void *opaque)
{
	struct exec_op *x = opaque;
	if (!resp || resp->status || !resp->wait_process) {
		exec_fail(x, resp ? (int)resp->status : PV_UNAVAILABLE,
			  resp ? resp->message : (err ? err->msg : "agent connection lost"));
		return;
	}
	if (x->timer)
		shim_loop_timer_cancel(x->s->loop, x->timer);
	x->timer = NULL;
	Podvisor__Shim__Response r = PODVISOR__SHIM__RESPONSE__INIT;
	Podvisor__Shim__ExecResponse er = PODVISOR__SHIM__EXEC_RESPONSE__INIT;
	er.exit_code = resp->wait_process->exit_code;
	er.signal = resp->wait_process->signal;
	er.stdout.data = x->out.data;
	er.stdout.len = x->out.len;
	er.stderr.data = x->err.data;
	er.stderr.len = x->err.len;
	er.timed_out = x->timed_out;
	r.resp_case = PODVISOR__SHIM__RESPONSE__RESP_EXEC;
	r.exec = &er;
	shim_call_reply(x->call, &r);
	exec_release_streams(x);
	exec_unref(x);
}

static void exec_timeout(void *opaque)
{
	struct exec_op *x = opaque;
	x->timer = NULL;
	x->timed_out = true;
	shim_exec_kill(x->s, x->ctr_id, x->exec_id);
}

void shim_exec_kill(struct shim *s, const char *ctr_id, const char *exec_id)
{
	if (!s->agent)
		return;
	Podvisor__Agent__SignalProcessRequest sr = PODVISOR__AGENT__SIGNAL_PROCESS_REQUEST__INIT;
	sr.container_id = (char *)ctr_id;
	sr.exec_id = (char *)exec_id;
	sr.signal = SIGKILL;
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	areq.req_case = PODVISOR__AGENT__REQUEST__REQ_SIGNAL_PROCESS;
	areq.signal_process = &sr;
	if (pv_agent_call_async(s->agent, &areq, NULL, NULL, NULL, NULL) == 0)
		shim_agent_kick(s);
}

static void exec_started(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
			 void *opaque)
{
	struct exec_op *x = opaque;
	if (!resp || resp->status) {
		exec_fail(x, resp ? (int)resp->status : PV_UNAVAILABLE,
			  resp ? resp->message : (err ? err->msg : "agent connection lost"));
		return;
	}
	Podvisor__Agent__WaitProcessRequest w = PODVISOR__AGENT__WAIT_PROCESS_REQUEST__INIT;
	w.container_id = x->ctr_id;
	w.exec_id = x->exec_id;
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	areq.req_case = PODVISOR__AGENT__REQUEST__REQ_WAIT_PROCESS;
	areq.wait_process = &w;
	cleanup_err pv_err_t *e = NULL;
	if (pv_agent_call_async(x->s->agent, &areq, exec_waited, x, NULL, &e) < 0) {
		exec_fail(x, e->status, e->msg);
		return;
	}
	shim_agent_kick(x->s);
}

void shim_exec(struct shim *s, struct shim_call *call, Podvisor__Shim__ExecRequest *r)
{
	pv_err_t *err = NULL;
	struct shim_ctr *c = shim_ctr_find(s, r->container_id);
	if (!c) {
		pv_err_set(&err, PV_NOT_FOUND, ENOENT, "container %s not found", r->container_id);
		goto fail;
	}
	if (c->state != PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_RUNNING) {
		pv_err_set(&err, PV_FAILED_PRECONDITION, EINVAL, "container %s is not running", c->id);
		goto fail;
	}
	if (!r->process || r->process->n_args == 0) {
		pv_err_set(&err, PV_INVALID_ARGUMENT, EINVAL, "exec: process.args is required");
		goto fail;
	}
	if (shim_need_agent(s, &err) < 0)
		goto fail;
	struct exec_op *x = pv_xcalloc(1, sizeof(*x));
	x->s = s;
	x->call = call;
	x->refs = 1;
	x->ctr_id = pv_xstrdup(c->id);
	x->exec_id = pv_random_hex(8);
	x->max = r->max_output ? r->max_output : EXEC_DEFAULT_MAX_OUTPUT;
	x->out_stream = pv_agent_stream_alloc(s->agent);
	if (pv_agent_stream_open(s->agent, x->out_stream, &exec_ops, x, &err) < 0) {
		x->out_stream = 0;
		exec_unref(x);
		goto fail;
	}
	x->refs++;
	if (!r->process->terminal) {
		x->err_stream = pv_agent_stream_alloc(s->agent);
		if (pv_agent_stream_open(s->agent, x->err_stream, &exec_ops, x, &err) < 0) {
			x->err_stream = 0;
			exec_release_streams(x);
			exec_unref(x);
			goto fail;
		}
		x->refs++;
	}
	r->process->stdin_stream = 0;
	r->process->stdout_stream = x->out_stream;
	r->process->stderr_stream = x->err_stream;
	Podvisor__Agent__ExecProcessRequest er = PODVISOR__AGENT__EXEC_PROCESS_REQUEST__INIT;
	er.container_id = x->ctr_id;
	er.exec_id = x->exec_id;
	er.process = r->process;
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	areq.req_case = PODVISOR__AGENT__REQUEST__REQ_EXEC_PROCESS;
	areq.exec_process = &er;
	if (pv_agent_call_async(s->agent, &areq, exec_started, x, NULL, &err) < 0) {
		exec_release_streams(x);
		exec_unref(x);
		goto fail;
	}
	if (r->timeout_ms)
		x->timer = shim_loop_timer(s->loop, pv_now_monotonic_ns() + (int64_t)r->timeout_ms * 1000000,
					   exec_timeout, x);
	shim_agent_kick(s);
	return;
fail:
	shim_call_error(call, err);
	pv_err_free(err);
}
