/*
 * GetContainerEvents: every container state change is appended to a ring;
 * each streaming call follows the ring from where it joined. A subscriber
 * too slow to keep up loses the oldest events (kubelet relists anyway).
 */
#include "runtime.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define RING 1024

struct event {
	char *ctr_id;
	int type;
	int64_t at_ns;
};

struct cri_events {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct event ring[RING];
	uint64_t next; /* sequence number of the next event */
};

static struct cri_events *events_get(struct pv_daemon *d)
{
	pthread_mutex_lock(&d->lock);
	if (!d->events) {
		struct cri_events *ev = pv_xcalloc(1, sizeof(*ev));
		pthread_mutex_init(&ev->lock, NULL);
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&ev->cond, &ca);
		pthread_condattr_destroy(&ca);
		d->events = ev;
	}
	pthread_mutex_unlock(&d->lock);
	return d->events;
}

void cri_events_emit(struct pv_daemon *d, const char *ctr_id, int type)
{
	struct cri_events *ev = events_get(d);
	pthread_mutex_lock(&ev->lock);
	struct event *e = &ev->ring[ev->next % RING];
	free(e->ctr_id);
	e->ctr_id = pv_xstrdup(ctr_id);
	e->type = type;
	e->at_ns = pv_now_realtime_ns();
	ev->next++;
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
}

void cri_events_fini(struct pv_daemon *d)
{
	struct cri_events *ev = d->events;
	if (!ev)
		return;
	for (size_t i = 0; i < RING; i++)
		free(ev->ring[i].ctr_id);
	pthread_cond_destroy(&ev->cond);
	pthread_mutex_destroy(&ev->lock);
	free(ev);
	d->events = NULL;
}

/* Send one event with the container's status and its pod's, as containerd does. */
static int send_event(struct cri_call *call, struct pv_daemon *d, const struct event *e)
{
	Runtime__V1__ContainerEventResponse r = RUNTIME__V1__CONTAINER_EVENT_RESPONSE__INIT;
	r.container_id = e->ctr_id;
	r.container_event_type = e->type;
	r.created_at = e->at_ns;
	struct pv_ctr *c = NULL;
	struct pv_pod *p = NULL;
	Runtime__V1__ContainerStatus *st = NULL;
	if (pv_store_ctr_get(d->store, e->ctr_id, &c, NULL) == 0) {
		st = cri_ctr_status_msg(call, c);
		r.containers_statuses = &st;
		r.n_containers_statuses = 1;
		if (pv_store_pod_get(d->store, c->pod_id, &p, NULL) == 0)
			r.pod_sandbox_status = cri_pod_status_msg(call, p);
	}
	int ret = cri_call_send(call, &r.base);
	pv_ctr_free(c);
	pv_pod_free(p);
	return ret;
}

CRI_HANDLER(cri_events_get)
{
	struct pv_daemon *d = cri_call_daemon(call);
	struct cri_events *ev = events_get(d);
	pthread_mutex_lock(&ev->lock);
	uint64_t seen = ev->next;
	pthread_mutex_unlock(&ev->lock);
	while (!cri_call_cancelled(call) && !d->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += 250 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&ev->lock);
		while (seen == ev->next && pthread_cond_timedwait(&ev->cond, &ev->lock, &until) != ETIMEDOUT)
			;
		if (ev->next - seen > RING)
			seen = ev->next - RING;
		uint64_t upto = ev->next;
		struct event batch[32];
		size_t n = 0;
		for (; seen < upto && n < PV_ARRAY_SIZE(batch); seen++, n++) {
			batch[n] = ev->ring[seen % RING];
			batch[n].ctr_id = pv_xstrdup(batch[n].ctr_id);
		}
		pthread_mutex_unlock(&ev->lock);
		int failed = 0;
		for (size_t i = 0; i < n; i++) {
			if (!failed && send_event(call, d, &batch[i]) < 0)
				failed = 1;
			cri_call_reset_arena(call);
			free(batch[i].ctr_id);
		}
		if (failed)
			break;
	}
	return 0;
}
