/* podvisor-shim client: spawn, connect/reconnect, framed calls, offline state. */
#include "client.h"
#include "cleanup.h"
#include "frame.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One connection to the shim; used by one call at a time. */
struct shim_conn {
	int fd;
	uint32_t next_id;
	struct pv_frame_reader rd;
	struct shim_conn *next; /* in the idle list */
};

/* Connections kept open for reuse per handle; more are opened while calls overlap. */
#define MAX_IDLE_CONNS 4

struct shim_client {
	atomic_int refs;
	pthread_mutex_t lock; /* guards idle and n_idle */
	char *sock_path;
	struct shim_conn *idle;
	size_t n_idle;
};

static char *sock_path_for(const char *dir)
{
	size_t n = strlen(dir);
	if (n > 5 && !strcmp(dir + n - 5, ".sock"))
		return pv_xstrdup(dir);
	return pv_xasprintf("%s/shim.sock", dir);
}

static int64_t ms_left(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t l = (deadline - pv_now_monotonic_ns()) / 1000000;
	return l < 0 ? 0 : l;
}

static int connect_once(const char *path, int *out, pv_err_t **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENAMETOOLONG, "shim socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = pv_err_sys(err, PV_UNAVAILABLE, "connect to shim %s", path);
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

static struct shim_conn *conn_new(int fd)
{
	struct shim_conn *k = pv_xcalloc(1, sizeof(*k));
	k->fd = fd;
	pv_frame_reader_init(&k->rd, PV_FRAME_MAX_PAYLOAD);
	return k;
}

static void conn_free(struct shim_conn *k)
{
	if (!k)
		return;
	if (k->fd >= 0)
		close(k->fd);
	pv_frame_reader_free(&k->rd);
	free(k);
}

/* An idle connection, or NULL (the caller opens one). */
static struct shim_conn *conn_take(struct shim_client *c)
{
	pthread_mutex_lock(&c->lock);
	struct shim_conn *k = c->idle;
	if (k) {
		c->idle = k->next;
		c->n_idle--;
		k->next = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	return k;
}

/* A connection whose last call completed cleanly goes back to the pool. */
static void conn_put(struct shim_client *c, struct shim_conn *k)
{
	pthread_mutex_lock(&c->lock);
	if (c->n_idle < MAX_IDLE_CONNS) {
		k->next = c->idle;
		c->idle = k;
		c->n_idle++;
		k = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	conn_free(k);
}

static struct shim_client *client_new(char *sock_path)
{
	struct shim_client *c = pv_xcalloc(1, sizeof(*c));
	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->lock, NULL);
	c->sock_path = sock_path;
	return c;
}

struct shim_client *shim_client_open(const char *state_dir)
{
	return client_new(sock_path_for(state_dir));
}

int shim_client_connect(const char *state_dir, int timeout_ms, struct shim_client **out, pv_err_t **err)
{
	cleanup_free char *path = sock_path_for(state_dir);
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	int fd = -1;
	for (;;) {
		pv_err_t *e = NULL;
		if (connect_once(path, &fd, &e) == 0)
			break;
		if ((e->errnum != ENOENT && e->errnum != ECONNREFUSED) || ms_left(deadline) == 0) {
			pv_err_move(err, e);
			return -1;
		}
		pv_err_free(e);
		struct timespec ts = { 0, 20 * 1000000 };
		nanosleep(&ts, NULL);
	}
	struct shim_client *c = client_new(steal_pointer(&path));
	conn_put(c, conn_new(fd));
	*out = c;
	return 0;
}

struct shim_client *shim_client_ref(struct shim_client *c)
{
	if (c)
		atomic_fetch_add(&c->refs, 1);
	return c;
}

void shim_client_unref(struct shim_client *c)
{
	if (!c || atomic_fetch_sub(&c->refs, 1) > 1)
		return;
	while (c->idle) {
		struct shim_conn *k = c->idle;
		c->idle = k->next;
		conn_free(k);
	}
	pthread_mutex_destroy(&c->lock);
	free(c->sock_path);
	free(c);
}

const char *shim_client_socket(const struct shim_client *c)
{
	return c->sock_path;
}

/* 0: sent; -1 with *err. */
static int send_request(struct shim_client *c, struct shim_conn *k, uint32_t id, const uint8_t *buf, size_t len,
			pv_err_t **err)
{
	uint8_t hdr[PV_FRAME_HDR_SIZE];
	struct pv_frame_hdr h = { .len = (uint32_t)len, .stream = id, .type = PV_FRAME_REQUEST };
	pv_frame_hdr_encode(&h, hdr);
	struct msghdr mh = { 0 };
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)buf, len } };
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	size_t total = sizeof(hdr) + len, done = 0;
	while (done < total) {
		ssize_t n = sendmsg(k->fd, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pv_err_sys(err, PV_UNAVAILABLE, "send to shim %s", c->sock_path);
		done += (size_t)n;
		while (n > 0 && mh.msg_iovlen) {
			if ((size_t)n >= mh.msg_iov[0].iov_len) {
				n -= (ssize_t)mh.msg_iov[0].iov_len;
				mh.msg_iov++;
				mh.msg_iovlen--;
			} else {
				mh.msg_iov[0].iov_base = (char *)mh.msg_iov[0].iov_base + n;
				mh.msg_iov[0].iov_len -= (size_t)n;
				n = 0;
			}
		}
	}
	return 0;
}

