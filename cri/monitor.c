/*
 * The monitor: the one writer of container state in the store.
 *
 * One thread follows every pod's shim with a long-lived Watch on a connection of its
 * own (non-blocking, all pods in one epoll set): the shim answers a Watch as soon as its
 * state changes (a container created, started, exited; the VM or agent lost), and the
 * monitor folds that state into the store and emits the container events. When the
 * connection ends, the shim is gone: its last state file (shim/state.c) says how things
 * ended, and a shim that died without writing it leaves its containers EXITED
 * ("ShimExited") and its pod NOTREADY. Nothing here blocks on a shim, so one slow or
 * hung pod delays no other.
 *
 * Handlers never write container state. One that must see the effect of its own call
 * (StartContainer returns RUNNING, StopContainer returns EXITED) waits with
 * cri_monitor_wait_seq() for the seq the shim put in its answer; StopPodSandbox waits
 * with cri_monitor_settle() until the shim's final state is folded.
 *
 * Lifetimes: a `struct mon_pod` belongs to the monitor thread from FOLLOW to FORGET;
 * m->lock guards the command queue and the fields waiters read (since, ended); the
 * connection (fd, reader) is the thread's alone.
 */
#include "runtime.h"
#include "cleanup.h"
#include "config.h"
#include "frame.h"
#include "image/store.h"
#include "log.h"
#include "util.h"

#include "../shim/client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A dropped connection to a live shim is retried after this long. */
#define RECONNECT_MS 200
/* Start-up waits this long, at most, for the pods' first folds. */
#define RECOVERY_WAIT_MS 10000

enum mon_cmd_kind { CMD_FOLLOW, CMD_RECOVER, CMD_SETTLE, CMD_FORGET };

struct mon_cmd {
	enum mon_cmd_kind kind;
	char *pod_id;
	struct mon_cmd *next;
};

struct mon_pod {
	char *id;
	char *dir;
	int fd;                   /* the Watch connection, -1 when none */
	struct pv_frame_reader rd;
	uint32_t req_id;
	int64_t retry_at_ns;      /* reconnect after a dropped connection; 0: none due */
	/* read by waiters under m->lock */
	uint64_t since;           /* the last shim seq folded into the store */
	bool ended;               /* the shim is gone and its final state is folded */
	bool reconcile;           /* followed at start-up: the first fold also settles what the
				   * store has and the shim does not (a create podvisord died in) */
	struct mon_pod *next;
};

struct cri_monitor {
	struct pv_daemon *d;
	pthread_t thread;
	bool running;
	int epfd, evfd;
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* broadcast after every fold and at stop */
	struct mon_cmd *cmds, **cmds_tail;
	struct mon_pod *pods;     /* list changes under lock */
	bool stop;
};

/* ---- folding a shim's state into the store ---------------------------------------- */

static int str_differs(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v && *v ? pv_xstrdup(v) : NULL;
}

