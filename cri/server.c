/*
 * CRI gRPC server on the gRPC C core API.
 *
 * The main thread owns one "next" completion queue on which new calls are
 * announced. Each admitted call gets its own thread and its own "pluck"
 * queue for its batches, so a slow handler (PullImage) never delays a fast
 * one (Version). Requests and responses are protobuf-c messages; responses
 * live in a per-call arena freed after the reply is sent.
 */
#include "server.h"
#include "arena.h"
#include "bounds.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define TAG_NEW_CALL ((void *)1)
#define TAG_SHUTDOWN ((void *)2)
#define TAG_BATCH ((void *)3)
#define TAG_CLOSE ((void *)4)

struct cri_server {
	struct pv_daemon *daemon;
	grpc_server *server;
	grpc_completion_queue *cq;
	char *socket_path;
	int max_calls;
	atomic_int shutting_down;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int active; /* calls whose worker thread is running */
	int grace_ms;
	pthread_t grace_thread;
	int grace_started;
	struct cri_call *pending; /* the call slot armed with request_call */
};

struct cri_call {
	struct cri_server *srv;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array request_md;
	grpc_completion_queue *cq;
	struct cri_arena arena;
	char *method;
	int sent_initial_md;
	int close_seen;
	int client_cancelled;
};

void *cri_call_alloc(struct cri_call *call, size_t size)
{
	return cri_arena_alloc(&call->arena, size);
}

char *cri_call_strdup(struct cri_call *call, const char *s)
{
	return cri_arena_strdup(&call->arena, s);
}

void cri_call_reset_arena(struct cri_call *call)
{
	cri_arena_free(&call->arena);
}

struct pv_daemon *cri_call_daemon(struct cri_call *call)
{
	return call->srv->daemon;
}

const char *cri_call_method(struct cri_call *call)
{
	return call->method;
}

static gpr_timespec deadline_ms(int ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Run one batch on the call's own queue and wait for it. Returns 1 on success. */
static int call_batch(struct cri_call *c, grpc_op *ops, size_t n)
{
	grpc_call_error e = grpc_call_start_batch(c->call, ops, n, TAG_BATCH, NULL);
	if (e != GRPC_CALL_OK)
		return 0;
	grpc_event ev = grpc_completion_queue_pluck(c->cq, TAG_BATCH, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	return ev.type == GRPC_OP_COMPLETE && ev.success;
}

int cri_call_cancelled(struct cri_call *c)
{
	if (atomic_load(&c->srv->shutting_down))
		return 1;
	if (!c->close_seen) {
		grpc_event ev = grpc_completion_queue_pluck(c->cq, TAG_CLOSE, gpr_time_0(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_OP_COMPLETE)
			c->close_seen = 1;
	}
	return c->close_seen;
}

static grpc_byte_buffer *pack_message(const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	grpc_slice slice = grpc_slice_malloc(len);
	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	return bb;
}

int cri_call_send(struct cri_call *c, const ProtobufCMessage *msg)
{
	if (cri_call_cancelled(c))
		return -1;
	grpc_op ops[2];
	memset(ops, 0, sizeof(ops));
	size_t n = 0;
	if (!c->sent_initial_md) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->sent_initial_md = 1;
	}
	grpc_byte_buffer *bb = pack_message(msg);
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n++].data.send_message.send_message = bb;
	int ok = call_batch(c, ops, n);
	grpc_byte_buffer_destroy(bb);
	return ok ? 0 : -1;
}

/* Final batch: optional response message, then the status. */
static void call_finish(struct cri_call *c, const ProtobufCMessage *resp, int status, const char *msg)
{
	grpc_op ops[3];
	memset(ops, 0, sizeof(ops));
	size_t n = 0;
	grpc_byte_buffer *bb = NULL;
	if (!c->sent_initial_md) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->sent_initial_md = 1;
	}
	if (resp) {
		bb = pack_message(resp);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = bb;
	}
	grpc_slice details = grpc_slice_from_copied_string(msg ? msg : "");
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)status;
	ops[n++].data.send_status_from_server.status_details = &details;
	call_batch(c, ops, n);
	grpc_slice_unref(details);
	if (bb)
		grpc_byte_buffer_destroy(bb);
}

/* Read the single request message; NULL data with *len 0 means none came. */
static int call_read_request(struct cri_call *c, grpc_slice *out)
{
	grpc_byte_buffer *bb = NULL;
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &bb;
	if (!call_batch(c, &op, 1) || !bb)
		return -1;
	grpc_byte_buffer_reader reader;
	if (!grpc_byte_buffer_reader_init(&reader, bb)) {
		grpc_byte_buffer_destroy(bb);
		return -1;
	}
	*out = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	grpc_byte_buffer_destroy(bb);
	return 0;
}