/* Wait for the RESPONSE to id. 1: got it (*out), -1: error (the connection is unusable). */
static int recv_response(struct shim_client *c, struct shim_conn *k, uint32_t id, int64_t deadline,
			 Podvisor__Shim__Response **out, pv_err_t **err)
{
	for (;;) {
		struct pv_frame_hdr h;
		const uint8_t *payload;
		pv_err_t *e = NULL;
		int r = pv_frame_reader_next(&k->rd, &h, &payload, &e);
		pv_err_free(e);
		if (r > 0) {
			if (h.type != PV_FRAME_RESPONSE || h.stream != id)
				continue;
			Podvisor__Shim__Response *resp = podvisor__shim__response__unpack(NULL, h.len, payload);
			if (!resp)
				return pv_err_set(err, PV_INTERNAL, EBADMSG, "shim %s: cannot decode response",
						  c->sock_path);
			*out = resp;
			return 1;
		}
		if (r < 0)
			continue;
		struct pollfd p = { .fd = k->fd, .events = POLLIN };
		int64_t left = ms_left(deadline);
		if (left == 0)
			return pv_err_set(err, PV_DEADLINE_EXCEEDED, ETIMEDOUT, "shim %s: no reply in time", c->sock_path);
		int pr = poll(&p, 1, left < 0 || left > INT_MAX ? -1 : (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return pv_err_sys(err, PV_INTERNAL, "poll");
		if (pr == 0)
			continue;
		int n = pv_frame_reader_read_fd(&k->rd, k->fd);
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n <= 0) {
			errno = n == 0 ? EPIPE : -n;
			return pv_err_sys(err, PV_UNAVAILABLE, "shim %s: connection lost", c->sock_path);
		}
	}
}

int shim_client_call(struct shim_client *c, const Podvisor__Shim__Request *req, int timeout_ms,
		     Podvisor__Shim__Response **resp_out, pv_err_t **err)
{
	size_t len = podvisor__shim__request__get_packed_size(req);
	if (len > PV_FRAME_MAX_PAYLOAD)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EMSGSIZE, "request too large (%zu bytes)", len);
	cleanup_free uint8_t *buf = pv_xmalloc(len ? len : 1);
	podvisor__shim__request__pack(req, buf);
	int64_t deadline = timeout_ms < 0 ? -1 : pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;

	Podvisor__Shim__Response *resp = NULL;
	struct shim_conn *k = conn_take(c);
	bool reused = k != NULL;
	for (;;) {
		pv_err_t *e = NULL;
		if (!k) {
			int fd;
			if (connect_once(c->sock_path, &fd, err) < 0)
				return -1;
			k = conn_new(fd);
		}
		uint32_t id = ++k->next_id ? k->next_id : ++k->next_id;
		if (send_request(c, k, id, buf, len, &e) < 0) {
			conn_free(k);
			k = NULL;
			if (reused) { /* an idle connection the shim has closed meanwhile: once more, fresh */
				reused = false;
				pv_err_free(e);
				continue;
			}
			pv_err_move(err, e);
			return -1;
		}
		if (recv_response(c, k, id, deadline, &resp, err) < 0) {
			conn_free(k); /* a late answer must not meet the next call */
			return -1;
		}
		break;
	}
	conn_put(c, k);
	if (resp->status) {
		int r = pv_err_set(err, (int)resp->status, (int)resp->errnum, "%s", resp->message);
		podvisor__shim__response__free_unpacked(resp, NULL);
		return r;
	}
	if (resp_out)
		*resp_out = resp;
	else
		podvisor__shim__response__free_unpacked(resp, NULL);
	return 0;
}

