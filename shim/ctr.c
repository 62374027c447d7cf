/* Container operations: rootfs disk + agent calls + CRI logs, and plain forwarding. */
#include "shim.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define AGENT_CALL_TIMEOUT_MS 30000

struct shim_ctr *shim_ctr_find(struct shim *s, const char *id)
{
	for (size_t i = 0; id && i < s->nctrs; i++)
		if (!strcmp(s->ctrs[i]->id, id))
			return s->ctrs[i];
	return NULL;
}

void shim_ctr_fill_status(const struct shim_ctr *c, Podvisor__Shim__ContainerStatus *st)
{
	podvisor__shim__container_status__init(st);
	st->id = c->id;
	st->state = c->state;
	st->exit_code = c->exit_code;
	st->signal = c->signal;
	st->oom_killed = c->oom_killed;
	st->created_at_ns = c->created_ns;
	st->started_at_ns = c->started_ns;
	st->finished_at_ns = c->finished_ns;
	st->reason = c->reason ? c->reason : "";
	st->message = c->message ? c->message : "";
	st->log_path = c->log.path ? c->log.path : "";
	st->pid = c->pid;
	st->disk = c->disk ? c->disk : "";
}

static void reply_ctr(struct shim_call *call, const struct shim_ctr *c)
{
	Podvisor__Shim__Response resp = PODVISOR__SHIM__RESPONSE__INIT;
	Podvisor__Shim__ContainerStatus st;
	shim_ctr_fill_status(c, &st);
	resp.resp_case = PODVISOR__SHIM__RESPONSE__RESP_CONTAINER;
	resp.container = &st;
	shim_call_reply(call, &resp);
}

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

/* The agent's error (or the lost channel's) as the call's answer. */
static void reply_agent_err(struct shim *s, struct shim_call *call, const Podvisor__Agent__Response *resp,
			    const pv_err_t *err)
{
	if (!resp && s->shutting_down) { /* the pod is being stopped: not a fault */
		pv_err_t e = { .status = PV_FAILED_PRECONDITION, .errnum = ESHUTDOWN,
			       .msg = (char *)"the pod is shutting down" };
		shim_call_error(call, &e);
		return;
	}
	pv_err_t e = { .status = resp ? (int)resp->status : (err ? err->status : PV_UNAVAILABLE),
		       .errnum = resp ? (int)resp->errnum : (err ? err->errnum : EPIPE),
		       .msg = resp ? resp->message : (err ? err->msg : (char *)"agent connection lost") };
	shim_call_error(call, &e);
}

struct stream_ctx {
	struct shim *s;
	char *ctr_id;
	bool is_err;
};

static void release_streams(struct shim *s, struct shim_ctr *c)
{
	if (s->agent && c->out_stream)
		pv_agent_stream_release(s->agent, c->out_stream);
	if (s->agent && c->err_stream)
		pv_agent_stream_release(s->agent, c->err_stream);
	if (s->agent && c->in_stream)
		pv_agent_stream_release(s->agent, c->in_stream);
	c->out_stream = c->err_stream = c->in_stream = 0;
}

void shim_ctr_free(struct shim_ctr *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nwaiters; i++)
		reply_err(c->waiters[i], PV_NOT_FOUND, "container %s was removed", c->id);
	free(c->waiters);
	for (int i = 0; i < 2; i++) {
		if (c->stream_ctx[i])
			free(((struct stream_ctx *)c->stream_ctx[i])->ctr_id);
		free(c->stream_ctx[i]);
	}
	shim_log_stream_free(&c->out);
	shim_log_stream_free(&c->err);
	shim_log_close(&c->log);
	free(c->id);
	free(c->reason);
	free(c->message);
	free(c->disk);
	free(c);
}

static void ctr_unlink(struct shim *s, struct shim_ctr *c)
{
	for (size_t i = 0; i < s->nctrs; i++) {
		if (s->ctrs[i] == c) {
			memmove(&s->ctrs[i], &s->ctrs[i + 1], (s->nctrs - i - 1) * sizeof(*s->ctrs));
			s->nctrs--;
			return;
		}
	}
}

