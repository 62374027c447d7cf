/*
 * Keeps the metadata store in line with the pods' shims: container exits,
 * a VM that died, a shim that died. Runs once a second over every READY pod,
 * and on demand from handlers that need fresh state.
 */
#include "runtime.h"
#include "cleanup.h"
#include "config.h"
#include "image/store.h"
#include "log.h"
#include "util.h"

#include "../shim/client.h"

#include <string.h>
#include <unistd.h>

#define MONITOR_PERIOD_US 1000000
/* A status is answered from the shim's memory: a shim that takes longer is stuck or swamped. */
#define STATUS_TIMEOUT_MS 5000

static int str_differs(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v && *v ? pv_xstrdup(v) : NULL;
}

/* Fold the shim's view of one container into the store; emit STOPPED on exit. */
static void sync_ctr(struct pv_daemon *d, struct pv_ctr *c, const Podvisor__Shim__ContainerStatus *cs)
{
	struct pv_ctr_state st;
	pv_ctr_state_copy(&st, &c->st);
	st.state = (int)cs->state;
	if (cs->started_at_ns)
		st.started_ns = cs->started_at_ns;
	if (cs->finished_at_ns)
		st.finished_ns = cs->finished_at_ns;
	st.exit_code = cs->exit_code;
	set_str(&st.reason, cs->reason);
	set_str(&st.message, cs->message);
	if (cs->state == PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_EXITED && !st.finished_ns)
		st.finished_ns = pv_now_realtime_ns();
	int changed = st.state != c->st.state || st.exit_code != c->st.exit_code ||
		      st.started_ns != c->st.started_ns || st.finished_ns != c->st.finished_ns ||
		      str_differs(st.reason, c->st.reason) || str_differs(st.message, c->st.message);
	if (changed && pv_store_ctr_set_state(d->store, c->id, &st, NULL) == 0 &&
	    st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED &&
	    c->st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
		pv_info("container exited", "container=%s exit_code=%d reason=%s", c->id, st.exit_code,
			st.reason ? st.reason : "");
		cri_events_emit(d, c->id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
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
	cs.message = "the pod's VM is no longer running";
	sync_ctr(d, c, &cs);
}

static int shim_status(struct shim_client *sc, Podvisor__Shim__Response **r, pv_err_t **err)
{
	Podvisor__Shim__StatusRequest sr = PODVISOR__SHIM__STATUS_REQUEST__INIT;
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_STATUS;
	req.status = &sr;
	return shim_client_call(sc, &req, STATUS_TIMEOUT_MS, r, err);
}

void cri_monitor_sync_pod(struct pv_daemon *d, const char *pod_id)
{
	struct pv_pod *p = NULL;
	if (pv_store_pod_get(d->store, pod_id, &p, NULL) < 0)
		return;
	cri_pod_sync_lock(d, p->id);
	Podvisor__Shim__Response *r = NULL;
	Podvisor__Shim__StatusResponse *offline = NULL;
	const Podvisor__Shim__StatusResponse *st = NULL;
	struct shim_client *sc = NULL;
	pv_err_t *e = NULL;
	int live = 0;
	if (p->st.ready) {
		if (cri_pod_shim(d, p->id, &sc, &e) == 0 && shim_status(sc, &r, &e) == 0 &&
		    r->resp_case == PODVISOR__SHIM__RESPONSE__RESP_STATUS_INFO) {
			st = r->status_info;
			live = 1;
		} else {
			pv_warn("shim unreachable", "pod=%s error=%s", p->id, e ? e->msg : "bad status reply");
			cri_pod_shim_forget(d, p->id);
		}
	}
	if (!live) {
		/* No shim to ask: its last state file says what happened. */
		cleanup_free char *dir = cri_pod_dir(d, p->id);
		if (shim_client_read_state(dir, &offline, NULL) == 0)
			st = offline;
	}
	pv_err_free(e);

	size_t n;
	struct pv_ctr **ctrs = pv_store_ctr_list(d->store, &n);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ctrs[i]->pod_id, p->id))
			continue;
		const Podvisor__Shim__ContainerStatus *cs = NULL;
		for (size_t j = 0; st && j < st->n_containers; j++)
			if (!strcmp(st->containers[j]->id, ctrs[i]->id))
				cs = st->containers[j];
		if (cs)
			sync_ctr(d, ctrs[i], cs);
		else if (!p->st.ready || !st || st->state != PODVISOR__SHIM__POD_STATE__POD_READY)
			mark_gone(d, ctrs[i], st && st->reason && *st->reason ? st->reason : "PodNotReady");
	}
	pv_ctr_list_free(ctrs, n);

	int vm_down = p->st.ready && (!st || st->state == PODVISOR__SHIM__POD_STATE__POD_NOTREADY ||
				      st->state == PODVISOR__SHIM__POD_STATE__POD_STOPPED);
	if (vm_down) {
		const char *why = st && st->reason && *st->reason ? st->reason : "ShimExited";
		pv_warn("pod not ready", "pod=%s reason=%s", p->id, why);
		p->st.ready = 0;
		set_str(&p->st.reason, why);
		pv_store_pod_set_state(d->store, p->id, &p->st, NULL);
		/* Containers still marked running belong to a dead VM. */
		ctrs = pv_store_ctr_list(d->store, &n);
		for (size_t i = 0; i < n; i++)
			if (!strcmp(ctrs[i]->pod_id, p->id))
				mark_gone(d, ctrs[i], why);
		pv_ctr_list_free(ctrs, n);
	}
	if (r)
		shim_client_free_response(r);
	if (offline)
		podvisor__shim__status_response__free_unpacked(offline, NULL);
	cri_pod_sync_unlock(d, p->id);
	pv_pod_free(p);
}

static void *monitor_main(void *arg)
{
	struct pv_daemon *d = arg;
	while (!d->stopping) {
		size_t n;
		struct pv_pod **pods = pv_store_pod_list(d->store, &n);
		for (size_t i = 0; i < n && !d->stopping; i++)
			if (pods[i]->st.ready)
				cri_monitor_sync_pod(d, pods[i]->id);
		pv_pod_list_free(pods, n);
		for (int t = 0; t < 10 && !d->stopping; t++)
			usleep(MONITOR_PERIOD_US / 10);
	}
	return NULL;
}

int cri_monitor_start(struct pv_daemon *d, pv_err_t **err)
{
	if (pthread_create(&d->monitor, NULL, monitor_main, d) != 0)
		return pv_err_set(err, PV_INTERNAL, EAGAIN, "cannot start the pod monitor thread");
	d->monitor_running = 1;
	return 0;
}

void cri_monitor_stop(struct pv_daemon *d)
{
	d->stopping = 1;
	if (d->monitor_running)
		pthread_join(d->monitor, NULL);
	d->monitor_running = 0;
}

int cri_runtime_init(struct pv_daemon *d, pv_err_t **err)
{
	pthread_mutex_init(&d->shims_lock, NULL);
	if (pv_store_open(d->cfg->root_dir, &d->store, err) < 0)
		return -1;
	/* Reconnect to the shims that kept the pods running while podvisord was away. */
	size_t n;
	struct pv_pod **pods = pv_store_pod_list(d->store, &n);
	size_t ready = 0;
	for (size_t i = 0; i < n; i++) {
		if (!pods[i]->st.ready)
			continue;
		cri_monitor_sync_pod(d, pods[i]->id);
		ready++;
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
	return cri_monitor_start(d, err);
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