int shim_client_watch(struct shim_client *c, uint64_t since, int timeout_ms, Podvisor__Shim__Response **resp,
		      pv_err_t **err)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__WatchRequest wr = PODVISOR__SHIM__WATCH_REQUEST__INIT;
	wr.since = since;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_WATCH;
	req.watch = &wr;
	return shim_client_call(c, &req, timeout_ms, resp, err);
}

void shim_client_free_response(Podvisor__Shim__Response *resp)
{
	if (resp)
		podvisor__shim__response__free_unpacked(resp, NULL);
}

/* ---- typed wrappers ------------------------------------------------------------- */

#define CALL_TIMEOUT_MS 60000

int shim_client_status(struct shim_client *c, Podvisor__Shim__Response **resp, pv_err_t **err)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__StatusRequest sr = PODVISOR__SHIM__STATUS_REQUEST__INIT;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_STATUS;
	req.status = &sr;
	return shim_client_call(c, &req, CALL_TIMEOUT_MS, resp, err);
}

int shim_client_create_container(struct shim_client *c, const Podvisor__Shim__CreateContainerRequest *r,
				 Podvisor__Shim__Response **resp, pv_err_t **err)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_CREATE_CONTAINER;
	req.create_container = (Podvisor__Shim__CreateContainerRequest *)r;
	return shim_client_call(c, &req, CALL_TIMEOUT_MS * 2, resp, err);
}

int shim_client_start_container(struct shim_client *c, const char *id, Podvisor__Shim__Response **resp,
				pv_err_t **err)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__StartContainerRequest sr = PODVISOR__SHIM__START_CONTAINER_REQUEST__INIT;
	sr.container_id = (char *)id;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_START_CONTAINER;
	req.start_container = &sr;
	return shim_client_call(c, &req, CALL_TIMEOUT_MS, resp, err);
}

int shim_client_signal(struct shim_client *c, const char *id, int sig, int all, pv_err_t **err)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__SignalRequest sr = PODVISOR__SHIM__SIGNAL_REQUEST__INIT;
	sr.container_id = (char *)id;
	sr.signal = (uint32_t)sig;
	sr.all = all;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_SIGNAL;
	req.signal = &sr;
	return shim_client_call(c, &req, CALL_TIMEOUT_MS, NULL, err);
}

int shim_client_wait(struct shim_client *c, const char *id, int timeout_ms, Podvisor__Shim__Response **resp,
		     pv_err_t **err)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__WaitRequest wr = PODVISOR__SHIM__WAIT_REQUEST__INIT;
	wr.container_id = (char *)id;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_WAIT;
	req.wait = &wr;
	return shim_client_call(c, &req, timeout_ms, resp, err);
}

int shim_client_remove_container(struct shim_client *c, const char *id, pv_err_t **err)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__RemoveContainerRequest rr = PODVISOR__SHIM__REMOVE_CONTAINER_REQUEST__INIT;
	rr.container_id = (char *)id;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_REMOVE_CONTAINER;
	req.remove_container = &rr;
	return shim_client_call(c, &req, CALL_TIMEOUT_MS, NULL, err);
}

int shim_client_exec(struct shim_client *c, const Podvisor__Shim__ExecRequest *r, Podvisor__Shim__Response **resp,
		     pv_err_t **err)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_EXEC;
	req.exec = (Podvisor__Shim__ExecRequest *)r;
	/* The shim enforces r->timeout_ms itself; leave it room to answer. */
	return shim_client_call(c, &req, r->timeout_ms ? (int)r->timeout_ms + CALL_TIMEOUT_MS : -1, resp, err);
}

int shim_client_reopen_log(struct shim_client *c, const char *id, pv_err_t **err)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__ReopenLogRequest rr = PODVISOR__SHIM__REOPEN_LOG_REQUEST__INIT;
	rr.container_id = (char *)id;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_REOPEN_LOG;
	req.reopen_log = &rr;
	return shim_client_call(c, &req, CALL_TIMEOUT_MS, NULL, err);
}