static bool valid_id(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > 64)
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '.' || *p == '-'))
			return false;
	return true;
}

/* ---- forwarding ---------------------------------------------------------------- */

struct fwd {
	struct shim *s;
	struct shim_call *call;
	int kind;
};

static void forward_done(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
			 void *opaque)
{
	struct fwd *f = opaque;
	if (!resp || resp->status) {
		reply_agent_err(f->s, f->call, resp, err);
	} else if (f->kind == SHIM_FWD_STATS) {
		Podvisor__Shim__Response r = PODVISOR__SHIM__RESPONSE__INIT;
		r.resp_case = PODVISOR__SHIM__RESPONSE__RESP_STATS;
		r.stats = resp->stats_container;
		shim_call_reply(f->call, &r);
	} else if (f->kind == SHIM_FWD_AGENT) {
		Podvisor__Shim__Response r = PODVISOR__SHIM__RESPONSE__INIT;
		r.resp_case = PODVISOR__SHIM__RESPONSE__RESP_AGENT;
		r.agent = (Podvisor__Agent__Response *)resp;
		shim_call_reply(f->call, &r);
	} else {
		shim_call_ok(f->call);
	}
	free(f);
}

/* Send req to the agent; cb gets called with opaque (or the call is failed now). */
static int agent_send(struct shim *s, struct shim_call *call, const Podvisor__Agent__Request *req,
		      pv_agent_response_cb cb, void *opaque)
{
	cleanup_err pv_err_t *err = NULL;
	if (shim_need_agent(s, &err) < 0 || pv_agent_call_async(s->agent, req, cb, opaque, NULL, &err) < 0) {
		if (call)
			shim_call_error(call, err);
		return -1;
	}
	shim_agent_kick(s);
	return 0;
}

void shim_forward(struct shim *s, struct shim_call *call, const Podvisor__Agent__Request *req, int kind)
{
	struct fwd *f = pv_xcalloc(1, sizeof(*f));
	f->s = s;
	f->call = call;
	f->kind = kind;
	if (agent_send(s, call, req, forward_done, f) < 0)
		free(f);
}

/* ---- stdio -> CRI log ---------------------------------------------------------- */

static struct shim_ctr *stream_ctr(struct stream_ctx *x)
{
	return shim_ctr_find(x->s, x->ctr_id);
}

static size_t log_data(pv_agent_t *a, uint32_t stream, const uint8_t *buf, size_t len, void *opaque)
{
	struct stream_ctx *x = opaque;
	struct shim_ctr *c = stream_ctr(x);
	if (!c)
		return len;
	cleanup_err pv_err_t *err = NULL;
	if (shim_log_stream_write(x->is_err ? &c->err : &c->out, buf, len, pv_now_realtime_ns(), &err) < 0)
		pv_warn("cannot write container log", "container=%s error=%s", c->id, err->msg);
	shim_stream_ctr_output(x->s, c, x->is_err, buf, len);
	return len;
}

static void log_closed(pv_agent_t *a, uint32_t stream, bool reset, void *opaque)
{
	struct stream_ctx *x = opaque;
	struct shim_ctr *c = stream_ctr(x);
	if (c) {
		shim_log_stream_flush(x->is_err ? &c->err : &c->out, pv_now_realtime_ns(), NULL);
		if (x->is_err)
			c->err_stream = 0;
		else
			c->out_stream = 0;
		shim_stream_ctr_output_closed(x->s, c, x->is_err);
	}
	pv_agent_stream_release(a, stream);
	/* x stays with the container (freed with it). */
}

static const struct pv_agent_stream_ops log_ops = {
	.data = log_data,
	.closed = log_closed,
};

static uint32_t open_log_stream(struct shim *s, struct shim_ctr *c, bool is_err, pv_err_t **err)
{
	uint32_t id = pv_agent_stream_alloc(s->agent);
	struct stream_ctx *x = pv_xcalloc(1, sizeof(*x));
	x->s = s;
	x->ctr_id = pv_xstrdup(c->id);
	x->is_err = is_err;
	c->stream_ctx[is_err] = x;
	if (pv_agent_stream_open(s->agent, id, &log_ops, x, err) < 0)
		return 0;
	return id;
}

