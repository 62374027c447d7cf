/*
 * A streaming session's thread: the upgraded client connection on one side, the pod's
 * shim on the other, polled together until the session ends or the server stops.
 */
#include "internal.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* kubelet's default streamCreationTimeout: the client's streams must all be there by then. */
#define STREAM_CREATION_TIMEOUT_NS (30LL * 1000 * 1000 * 1000)
/* Last bytes of a finished session get this long to reach a slow client. */
#define DRAIN_TIMEOUT_NS (10LL * 1000 * 1000 * 1000)
/* Stop reading one side while this much waits to be written to the other. */
#define HIGH_WATER (1u << 20)
/* Until its streams are all open the client is read past HIGH_WATER, up to this: a client
 * may start sending stdin before it opens stdout, and the SYN_STREAM of stdout is behind
 * that data (not reading it would wait for a stream the client is waiting to have answered). */
#define EARLY_MAX (16u << 20)
#define READ_CHUNK (64u << 10)
/* How long a finished session waits for the client to close its side. */
#define LINGER_NS (2LL * 1000 * 1000 * 1000)

struct chan *sess_chan_new(struct sess *s, enum chan_role role, uint32_t id)
{
	struct chan *c = pv_xcalloc(1, sizeof(*c));
	c->role = role;
	c->id = id;
	c->next = s->chans;
	s->chans = c;
	return c;
}