int shim_client_stats(struct shim_client *c, const char *id, Podvisor__Shim__Response **resp, pv_err_t **err)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__StatsRequest sr = PODVISOR__SHIM__STATS_REQUEST__INIT;
	sr.container_id = (char *)id;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_STATS;
	req.stats = &sr;
	return shim_client_call(c, &req, CALL_TIMEOUT_MS, resp, err);
}

int shim_client_shutdown(struct shim_client *c, int timeout_ms, pv_err_t **err)
{
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	Podvisor__Shim__ShutdownRequest sr = PODVISOR__SHIM__SHUTDOWN_REQUEST__INIT;
	sr.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_SHUTDOWN;
	req.shutdown = &sr;
	return shim_client_call(c, &req, (timeout_ms > 0 ? timeout_ms : 10000) + CALL_TIMEOUT_MS, NULL, err);
}

/* ---- spawn ---------------------------------------------------------------------- */

static char *default_shim_binary(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			char *cand = pv_xasprintf("%s/podvisor-shim", self);
			if (access(cand, X_OK) == 0)
				return cand;
			free(cand);
		}
	}
	return pv_xstrdup("podvisor-shim");
}

struct argv_list {
	char *v[64];
	int n;
};

static void arg(struct argv_list *a, const char *flag, const char *val)
{
	if (!val || a->n + 3 >= (int)PV_ARRAY_SIZE(a->v))
		return;
	a->v[a->n++] = pv_xstrdup(flag);
	a->v[a->n++] = pv_xstrdup(val);
}

static void argu(struct argv_list *a, const char *flag, unsigned long long v)
{
	if (!v)
		return;
	char buf[32];
	snprintf(buf, sizeof(buf), "%llu", v);
	arg(a, flag, buf);
}