/* ---- create -------------------------------------------------------------------- */

struct op {
	struct shim *s;
	struct shim_call *call;
	char *id;
	Podvisor__Shim__CreateContainerRequest *req; /* create: kept until the agent has it */
};

static struct op *op_new(struct shim *s, struct shim_call *call, const char *id)
{
	struct op *o = pv_xcalloc(1, sizeof(*o));
	o->s = s;
	o->call = call;
	o->id = pv_xstrdup(id);
	return o;
}

static void op_free(struct op *o)
{
	free(o->id);
	if (o->req)
		podvisor__shim__create_container_request__free_unpacked(o->req, NULL);
	free(o);
}

static void disk_gone(struct shim *s, void *opaque, const pv_err_t *err, unsigned scsi_id)
{
	char *disk = opaque;
	if (err)
		pv_warn("cannot detach disk", "disk=%s error=%s", disk, err->msg);
	else
		unlink(disk);
	free(disk);
}

/* Undo a container whose creation failed part way (disk, overlay, streams). */
static void ctr_discard(struct shim *s, struct shim_ctr *c, bool disk_added)
{
	release_streams(s, c);
	cleanup_err pv_err_t *err = NULL;
	if (disk_added && c->disk) {
		/* the overlay goes once the VM has let go of it */
		if (shim_disk_remove(s, c->id, disk_gone, pv_xstrdup(c->disk), &err) < 0) {
			pv_warn("cannot detach disk", "container=%s error=%s", c->id, err->msg);
			unlink(c->disk);
		}
	}
	ctr_unlink(s, c);
	shim_ctr_free(c);
}

static void create_done(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
			void *opaque)
{
	struct op *o = opaque;
	struct shim_ctr *c = shim_ctr_find(o->s, o->id);
	if (!c) {
		reply_err(o->call, PV_ABORTED, "container %s went away while being created", o->id);
	} else if (!resp || resp->status) {
		reply_agent_err(o->s, o->call, resp, err);
		ctr_discard(o->s, c, true);
	} else {
		c->state = PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_CREATED;
		pv_info("container created", "container=%s disk=%s", c->id, c->disk);
		shim_state_persist(o->s);
		reply_ctr(o->call, c);
	}
	op_free(o);
}

/* The agent's CreateContainer for c, its rootfs being the disk at SCSI target scsi_id.
 * A disk the guest cannot open yet is the agent's to wait for (Rootfs.wait_ms). */
static int create_send(struct shim *s, struct op *o, struct shim_ctr *c, unsigned scsi_id, pv_err_t **err)
{
	Podvisor__Agent__CreateContainerRequest *spec = o->req->spec;
	Podvisor__Agent__Process *p = spec->process;
	c->out_stream = open_log_stream(s, c, false, err);
	if (c->out_stream && !p->terminal)
		c->err_stream = open_log_stream(s, c, true, err);
	if (!c->out_stream || (!p->terminal && !c->err_stream))
		return -1;
	c->tty = p->terminal;
	c->stdin_once = o->req->stdin_once;
	if (o->req->stdin && !c->in_stream && !(c->in_stream = shim_stream_ctr_stdin_open(s, err)))
		return -1;
	p->stdout_stream = c->out_stream;
	p->stderr_stream = c->err_stream;
	p->stdin_stream = c->in_stream;
	char addr[PV_GUEST_SCSI_ADDR_LEN];
	pv_guest_scsi_address(addr, scsi_id);
	Podvisor__Agent__Rootfs rootfs = PODVISOR__AGENT__ROOTFS__INIT;
	if (spec->rootfs)
		rootfs = *spec->rootfs;
	rootfs.device_path = "";
	rootfs.serial = "";
	rootfs.scsi_address = addr;
	if (!rootfs.fstype || !*rootfs.fstype)
		rootfs.fstype = "ext4";
	Podvisor__Agent__Rootfs *saved_rootfs = spec->rootfs;
	char *saved_id = spec->container_id;
	spec->rootfs = &rootfs;
	spec->container_id = c->id;
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	areq.req_case = PODVISOR__AGENT__REQUEST__REQ_CREATE_CONTAINER;
	areq.create_container = spec;
	int rc = agent_send(s, NULL, &areq, create_done, o);
	spec->rootfs = saved_rootfs;
	spec->container_id = saved_id;
	if (rc < 0)
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTCONN, "pod VM is not running");
	return 0;
}