struct chan *sess_chan_find(struct sess *s, uint32_t id)
{
	for (struct chan *c = s->chans; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

void sess_fail(struct sess *s, const char *fmt, ...)
{
	if (!s->failed) {
		va_list ap;
		va_start(ap, fmt);
		free(s->error);
		s->error = pv_xvasprintf(fmt, ap);
		va_end(ap);
		s->failed = true;
	}
	sess_finish(s);
}

void sess_finish(struct sess *s)
{
	if (s->finishing)
		return;
	s->finishing = true;
	s->phase = PH_DONE;
	if (s->client_gone)
		return;
	struct chan *err = NULL;
	for (struct chan *c = s->chans; c; c = c->next) {
		if (c->role == CH_ERROR)
			err = c;
		else if (c->role != CH_PF_ERROR && c->role != CH_PF_DATA && !c->fin_out)
			s->x->fin(s, c);
	}
	for (struct pf *pf = s->pfs; pf; pf = pf->next) {
		if (pf->data && !pf->data->fin_out)
			s->x->fin(s, pf->data);
		if (pf->error && !pf->error->fin_out)
			s->x->fin(s, pf->error);
	}
	if (err && !err->fin_out) {
		char *text = k8s_status_text(s);
		if (text)
			s->x->data(s, err, text, strlen(text));
		free(text);
		s->x->fin(s, err);
	}
	s->x->finish(s);
}

static void sess_free(struct sess *s)
{
	shimlink_close(s);
	if (s->x)
		s->x->free(s);
	while (s->chans) {
		struct chan *c = s->chans;
		s->chans = c->next;
		pvs_buf_free(&c->acc);
		free(c);
	}
	while (s->pfs) {
		struct pf *p = s->pfs;
		s->pfs = p->next;
		free(p);
	}
	pvs_buf_free(&s->in);
	pvs_buf_free(&s->out);
	stream_req_free(s->req);
	free(s->error);
	free(s);
}

/* One round of reading from the client. */
static void client_readable(struct sess *s)
{
	int n = pvs_buf_read_fd(&s->in, s->fd, READ_CHUNK);
	if (n == -EAGAIN)
		return;
	if (n <= 0) {
		s->client_gone = true;
		return;
	}
	if (s->x->parse(s) < 0) {
		pv_debug("streaming client protocol error", "error=%s", s->error ? s->error : "");
		s->finishing = true;
	}
}

static int poll_timeout(struct sess *s, int64_t drain_deadline)
{
	int64_t until = -1;
	if (s->phase == PH_STREAMS)
		until = s->deadline_ns;
	if (s->finishing)
		until = drain_deadline;
	if (until < 0)
		return -1;
	int64_t left = (until - pv_now_monotonic_ns()) / 1000000;
	return left < 0 ? 0 : left > 60000 ? 60000 : (int)left + 1;
}

static void run(struct sess *s)
{
	int64_t drain_deadline = 0;
	while (!s->client_gone) {
		bool shim_ok = s->shim_fd >= 0;
		if (s->finishing && !drain_deadline)
			drain_deadline = pv_now_monotonic_ns() + DRAIN_TIMEOUT_NS;
		if (s->finishing && !pvs_buf_size(&s->out))
			break;
		struct pollfd p[3] = {
			{ .fd = s->fd, .events = 0 },
			{ .fd = shim_ok ? s->shim_fd : -1, .events = 0 },
			{ .fd = s->srv->stop_fd, .events = POLLIN },
		};
		size_t backlog = shimlink_backlog(s);
		if (s->phase == PH_STREAMS && backlog >= EARLY_MAX && !s->finishing)
			sess_fail(s, "the client sent more than %u MiB before opening all its streams", EARLY_MAX >> 20);
		if (!s->finishing && backlog < (s->phase == PH_STREAMS ? EARLY_MAX : HIGH_WATER))
			p[0].events |= POLLIN;
		if (pvs_buf_size(&s->out))
			p[0].events |= POLLOUT;
		if (shim_ok && pvs_buf_size(&s->out) < HIGH_WATER && !s->finishing)
			p[1].events |= POLLIN;
		if (shim_ok && pv_frame_writer_pending(&s->swr))
			p[1].events |= POLLOUT;
		int n = poll(p, 3, poll_timeout(s, drain_deadline));
		if (n < 0 && errno != EINTR)
			break;
		if (p[2].revents)
			break; /* the server stops */
		int64_t now = pv_now_monotonic_ns();
		if (s->phase == PH_STREAMS && now >= s->deadline_ns && s->size_wait) {
			k8s_streams_ready(s); /* no size came: the process starts without one */
		} else if (s->phase == PH_STREAMS && now >= s->deadline_ns) {
			pv_info("streaming client did not open its streams in time", "pod=%s", s->req->pod_id);
			sess_fail(s, "timed out waiting for the client's streams");
		}
		if (s->finishing && now >= drain_deadline)
			break;
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			client_readable(s);
		if (shim_ok && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && shimlink_on_readable(s) < 0) {
			shimlink_close(s);
			if (!s->finishing)
				sess_fail(s, "the connection to the pod's shim was lost");
		}
		if (shimlink_flush(s) < 0 && !s->finishing)
			sess_fail(s, "the connection to the pod's shim was lost");
		if (pvs_buf_flush(&s->out, s->fd) < 0)
			s->client_gone = true;
		k8s_reap(s);
	}
}

/*
 * Close gently: a socket closed with unread bytes in it is reset, and a reset can make the
 * client lose our last bytes (the exit status) before it read them. So shut our side, then
 * read what the client still sends until it closes, for a short while.
 */
static void linger(struct sess *s)
{
	if (s->client_gone || pvs_buf_size(&s->out))
		return;
	shutdown(s->fd, SHUT_WR);
	int64_t deadline = pv_now_monotonic_ns() + LINGER_NS;
	char sink[4096];
	for (;;) {
		int64_t left = (deadline - pv_now_monotonic_ns()) / 1000000;
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return;
		ssize_t n = recv(s->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return;
	}
}

static void *sess_thread(void *arg)
{
	struct sess *s = arg;
	pv_err_t *err = NULL;
	int r = s->x == &spdy_xport ? spdy_xport_init(s, &err) : ws_xport_init(s, &err);
	if (r == 0 && shimlink_open(s, &err) < 0) {
		/* Said on the error stream once the client's streams are there. */
		s->error = pv_xstrdup(err->msg);
		pv_warn("streaming session cannot reach the shim", "pod=%s error=%s", s->req->pod_id, err->msg);
	}
	pv_err_free(err);
	if (r == 0) {
		s->deadline_ns = pv_now_monotonic_ns() + STREAM_CREATION_TIMEOUT_NS;
		s->phase = PH_STREAMS;
		/* WebSocket channels exist from the start; SPDY port-forward opens its connections later. */
		if (s->x == &ws_xport || s->req->kind == CRI_STREAM_PORTFORWARD)
			k8s_streams_ready(s);
		pvs_buf_flush(&s->out, s->fd);
		shimlink_flush(s);
		run(s);
		if (s->finishing)
			linger(s);
	}
	pv_debug("streaming session ended", "pod=%s kind=%d exit_code=%d", s->req->pod_id, s->req->kind,
		 s->exit_code);
	MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
	struct cri_stream *srv = s->srv;
	pthread_mutex_lock(&srv->lock);
	for (struct sess **pp = &srv->sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->lock);
	sess_free(s);
	return NULL;
}

void sess_start(struct sess *s)
{
	struct cri_stream *srv = s->srv;
	s->shim_fd = -1;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&srv->lock);
	s->next = srv->sessions;
	srv->sessions = s;
	if (pthread_create(&s->thread, &a, sess_thread, s) != 0) {
		srv->sessions = s->next;
		pthread_mutex_unlock(&srv->lock);
		pv_warn("cannot start a streaming session thread", NULL);
		MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
		sess_free(s);
	} else {
		pthread_mutex_unlock(&srv->lock);
	}
	pthread_attr_destroy(&a);
}