static void spawn_child(char **argv, const char *shim_log, int ready_w)
{
	/* Intermediate child: new session, fork the shim, exit, so the shim is nobody's child. */
	setsid();
	pid_t pid = fork();
	if (pid != 0)
		_exit(pid < 0 ? 127 : 0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int logfd = open(shim_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (devnull < 0 || logfd < 0)
		_exit(126);
	dup2(devnull, 0);
	dup2(logfd, 1);
	dup2(logfd, 2);
	int fl = fcntl(ready_w, F_GETFD);
	fcntl(ready_w, F_SETFD, fl & ~FD_CLOEXEC);
	execvp(argv[0], argv);
	dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int shim_client_spawn(const struct shim_spawn_opts *o, pid_t *shim_pid, pv_err_t **err)
{
	if (!o->state_dir || !o->kernel || !o->initramfs)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "spawn shim: state_dir, kernel, initramfs needed");
	if (pv_mkdir_p(o->state_dir, 0750, err) < 0)
		return -1;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return pv_err_sys(err, PV_INTERNAL, "pipe");
	struct argv_list a = { .n = 0 };
	a.v[a.n++] = o->shim_binary ? pv_xstrdup(o->shim_binary) : default_shim_binary();
	arg(&a, "--state-dir", o->state_dir);
	arg(&a, "--kernel", o->kernel);
	arg(&a, "--initramfs", o->initramfs);
	arg(&a, "--name", o->name);
	arg(&a, "--accel", o->accel);
	arg(&a, "--kernel-args", o->kernel_args);
	arg(&a, "--machine", o->machine);
	arg(&a, "--arch", o->arch);
	arg(&a, "--qemu", o->qemu);
	arg(&a, "--qemu-img", o->qemu_img);
	arg(&a, "--tap", o->tap);
	arg(&a, "--mac", o->mac);
	arg(&a, "--netns", o->netns);
	arg(&a, "--veth", o->veth);
	arg(&a, "--share-dir", o->share_dir);
	arg(&a, "--disk-dir", o->disk_dir);
	argu(&a, "--disk-size-mib", o->disk_size_mib);
	arg(&a, "--log-level", o->log_level);
	argu(&a, "--vcpus", o->vcpus);
	argu(&a, "--memory-mib", o->memory_mib);
	argu(&a, "--tcg-tb-size", o->tcg_tb_size_mib);
	argu(&a, "--boot-timeout-ms", (unsigned long long)(o->boot_timeout_ms > 0 ? o->boot_timeout_ms : 0));
	argu(&a, "--stop-timeout-ms", (unsigned long long)(o->stop_timeout_ms > 0 ? o->stop_timeout_ms : 0));
	if (o->heartbeat_ms < 0)
		arg(&a, "--heartbeat-ms", "0");
	else
		argu(&a, "--heartbeat-ms", (unsigned long long)o->heartbeat_ms);
	char fdbuf[16];
	snprintf(fdbuf, sizeof(fdbuf), "%d", p[1]);
	arg(&a, "--ready-fd", fdbuf);
	a.v[a.n] = NULL;
	cleanup_free char *shim_log = pv_xasprintf("%s/shim.log", o->state_dir);

	int r = -1;
	pid_t mid = fork();
	if (mid < 0) {
		pv_err_sys(err, PV_INTERNAL, "fork");
		close(p[1]);
		goto out;
	}
	if (mid == 0)
		spawn_child(a.v, shim_log, p[1]);
	close(p[1]);
	while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
		;
	/* The shim writes one line when its pod is ready or has failed, then closes. */
	char buf[8192];
	ssize_t n = pv_read_full(p[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	json_t *j = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	if (!j) {
		cleanup_free char *tail = NULL;
		size_t len;
		if (pv_read_file(shim_log, 1 << 20, &tail, &len, NULL) == 0 && len > 2000)
			memmove(tail, tail + len - 2000, 2001);
		pv_err_set(err, PV_INTERNAL, EIO, "shim exited during start-up (%s: %s)", shim_log, tail ? tail : "");
	} else if (!json_is_true(json_object_get(j, "ok"))) {
		int st = (int)json_integer_value(json_object_get(j, "status"));
		pv_err_set(err, st ? st : PV_UNKNOWN, EIO, "%s", json_string_value(json_object_get(j, "message")));
	} else {
		if (shim_pid)
			*shim_pid = (pid_t)json_integer_value(json_object_get(j, "shim_pid"));
		r = 0;
	}
	json_decref(j);
out:
	close(p[0]);
	for (int i = 0; i < a.n; i++)
		free(a.v[i]);
	return r;
}

/* ---- offline state --------------------------------------------------------------- */

static void set_str(char **field, const char *v)
{
	if (*field && *field != protobuf_c_empty_string)
		free(*field);
	*field = pv_xstrdup(v);
}

int shim_client_alive(pid_t pid)
{
	if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
		return 0;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	cleanup_free char *cmd = NULL;
	size_t len;
	if (pv_read_file(path, 1 << 16, &cmd, &len, NULL) < 0)
		return 0;
	/* A reused pid is not our shim. */
	return strstr(cmd, "podvisor-shim") != NULL;
}

int shim_client_read_state(const char *state_dir, Podvisor__Shim__StatusResponse **out, pv_err_t **err)
{
	cleanup_free char *path = pv_xasprintf("%s/state.pb", state_dir);
	cleanup_free char *buf = NULL;
	size_t len;
	if (pv_read_file(path, 16 << 20, &buf, &len, err) < 0)
		return -1;
	Podvisor__Shim__StatusResponse *st =
		podvisor__shim__status_response__unpack(NULL, len, (const uint8_t *)buf);
	if (!st)
		return pv_err_set(err, PV_DATA_LOSS, EBADMSG, "%s: cannot decode", path);
	bool stopped = st->state == PODVISOR__SHIM__POD_STATE__POD_STOPPED ||
		       st->state == PODVISOR__SHIM__POD_STATE__POD_NOTREADY;
	if (!stopped && !shim_client_alive((pid_t)st->shim_pid)) {
		st->state = PODVISOR__SHIM__POD_STATE__POD_NOTREADY;
		set_str(&st->reason, "shim process is gone");
		for (size_t i = 0; i < st->n_containers; i++) {
			Podvisor__Shim__ContainerStatus *c = st->containers[i];
			if (c->state == PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_EXITED)
				continue;
			c->state = PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_EXITED;
			c->exit_code = 255;
			set_str(&c->reason, "ShimExited");
			set_str(&c->message, "the pod's shim process is gone");
		}
	}
	*out = st;
	return 0;
}

const char *shim_client_pod_state_name(Podvisor__Shim__PodState s)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&podvisor__shim__pod_state__descriptor, s);
	return v ? v->name + 4 : "UNKNOWN"; /* strip "POD_" */
}

const char *shim_client_ctr_state_name(Podvisor__Shim__ContainerState s)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&podvisor__shim__container_state__descriptor, s);
	return v ? v->name + 10 : "UNKNOWN"; /* strip "CONTAINER_" */
}