/* The call's error as its status: logged, and its message cut to what a client's metadata takes. */
static void call_fail(struct cri_call *c, const pv_err_t *err, long ms)
{
	int status = err ? err->status : PV_UNKNOWN;
	cleanup_free char *msg = pv_err_msg_cut(err ? err->msg : "handler failed without an error", PV_ERR_WIRE_MAX);
	pv_log(status == PV_NOT_FOUND ? PV_LOG_DEBUG : PV_LOG_WARN, "call failed", "method=%s status=%s ms=%ld error=%s",
	       c->method, pv_status_name(status), ms, msg);
	call_finish(c, NULL, status, msg);
}

static void call_dispatch(struct cri_call *c)
{
	const struct cri_method *m = cri_method_find(c->method);
	if (!m) {
		cleanup_free char *msg = pv_xasprintf("unknown method %s", c->method);
		call_finish(c, NULL, PV_UNIMPLEMENTED, msg);
		return;
	}
	if (!m->handler) {
		cleanup_free char *msg = pv_xasprintf("%s is not implemented by podvisor yet", c->method + 1);
		call_finish(c, NULL, PV_UNIMPLEMENTED, msg);
		return;
	}
	grpc_slice raw;
	if (call_read_request(c, &raw) < 0) {
		call_finish(c, NULL, PV_INVALID_ARGUMENT, "no request message received");
		return;
	}
	ProtobufCMessage *req = protobuf_c_message_unpack(m->request, NULL, GRPC_SLICE_LENGTH(raw),
							  GRPC_SLICE_START_PTR(raw));
	if (!req) {
		grpc_slice_unref(raw);
		cleanup_free char *msg = pv_xasprintf("cannot decode request as %s", m->request->name);
		pv_warn("bad request", "method=%s error=%s", c->method, msg);
		call_finish(c, NULL, PV_INVALID_ARGUMENT, msg);
		return;
	}
	/* No handler sees a string with a NUL in it, or a field beyond its bounds (cri/bounds.h). */
	pv_err_t *err = NULL;
	int bad = cri_wire_check_strings(m->request, GRPC_SLICE_START_PTR(raw), GRPC_SLICE_LENGTH(raw), &err) < 0 ||
		  cri_bounds_check(req, &err) < 0;
	grpc_slice_unref(raw);
	if (bad) {
		protobuf_c_message_free_unpacked(req, NULL);
		call_fail(c, err, 0);
		pv_err_free(err);
		return;
	}
	ProtobufCMessage *resp = NULL;
	int64_t t0 = pv_now_monotonic_ns();
	int r = m->handler(c, req, &resp, &err);
	protobuf_c_message_free_unpacked(req, NULL);
	long ms = (long)((pv_now_monotonic_ns() - t0) / 1000000);
	if (r < 0) {
		call_fail(c, err, ms);
	} else {
		pv_debug("call done", "method=%s ms=%ld", c->method, ms);
		call_finish(c, m->server_streaming ? NULL : resp, PV_OK, "");
	}
	pv_err_free(err);
}

static struct cri_call *call_new(struct cri_server *s)
{
	struct cri_call *c = pv_xcalloc(1, sizeof(*c));
	c->srv = s;
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->request_md);
	c->cq = grpc_completion_queue_create_for_pluck(NULL);
	return c;
}

static void call_free(struct cri_call *c)
{
	if (!c)
		return;
	if (c->call)
		grpc_call_unref(c->call);
	grpc_completion_queue_shutdown(c->cq);
	while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(c->cq);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->request_md);
	cri_arena_free(&c->arena);
	free(c->method);
	free(c);
}