/* Fold the shim's view of one container into the store; emit events on transitions. */
static void fold_ctr(struct pv_daemon *d, struct pv_ctr *c, const Podvisor__Shim__ContainerStatus *cs)
{
	if (c->st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
		return; /* final: a late or replayed status must not resurrect it */
	struct pv_ctr_state st;
	pv_ctr_state_copy(&st, &c->st);
	/* The shim's UNKNOWN (disk being attached) is still CREATED to the CRI. */
	if (cs->state != PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_UNKNOWN)
		st.state = (int)cs->state;
	if (cs->started_at_ns)
		st.started_ns = cs->started_at_ns;
	if (cs->finished_at_ns)
		st.finished_ns = cs->finished_at_ns;
	st.exit_code = cs->exit_code;
	set_str(&st.reason, cs->reason);
	set_str(&st.message, cs->message);
	if (st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED && !st.finished_ns)
		st.finished_ns = pv_now_realtime_ns();
	int changed = st.state != c->st.state || st.exit_code != c->st.exit_code ||
		      st.started_ns != c->st.started_ns || st.finished_ns != c->st.finished_ns ||
		      str_differs(st.reason, c->st.reason) || str_differs(st.message, c->st.message);
	cleanup_err pv_err_t *e = NULL;
	if (changed && pv_store_ctr_set_state(d->store, c->id, &st, &e) < 0) {
		if (e->status != PV_NOT_FOUND) /* not removed meanwhile */
			pv_warn("cannot record container state", "container=%s error=%s", c->id, e->msg);
	} else if (changed) {
		int was = c->st.state;
		if (was == RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED && st.started_ns &&
		    (st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING ||
		     st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED))
			cri_events_emit(d, c->id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT);
		if (st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
			pv_info("container exited", "container=%s exit_code=%d reason=%s", c->id, st.exit_code,
				st.reason ? st.reason : "");
			cri_events_emit(d, c->id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
		}
		/* the caller's snapshot follows the store, so a second look sees the change */
		pv_ctr_state_clear(&c->st);
		c->st = st;
		return;
	}
	pv_ctr_state_clear(&st);
}

/* A container the shim does not know (or a pod without a VM) cannot run any more. */
static void mark_gone(struct pv_daemon *d, struct pv_ctr *c, const char *reason)
{
	if (c->st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
		return;
	Podvisor__Shim__ContainerStatus cs = PODVISOR__SHIM__CONTAINER_STATUS__INIT;
	cs.id = c->id;
	cs.state = PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_EXITED;
	cs.exit_code = c->st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING ? 137 : 0;
	cs.started_at_ns = c->st.started_ns;
	cs.reason = (char *)reason;
	cs.message = strcmp(reason, "CreateInterrupted") ? "the pod's VM is no longer running"
							  : "podvisord stopped while creating the container";
	fold_ctr(d, c, &cs);
}

static bool pod_down(const Podvisor__Shim__StatusResponse *st)
{
	return !st || st->state == PODVISOR__SHIM__POD_STATE__POD_NOTREADY ||
	       st->state == PODVISOR__SHIM__POD_STATE__POD_STOPPED;
}

/* Bring the store in line with the shim's state st (NULL: nothing is known). reconcile:
 * a container the store has and the shim does not never got to the shim (podvisord died
 * while creating it), so it cannot run. */
static void fold_pod(struct pv_daemon *d, const char *pod_id, const Podvisor__Shim__StatusResponse *st,
		     bool reconcile)
{
	struct pv_pod *p = NULL;
	if (pv_store_pod_get(d->store, pod_id, &p, NULL) < 0)
		return; /* removed meanwhile */
	const char *why = st && st->reason && *st->reason ? st->reason : "ShimExited";
	size_t n;
	struct pv_ctr **ctrs = pv_store_ctr_list(d->store, &n);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ctrs[i]->pod_id, pod_id))
			continue;
		const Podvisor__Shim__ContainerStatus *cs = NULL;
		for (size_t j = 0; st && j < st->n_containers; j++)
			if (!strcmp(st->containers[j]->id, ctrs[i]->id))
				cs = st->containers[j];
		if (cs)
			fold_ctr(d, ctrs[i], cs);
		if (pod_down(st)) /* whatever the shim said last, nothing runs in a dead VM */
			mark_gone(d, ctrs[i], cs && cs->reason && *cs->reason ? cs->reason : why);
		else if (!cs && reconcile)
			mark_gone(d, ctrs[i], "CreateInterrupted");
	}
	pv_ctr_list_free(ctrs, n);
	if (p->st.ready && pod_down(st)) {
		pv_warn("pod not ready", "pod=%s reason=%s", pod_id, why);
		cleanup_err pv_err_t *e = NULL;
		if (pv_store_pod_set_ready(d->store, pod_id, 0, why, &e) < 0)
			pv_warn("cannot record pod state", "pod=%s error=%s", pod_id, e->msg);
	}
	pv_pod_free(p);
}

/* The shim is gone (or was never reached): fold what its state file says. */
static void fold_offline(struct pv_daemon *d, struct mon_pod *mp)
{
	Podvisor__Shim__StatusResponse *st = NULL;
	cleanup_err pv_err_t *e = NULL;
	if (shim_client_read_state(mp->dir, &st, &e) < 0)
		pv_debug("no shim state file", "pod=%s error=%s", mp->id, e->msg);
	fold_pod(d, mp->id, st, false);
	mp->reconcile = false;
	if (st)
		podvisor__shim__status_response__free_unpacked(st, NULL);
}