/* The rootfs disk is attached (or failed to be): on to the agent. */
static void create_disk_ready(struct shim *s, void *opaque, const pv_err_t *derr, unsigned scsi_id)
{
	struct op *o = opaque;
	struct shim_ctr *c = shim_ctr_find(s, o->id);
	cleanup_err pv_err_t *err = NULL;
	if (!c) {
		reply_err(o->call, PV_ABORTED, "container %s went away while being created", o->id);
	} else if (derr) {
		pv_err_t e = *derr;
		e.msg = pv_xasprintf("create container %s: %s", o->id, derr->msg);
		shim_call_error(o->call, &e);
		free(e.msg);
		free(c->disk);
		c->disk = NULL; /* the attach removed its overlay */
		ctr_discard(s, c, false);
	} else if (s->shutting_down || create_send(s, o, c, scsi_id, &err) < 0) {
		if (!err)
			pv_err_set(&err, PV_UNAVAILABLE, ESHUTDOWN, "the pod is shutting down");
		pv_err_prefix(&err, "create container %s", o->id);
		shim_call_error(o->call, err);
		ctr_discard(s, c, true);
	} else {
		return; /* create_done answers */
	}
	op_free(o);
}

static Podvisor__Shim__CreateContainerRequest *request_copy(const Podvisor__Shim__CreateContainerRequest *r)
{
	size_t len = podvisor__shim__create_container_request__get_packed_size(r);
	cleanup_free uint8_t *buf = pv_xmalloc(len ? len : 1);
	podvisor__shim__create_container_request__pack(r, buf);
	return podvisor__shim__create_container_request__unpack(NULL, len, buf);
}

void shim_ctr_create(struct shim *s, struct shim_call *call, Podvisor__Shim__CreateContainerRequest *r)
{
	pv_err_t *err = NULL;
	if (!valid_id(r->container_id))
		return reply_err(call, PV_INVALID_ARGUMENT, "container_id %s: want [A-Za-z0-9_.-]{1,64}", r->container_id);
	if (shim_ctr_find(s, r->container_id))
		return reply_err(call, PV_ALREADY_EXISTS, "container %s already exists", r->container_id);
	if (!r->spec || !r->spec->process || r->spec->process->n_args == 0)
		return reply_err(call, PV_INVALID_ARGUMENT, "spec.process.args is required");
	if (!r->image_disk || !*r->image_disk)
		return reply_err(call, PV_INVALID_ARGUMENT, "image_disk is required");
	if (shim_need_agent(s, &err) < 0)
		goto fail;

	struct shim_ctr *c = pv_xcalloc(1, sizeof(*c));
	c->id = pv_xstrdup(r->container_id);
	c->state = PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_UNKNOWN;
	c->created_ns = pv_now_realtime_ns();
	c->disk = pv_xasprintf("%s/%s.qcow2", s->disk_dir, c->id);
	c->log.fd = -1;
	shim_log_stream_init(&c->out, &c->log, "stdout");
	shim_log_stream_init(&c->err, &c->log, "stderr");
	s->ctrs = pv_xrealloc(s->ctrs, (s->nctrs + 1) * sizeof(*s->ctrs));
	s->ctrs[s->nctrs++] = c;

	if (shim_log_open(&c->log, r->log_dir, r->log_path, &err) < 0) {
		free(c->disk);
		c->disk = NULL;
		ctr_discard(s, c, false);
		goto fail;
	}
	/* The overlay and its hot-add run on the worker; the request waits in the op. */
	struct op *o = op_new(s, call, c->id);
	if (shim_disk_add(s, c->id, c->disk, r->image_disk, "qcow2", false, create_disk_ready, o, &err) < 0) {
		op_free(o);
		free(c->disk);
		c->disk = NULL;
		ctr_discard(s, c, false);
		goto fail;
	}
	/* Keep the request: the dispatcher frees its own copy when we return. */
	o->req = request_copy(r);
	return;
fail:
	pv_err_prefix(&err, "create container %s", r->container_id);
	shim_call_error(call, err);
	pv_err_free(err);
}