static void *call_thread(void *arg)
{
	struct cri_call *c = arg;
	struct cri_server *s = c->srv;
	/* Watch for the client going away while the handler runs. */
	grpc_op close_op;
	memset(&close_op, 0, sizeof(close_op));
	close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	close_op.data.recv_close_on_server.cancelled = &c->client_cancelled;
	int close_armed = grpc_call_start_batch(c->call, &close_op, 1, TAG_CLOSE, NULL) == GRPC_CALL_OK;

	call_dispatch(c);

	if (close_armed && !c->close_seen)
		grpc_completion_queue_pluck(c->cq, TAG_CLOSE, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	call_free(c);

	pthread_mutex_lock(&s->lock);
	if (--s->active == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int arm_request(struct cri_server *s)
{
	s->pending = call_new(s);
	grpc_call_error e = grpc_server_request_call(s->server, &s->pending->call, &s->pending->details,
						     &s->pending->request_md, s->pending->cq, s->cq, TAG_NEW_CALL);
	if (e != GRPC_CALL_OK) {
		call_free(s->pending);
		s->pending = NULL;
		return -1;
	}
	return 0;
}

static void admit_call(struct cri_server *s, struct cri_call *c)
{
	c->method = grpc_slice_to_c_string(c->details.method);
	pthread_mutex_lock(&s->lock);
	int over = s->active >= s->max_calls;
	if (!over)
		s->active++;
	pthread_mutex_unlock(&s->lock);
	if (over) {
		pv_warn("call refused", "method=%s reason=too_many_calls limit=%d", c->method, s->max_calls);
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
					     "podvisord: too many concurrent calls", NULL);
		call_free(c);
		return;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 512 * 1024);
	pthread_t tid;
	if (pthread_create(&tid, &attr, call_thread, c) != 0) {
		pv_error("cannot start call thread", "method=%s", c->method);
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
					     "podvisord: cannot start a thread for the call", NULL);
		call_free(c);
		pthread_mutex_lock(&s->lock);
		s->active--;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_attr_destroy(&attr);
}

/* A socket file with a live listener belongs to another server: never steal it. */
static int claim_socket_path(const char *path, pv_err_t **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	struct stat st;
	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return pv_err_set(err, PV_FAILED_PRECONDITION, EEXIST, "%s exists and is not a socket", path);
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return pv_err_set(err, PV_ALREADY_EXISTS, EADDRINUSE,
				  "another server is listening on %s (is podvisord already running?)", path);
	if (unlink(path) < 0)
		return pv_err_sys(err, PV_INTERNAL, "remove stale socket %s", path);
	return 0;
}

int cri_server_start(struct pv_daemon *d, const char *socket_path, int max_calls,
		     struct cri_server **out, pv_err_t **err)
{
	cleanup_free char *dir = pv_xstrdup(socket_path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (pv_mkdir_p(dir, 0711, err) < 0)
			return -1;
	}
	if (claim_socket_path(socket_path, err) < 0)
		return -1;

	struct cri_server *s = pv_xcalloc(1, sizeof(*s));
	s->daemon = d;
	s->max_calls = max_calls > 0 ? max_calls : 1024;
	s->socket_path = pv_xstrdup(socket_path);
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->idle, &ca);
	pthread_condattr_destroy(&ca);
	grpc_init();
	s->server = grpc_server_create(NULL, NULL);
	s->cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(s->server, s->cq, NULL);
	cleanup_free char *addr = pv_xasprintf("unix:%s", socket_path);
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	int port = grpc_server_add_http2_port(s->server, addr, creds);
	grpc_server_credentials_release(creds);
	if (port == 0) {
		pv_err_set(err, PV_INTERNAL, EADDRNOTAVAIL, "cannot listen on %s", socket_path);
		atomic_store(&s->shutting_down, 1);
		grpc_server_shutdown_and_notify(s->server, s->cq, TAG_SHUTDOWN);
		while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).tag != TAG_SHUTDOWN)
			;
		cri_server_free(s);
		return -1;
	}
	grpc_server_start(s->server);
	chmod(socket_path, 0660);
	*out = s;
	return 0;
}

void cri_server_run(struct cri_server *s)
{
	arm_request(s);
	int shutdown_done = 0;
	while (!shutdown_done) {
		grpc_event ev = grpc_completion_queue_next(s->cq, deadline_ms(200), NULL);
		if (ev.type == GRPC_QUEUE_TIMEOUT)
			continue;
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.tag == TAG_SHUTDOWN) {
			shutdown_done = 1;
		} else if (ev.tag == TAG_NEW_CALL) {
			struct cri_call *c = s->pending;
			s->pending = NULL;
			if (ev.success)
				admit_call(s, c);
			else
				call_free(c);
			if (!atomic_load(&s->shutting_down))
				arm_request(s);
		}
	}
	/* All calls have sent their status; wait for their threads to let go. */
	pthread_mutex_lock(&s->lock);
	while (s->active > 0)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

static void *cancel_after_grace(void *arg)
{
	struct cri_server *s = arg;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += s->grace_ms / 1000;
	until.tv_nsec += (long)(s->grace_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->lock);
	int r = 0;
	while (s->active > 0 && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&s->idle, &s->lock, &until);
	int left = s->active;
	pthread_mutex_unlock(&s->lock);
	if (left > 0) {
		pv_warn("cancelling calls still running after grace period", "calls=%d", left);
		grpc_server_cancel_all_calls(s->server);
	}
	return NULL;
}

void cri_server_shutdown(struct cri_server *s, int grace_ms)
{
	if (atomic_exchange(&s->shutting_down, 1))
		return;
	s->grace_ms = grace_ms;
	grpc_server_shutdown_and_notify(s->server, s->cq, TAG_SHUTDOWN);
	s->grace_started = pthread_create(&s->grace_thread, NULL, cancel_after_grace, s) == 0;
}

void cri_server_free(struct cri_server *s)
{
	if (!s)
		return;
	if (s->grace_started)
		pthread_join(s->grace_thread, NULL);
	grpc_server_destroy(s->server);
	grpc_completion_queue_shutdown(s->cq);
	while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(s->cq);
	if (s->pending)
		call_free(s->pending);
	unlink(s->socket_path);
	free(s->socket_path);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->idle);
	free(s);
	grpc_shutdown();
}