/* ---- the Watch connections ---------------------------------------------------------- */

static void conn_close(struct cri_monitor *m, struct mon_pod *mp)
{
	if (mp->fd < 0)
		return;
	epoll_ctl(m->epfd, EPOLL_CTL_DEL, mp->fd, NULL);
	close(mp->fd);
	mp->fd = -1;
	pv_frame_reader_reset(&mp->rd);
}

static int send_watch(struct mon_pod *mp, pv_err_t **err)
{
	Podvisor__Shim__WatchRequest wr = PODVISOR__SHIM__WATCH_REQUEST__INIT;
	wr.since = mp->since;
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_WATCH;
	req.watch = &wr;
	uint8_t buf[PV_FRAME_HDR_SIZE + 64];
	size_t len = podvisor__shim__request__get_packed_size(&req);
	mp->req_id = mp->req_id + 1 ? mp->req_id + 1 : 1;
	struct pv_frame_hdr h = { .len = (uint32_t)len, .stream = mp->req_id, .type = PV_FRAME_REQUEST };
	pv_frame_hdr_encode(&h, buf);
	podvisor__shim__request__pack(&req, buf + PV_FRAME_HDR_SIZE);
	/* One small request on an otherwise idle socket: it fits, or the shim is not reading. */
	ssize_t n = send(mp->fd, buf, PV_FRAME_HDR_SIZE + len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != (ssize_t)(PV_FRAME_HDR_SIZE + len))
		return pv_err_sys(err, PV_UNAVAILABLE, "send Watch to the shim of pod %s", mp->id);
	return 0;
}