/* ---- start / wait for exit ------------------------------------------------------ */

static void exit_done(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
		      void *opaque)
{
	struct op *o = opaque;
	struct shim_ctr *c = shim_ctr_find(o->s, o->id);
	/* resp == NULL: the channel died; shim_vm_lost() records the exits. */
	if (c && resp) {
		if (resp->status || !resp->wait_process)
			shim_exit_record(o->s, c, 255, 0, false, "Error",
					 resp->message && *resp->message ? resp->message : "wait failed");
		else
			shim_exit_record(o->s, c, resp->wait_process->exit_code, resp->wait_process->signal,
					 resp->wait_process->oom_killed, NULL, NULL);
	}
	op_free(o);
}

static void start_done(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
		       void *opaque)
{
	struct op *o = opaque;
	struct shim_ctr *c = shim_ctr_find(o->s, o->id);
	if (!c) {
		reply_err(o->call, PV_ABORTED, "container %s went away while starting", o->id);
	} else if (!resp || resp->status) {
		reply_agent_err(o->s, o->call, resp, err);
	} else {
		c->state = PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_RUNNING;
		c->started_ns = pv_now_realtime_ns();
		c->pid = resp->start_container ? resp->start_container->pid : 0;
		pv_info("container started", "container=%s pid=%u", c->id, c->pid);
		shim_state_persist(o->s);
		Podvisor__Agent__WaitProcessRequest w = PODVISOR__AGENT__WAIT_PROCESS_REQUEST__INIT;
		w.container_id = c->id;
		w.exec_id = "";
		Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
		areq.req_case = PODVISOR__AGENT__REQUEST__REQ_WAIT_PROCESS;
		areq.wait_process = &w;
		struct op *wo = op_new(o->s, NULL, c->id);
		if (agent_send(o->s, NULL, &areq, exit_done, wo) < 0)
			op_free(wo);
		reply_ctr(o->call, c);
	}
	op_free(o);
}

void shim_ctr_start(struct shim *s, struct shim_call *call, const char *id)
{
	struct shim_ctr *c = shim_ctr_find(s, id);
	if (!c)
		return reply_err(call, PV_NOT_FOUND, "container %s not found", id);
	if (c->state != PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_CREATED)
		return reply_err(call, PV_FAILED_PRECONDITION, "container %s is not in state CREATED", id);
	Podvisor__Agent__StartContainerRequest sr = PODVISOR__AGENT__START_CONTAINER_REQUEST__INIT;
	sr.container_id = c->id;
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	areq.req_case = PODVISOR__AGENT__REQUEST__REQ_START_CONTAINER;
	areq.start_container = &sr;
	struct op *o = op_new(s, call, id);
	if (agent_send(s, call, &areq, start_done, o) < 0)
		op_free(o);
}

void shim_ctr_wait(struct shim *s, struct shim_call *call, const char *id)
{
	struct shim_ctr *c = shim_ctr_find(s, id);
	if (!c)
		return reply_err(call, PV_NOT_FOUND, "container %s not found", id);
	if (c->state == PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_EXITED)
		return reply_ctr(call, c);
	c->waiters = pv_xrealloc(c->waiters, (c->nwaiters + 1) * sizeof(*c->waiters));
	c->waiters[c->nwaiters++] = call;
}