static int conn_open(struct cri_monitor *m, struct mon_pod *mp, pv_err_t **err)
{
	cleanup_free char *path = pv_xasprintf("%s/shim.sock", mp->dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENAMETOOLONG, "shim socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return pv_err_sys(err, PV_UNAVAILABLE, "connect to %s", path);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = mp };
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return pv_err_sys(err, PV_INTERNAL, "epoll_ctl");
	mp->fd = steal_fd(&fd);
	if (send_watch(mp, err) < 0) {
		conn_close(m, mp);
		return -1;
	}
	return 0;
}

static void mark_ended(struct cri_monitor *m, struct mon_pod *mp)
{
	pthread_mutex_lock(&m->lock);
	mp->ended = true;
	mp->retry_at_ns = 0;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* The connection could not be made or broke: a live shim is retried, a gone one settled. */
static void conn_lost(struct cri_monitor *m, struct mon_pod *mp, const char *why)
{
	conn_close(m, mp);
	Podvisor__Shim__StatusResponse *st = NULL;
	bool live = shim_client_read_state(mp->dir, &st, NULL) == 0 &&
		    st->state != PODVISOR__SHIM__POD_STATE__POD_STOPPED && shim_client_alive((pid_t)st->shim_pid);
	if (st)
		podvisor__shim__status_response__free_unpacked(st, NULL);
	if (live) {
		pv_debug("shim connection lost, reconnecting", "pod=%s error=%s", mp->id, why);
		mp->retry_at_ns = pv_now_monotonic_ns() + RECONNECT_MS * 1000000LL;
		return;
	}
	fold_offline(m->d, mp);
	pv_debug("shim gone", "pod=%s", mp->id);
	mark_ended(m, mp);
}

static void conn_start(struct cri_monitor *m, struct mon_pod *mp)
{
	cleanup_err pv_err_t *e = NULL;
	mp->retry_at_ns = 0;
	if (conn_open(m, mp, &e) < 0)
		conn_lost(m, mp, e->msg);
}

static void on_answer(struct cri_monitor *m, struct mon_pod *mp, const uint8_t *payload, size_t len)
{
	Podvisor__Shim__Response *r = podvisor__shim__response__unpack(NULL, len, payload);
	if (!r || r->status || r->resp_case != PODVISOR__SHIM__RESPONSE__RESP_STATUS_INFO) {
		if (r)
			podvisor__shim__response__free_unpacked(r, NULL);
		conn_lost(m, mp, "bad Watch answer");
		return;
	}
	const Podvisor__Shim__StatusResponse *st = r->status_info;
	fold_pod(m->d, mp->id, st, mp->reconcile);
	mp->reconcile = false;
	pthread_mutex_lock(&m->lock);
	if (st->seq > mp->since)
		mp->since = st->seq;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	podvisor__shim__response__free_unpacked(r, NULL);
	cleanup_err pv_err_t *e = NULL;
	if (send_watch(mp, &e) < 0)
		conn_lost(m, mp, e->msg);
}

static void on_readable(struct cri_monitor *m, struct mon_pod *mp)
{
	for (;;) {
		int n = pv_frame_reader_read_fd(&mp->rd, mp->fd);
		if (n == -EAGAIN || n == -EINTR)
			return;
		if (n <= 0) {
			conn_lost(m, mp, n == 0 ? "connection closed" : strerror(-n));
			return;
		}
		for (;;) {
			struct pv_frame_hdr h;
			const uint8_t *payload;
			cleanup_err pv_err_t *e = NULL;
			int r = pv_frame_reader_next(&mp->rd, &h, &payload, &e);
			if (r == 0)
				break;
			if (r < 0 || h.type != PV_FRAME_RESPONSE || h.stream != mp->req_id) {
				conn_lost(m, mp, e ? e->msg : "unexpected frame");
				return;
			}
			on_answer(m, mp, payload, h.len);
			if (mp->fd < 0)
				return;
		}
	}
}

/* ---- the thread ------------------------------------------------------------------------ */

static struct mon_pod *pod_find(struct cri_monitor *m, const char *id)
{
	for (struct mon_pod *mp = m->pods; mp; mp = mp->next)
		if (!strcmp(mp->id, id))
			return mp;
	return NULL;
}

static void pod_free(struct cri_monitor *m, struct mon_pod *mp)
{
	conn_close(m, mp);
	pv_frame_reader_free(&mp->rd);
	free(mp->id);
	free(mp->dir);
	free(mp);
}

static void run_cmd(struct cri_monitor *m, struct mon_cmd *c)
{
	struct mon_pod *mp = pod_find(m, c->pod_id);
	switch (c->kind) {
	case CMD_FOLLOW:
	case CMD_RECOVER:
		if (mp && !mp->ended)
			return;
		if (!mp) {
			mp = pv_xcalloc(1, sizeof(*mp));
			mp->id = pv_xstrdup(c->pod_id);
			mp->dir = cri_pod_dir(m->d, c->pod_id);
			mp->fd = -1;
			pv_frame_reader_init(&mp->rd, PV_FRAME_MAX_PAYLOAD);
			pthread_mutex_lock(&m->lock);
			mp->next = m->pods;
			m->pods = mp;
			pthread_mutex_unlock(&m->lock);
		}
		pthread_mutex_lock(&m->lock);
		mp->ended = false;
		pthread_mutex_unlock(&m->lock);
		mp->reconcile = c->kind == CMD_RECOVER;
		conn_start(m, mp);
		return;
	case CMD_SETTLE:
		/* The caller has stopped the shim: its connection ends by itself (EOF). One
		 * not connected is settled from the state file now. */
		if (!mp) {
			struct mon_cmd follow = { .kind = CMD_FOLLOW, .pod_id = c->pod_id };
			run_cmd(m, &follow);
			return;
		}
		if (mp->fd < 0 && !mp->ended) {
			mp->retry_at_ns = 0;
			fold_offline(m->d, mp);
			mark_ended(m, mp);
		} else if (mp->ended) {
			fold_offline(m->d, mp); /* idempotent; picks up a state written since */
			mark_ended(m, mp);
		}
		return;
	case CMD_FORGET:
		if (!mp)
			return;
		pthread_mutex_lock(&m->lock);
		for (struct mon_pod **pp = &m->pods; *pp; pp = &(*pp)->next) {
			if (*pp == mp) {
				*pp = mp->next;
				break;
			}
		}
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->lock);
		pod_free(m, mp);
		return;
	}
}

static void drain_cmds(struct cri_monitor *m)
{
	uint64_t v;
	if (read(m->evfd, &v, sizeof(v)) < 0) {
		/* nothing pending */
	}
	for (;;) {
		pthread_mutex_lock(&m->lock);
		struct mon_cmd *c = m->cmds;
		if (c) {
			m->cmds = c->next;
			if (!m->cmds)
				m->cmds_tail = &m->cmds;
		}
		pthread_mutex_unlock(&m->lock);
		if (!c)
			return;
		run_cmd(m, c);
		free(c->pod_id);
		free(c);
	}
}

/* Reconnect the pods whose retry is due; returns ms until the next one (-1: none). */
static int run_retries(struct cri_monitor *m)
{
	int64_t now = pv_now_monotonic_ns(), next = -1;
	for (struct mon_pod *mp = m->pods; mp; mp = mp->next) {
		if (!mp->retry_at_ns)
			continue;
		if (mp->retry_at_ns <= now)
			conn_start(m, mp);
		if (mp->retry_at_ns) {
			int64_t ms = (mp->retry_at_ns - now) / 1000000 + 1;
			if (next < 0 || ms < next)
				next = ms;
		}
	}
	return (int)next;
}

static void *monitor_main(void *arg)
{
	struct cri_monitor *m = arg;
	for (;;) {
		pthread_mutex_lock(&m->lock);
		bool stop = m->stop;
		pthread_mutex_unlock(&m->lock);
		if (stop)
			break;
		int timeout = run_retries(m);
		struct epoll_event evs[32];
		int n = epoll_wait(m->epfd, evs, 32, timeout);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == m)
				drain_cmds(m);
			else
				on_readable(m, evs[i].data.ptr);
		}
	}
	return NULL;
}