void shim_ctr_signal(struct shim *s, struct shim_call *call, Podvisor__Shim__SignalRequest *r)
{
	struct shim_ctr *c = shim_ctr_find(s, r->container_id);
	if (!c)
		return reply_err(call, PV_NOT_FOUND, "container %s not found", r->container_id);
	if (c->state != PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_RUNNING)
		return reply_err(call, PV_FAILED_PRECONDITION, "container %s is not running", c->id);
	Podvisor__Agent__SignalProcessRequest sr = PODVISOR__AGENT__SIGNAL_PROCESS_REQUEST__INIT;
	sr.container_id = c->id;
	sr.exec_id = "";
	sr.signal = r->signal;
	sr.all = r->all;
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	areq.req_case = PODVISOR__AGENT__REQUEST__REQ_SIGNAL_PROCESS;
	areq.signal_process = &sr;
	shim_forward(s, call, &areq, SHIM_FWD_EMPTY);
}

/* ---- remove -------------------------------------------------------------------- */

static void remove_disk_done(struct shim *s, void *opaque, const pv_err_t *err, unsigned scsi_id)
{
	struct op *o = opaque;
	struct shim_ctr *c = shim_ctr_find(s, o->id);
	if (c && err) {
		c->removing = false;
		pv_warn("cannot hot-remove disk", "container=%s error=%s", c->id, err->msg);
		shim_call_error(o->call, err);
	} else if (c) {
		if (c->disk)
			unlink(c->disk);
		pv_info("container removed", "container=%s", c->id);
		ctr_unlink(s, c);
		shim_ctr_free(c);
		shim_state_persist(s);
		shim_call_ok(o->call);
	} else {
		shim_call_ok(o->call);
	}
	op_free(o);
}

static void remove_finish(struct shim *s, struct shim_ctr *c, struct op *o)
{
	if (c->state != PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_EXITED)
		shim_exit_record(s, c, 137, 9, false, "Removed", "container removed while running");
	release_streams(s, c);
	cleanup_err pv_err_t *err = NULL;
	int r = shim_disk_remove(s, c->id, remove_disk_done, o, &err);
	if (r < 0 && err->status == PV_NOT_FOUND) /* never attached */
		remove_disk_done(s, o, NULL, 0);
	else if (r < 0)
		remove_disk_done(s, o, err, 0);
}

static void remove_done(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
			void *opaque)
{
	struct op *o = opaque;
	struct shim_ctr *c = shim_ctr_find(o->s, o->id);
	if (!c) {
		shim_call_ok(o->call);
		op_free(o);
	} else if (resp && resp->status && resp->status != PV_NOT_FOUND) {
		c->removing = false;
		reply_agent_err(o->s, o->call, resp, NULL);
		op_free(o);
	} else {
		remove_finish(o->s, c, o);
	}
}

void shim_ctr_remove(struct shim *s, struct shim_call *call, const char *id)
{
	struct shim_ctr *c = shim_ctr_find(s, id);
	if (!c)
		return reply_err(call, PV_NOT_FOUND, "container %s not found", id);
	if (c->removing)
		return reply_err(call, PV_FAILED_PRECONDITION, "container %s is being removed", id);
	if (c->state == PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_UNKNOWN)
		return reply_err(call, PV_FAILED_PRECONDITION, "container %s is being created", id);
	c->removing = true;
	struct op *o = op_new(s, call, id);
	if (!s->agent)
		return remove_finish(s, c, o);
	Podvisor__Agent__RemoveContainerRequest rr = PODVISOR__AGENT__REMOVE_CONTAINER_REQUEST__INIT;
	rr.container_id = c->id;
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	areq.req_case = PODVISOR__AGENT__REQUEST__REQ_REMOVE_CONTAINER;
	areq.remove_container = &rr;
	if (agent_send(s, call, &areq, remove_done, o) < 0) {
		c->removing = false;
		op_free(o);
	}
}

void shim_ctr_reopen_log(struct shim *s, struct shim_call *call, const char *id)
{
	struct shim_ctr *c = shim_ctr_find(s, id);
	if (!c)
		return reply_err(call, PV_NOT_FOUND, "container %s not found", id);
	cleanup_err pv_err_t *err = NULL;
	if (shim_log_reopen(&c->log, &err) < 0)
		return shim_call_error(call, err);
	shim_call_ok(call);
}