static void enqueue(struct pv_daemon *d, enum mon_cmd_kind kind, const char *pod_id)
{
	struct cri_monitor *m = d->monitor;
	struct mon_cmd *c = pv_xcalloc(1, sizeof(*c));
	c->kind = kind;
	c->pod_id = pv_xstrdup(pod_id);
	pthread_mutex_lock(&m->lock);
	*m->cmds_tail = c;
	m->cmds_tail = &c->next;
	pthread_mutex_unlock(&m->lock);
	uint64_t one = 1;
	if (write(m->evfd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the thread is awake anyway */
	}
}

void cri_monitor_follow(struct pv_daemon *d, const char *pod_id)
{
	enqueue(d, CMD_FOLLOW, pod_id);
}

void cri_monitor_forget(struct pv_daemon *d, const char *pod_id)
{
	enqueue(d, CMD_FORGET, pod_id);
}

/* Wait (m->lock held) until done(mp) or the deadline; 0, or -ETIMEDOUT. */
static int wait_for(struct cri_monitor *m, const char *pod_id, uint64_t seq, bool settle, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	int r = 0;
	pthread_mutex_lock(&m->lock);
	for (;;) {
		struct mon_pod *mp = pod_find(m, pod_id);
		if (m->stop)
			break;
		if (mp && (mp->ended || (!settle && mp->since >= seq)))
			break;
		if (pthread_cond_timedwait(&m->cond, &m->lock, &until) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

int cri_monitor_wait_seq(struct pv_daemon *d, const char *pod_id, uint64_t seq, int timeout_ms)
{
	int r = wait_for(d->monitor, pod_id, seq, false, timeout_ms);
	if (r < 0)
		pv_warn("monitor has not folded the shim's answer in time", "pod=%s seq=%llu timeout_ms=%d", pod_id,
			(unsigned long long)seq, timeout_ms);
	return r;
}

int cri_monitor_settle(struct pv_daemon *d, const char *pod_id, int timeout_ms)
{
	enqueue(d, CMD_SETTLE, pod_id);
	int r = wait_for(d->monitor, pod_id, 0, true, timeout_ms);
	if (r < 0)
		pv_warn("pod's final state not folded in time", "pod=%s timeout_ms=%d", pod_id, timeout_ms);
	return r;
}

int cri_monitor_start(struct pv_daemon *d, pv_err_t **err)
{
	struct cri_monitor *m = pv_xcalloc(1, sizeof(*m));
	m->d = d;
	m->cmds_tail = &m->cmds;
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	m->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	d->monitor = m;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = m };
	if (m->epfd < 0 || m->evfd < 0 || epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->evfd, &ev) < 0)
		return pv_err_sys(err, PV_INTERNAL, "monitor: epoll/eventfd");
	if (pthread_create(&m->thread, NULL, monitor_main, m) != 0)
		return pv_err_set(err, PV_INTERNAL, EAGAIN, "cannot start the pod monitor thread");
	m->running = true;
	return 0;
}

void cri_monitor_stop(struct pv_daemon *d)
{
	struct cri_monitor *m = d->monitor;
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	uint64_t one = 1;
	if (write(m->evfd, &one, sizeof(one)) < 0) {
		/* awake anyway */
	}
	if (m->running)
		pthread_join(m->thread, NULL);
	while (m->pods) {
		struct mon_pod *mp = m->pods;
		m->pods = mp->next;
		pod_free(m, mp);
	}
	while (m->cmds) {
		struct mon_cmd *c = m->cmds;
		m->cmds = c->next;
		free(c->pod_id);
		free(c);
	}
	if (m->epfd >= 0)
		close(m->epfd);
	if (m->evfd >= 0)
		close(m->evfd);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
	d->monitor = NULL;
}

/* ---- start-up ------------------------------------------------------------------------- */

int cri_runtime_init(struct pv_daemon *d, pv_err_t **err)
{
	pthread_mutex_init(&d->shims_lock, NULL);
	if (pv_store_open(d->cfg->root_dir, &d->store, err) < 0)
		return -1;
	if (cri_monitor_start(d, err) < 0)
		return -1;
	/* Follow every pod again: the shims kept running pods while podvisord was away, and
	 * the state files of the others say how they ended. Their first folds are in the
	 * store before the first call is served. */
	size_t n;
	struct pv_pod **pods = pv_store_pod_list(d->store, &n);
	size_t ready = 0;
	for (size_t i = 0; i < n; i++) {
		cri_pod_register(d, pods[i]->id);
		enqueue(d, CMD_RECOVER, pods[i]->id);
		ready += pods[i]->st.ready != 0;
	}
	int64_t deadline = pv_now_monotonic_ns() + RECOVERY_WAIT_MS * 1000000LL;
	for (size_t i = 0; i < n; i++) {
		int64_t left = (deadline - pv_now_monotonic_ns()) / 1000000;
		if (wait_for(d->monitor, pods[i]->id, 1, false, left > 0 ? (int)left : 0) < 0)
			pv_warn("pod state not recovered in time", "pod=%s", pods[i]->id);
	}
	pv_pod_list_free(pods, n);
	if (n)
		pv_info("pods recovered", "pods=%zu were_ready=%zu", n, ready);
	/* Pins live in memory: take them again for every container we still have. */
	struct pv_ctr **ctrs = pv_store_ctr_list(d->store, &n);
	for (size_t i = 0; i < n && d->images; i++) {
		struct image_info *info = NULL;
		pv_err_t *e = NULL;
		if (!ctrs[i]->st.image_id || image_store_acquire(d->images, ctrs[i]->st.image_id, &info, &e) < 0) {
			pv_warn("image of container gone", "container=%s image=%s error=%s", ctrs[i]->id,
				ctrs[i]->st.image_id ? ctrs[i]->st.image_id : "", e ? e->msg : "no image id");
			pv_err_free(e);
			continue;
		}
		image_info_free(info);
	}
	pv_ctr_list_free(ctrs, n);
	return 0;
}

void cri_runtime_fini(struct pv_daemon *d)
{
	cri_monitor_stop(d);
	cri_shims_fini(d);
	cri_events_fini(d);
	pv_store_close(d->store);
	d->store = NULL;
	pthread_mutex_destroy(&d->shims_lock);
}
