/*
 * Per-pod bookkeeping in podvisord: the pod's entry in the shim table (its state
 * directory, its shim handle, its lifecycle lock).
 *
 * Lifetimes. An entry exists from RunPodSandbox (or start-up recovery) until
 * RemovePodSandbox unregisters it. The table holds one reference; every thread that
 * locks the entry or asks for its shim holds another while it uses it, so an entry
 * unregistered under a thread's feet stays valid until that thread lets go. The shim
 * handle (shim/client.h) is reference counted the same way: cri_pod_shim() hands out
 * a reference of the caller's own.
 *
 * Locks. d->shims_lock guards the table and the entries' reference counts; it is never
 * held across anything slower than a list walk. An entry's `lifecycle` mutex serialises
 * Run/Stop/Remove of its pod and Create/Remove of the pod's containers: it is held for
 * as long as those take (a VM boot, a container create) but its scope is one pod.
 */
#include "runtime.h"
#include "cleanup.h"
#include "config.h"
#include "util.h"

#include "../shim/client.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

struct cri_shim_entry {
	int refs;   /* the table's (while registered) + each holder's; under d->shims_lock */
	bool linked;
	char *pod_id;
	struct shim_client *client; /* the entry's own reference */
	pthread_mutex_t lifecycle;
	struct cri_shim_entry *next;
};

char *cri_pod_dir(struct pv_daemon *d, const char *pod_id)
{
	return pv_xasprintf("%s/pods/%s", d->cfg->state_dir, pod_id);
}

char *cri_pod_disk_dir(struct pv_daemon *d, const char *pod_id)
{
	return pv_xasprintf("%s/disks/%s", d->cfg->root_dir, pod_id);
}

char *cri_pod_volumes_dir(struct pv_daemon *d, const char *pod_id)
{
	return pv_xasprintf("%s/pods/%s/volumes", d->cfg->state_dir, pod_id);
}

/* Called with shims_lock held. */
static struct cri_shim_entry *entry_find(struct pv_daemon *d, const char *pod_id)
{
	for (struct cri_shim_entry *e = d->shims; e; e = e->next)
		if (!strcmp(e->pod_id, pod_id))
			return e;
	return NULL;
}

static void entry_free(struct cri_shim_entry *e)
{
	shim_client_unref(e->client);
	pthread_mutex_destroy(&e->lifecycle);
	free(e->pod_id);
	free(e);
}

/* Drop one reference; called with shims_lock held; returns the entry to free, if any. */
static struct cri_shim_entry *entry_put_locked(struct cri_shim_entry *e)
{
	return --e->refs == 0 ? e : NULL;
}

static void entry_put(struct pv_daemon *d, struct cri_shim_entry *e)
{
	pthread_mutex_lock(&d->shims_lock);
	struct cri_shim_entry *dead = entry_put_locked(e);
	pthread_mutex_unlock(&d->shims_lock);
	if (dead)
		entry_free(dead);
}

/* A reference to the registered entry of pod_id, or NULL. */
static struct cri_shim_entry *entry_get(struct pv_daemon *d, const char *pod_id)
{
	pthread_mutex_lock(&d->shims_lock);
	struct cri_shim_entry *e = entry_find(d, pod_id);
	if (e)
		e->refs++;
	pthread_mutex_unlock(&d->shims_lock);
	return e;
}

void cri_pod_register(struct pv_daemon *d, const char *pod_id)
{
	cleanup_free char *dir = cri_pod_dir(d, pod_id);
	pthread_mutex_lock(&d->shims_lock);
	if (!entry_find(d, pod_id)) {
		struct cri_shim_entry *e = pv_xcalloc(1, sizeof(*e));
		e->refs = 1;
		e->linked = true;
		e->pod_id = pv_xstrdup(pod_id);
		e->client = shim_client_open(dir);
		pthread_mutex_init(&e->lifecycle, NULL);
		e->next = d->shims;
		d->shims = e;
	}
	pthread_mutex_unlock(&d->shims_lock);
}

void cri_pod_unregister(struct pv_daemon *d, struct cri_shim_entry *locked)
{
	/* The caller holds locked->lifecycle, so lockers waiting for it see `linked` false. */
	struct cri_shim_entry *dead = NULL;
	pthread_mutex_lock(&d->shims_lock);
	for (struct cri_shim_entry **pp = &d->shims; *pp; pp = &(*pp)->next) {
		if (*pp != locked)
			continue;
		*pp = locked->next;
		locked->linked = false;
		dead = entry_put_locked(locked);
		break;
	}
	pthread_mutex_unlock(&d->shims_lock);
	if (dead) /* cannot happen while the caller holds its own reference */
		entry_free(dead);
}

static int gone(const char *pod_id, pv_err_t **err)
{
	return pv_err_set(err, PV_NOT_FOUND, ENOENT, "pod sandbox %s not found (removed)", pod_id);
}

int cri_pod_shim(struct pv_daemon *d, const char *pod_id, struct shim_client **out, pv_err_t **err)
{
	pthread_mutex_lock(&d->shims_lock);
	struct cri_shim_entry *e = entry_find(d, pod_id);
	struct shim_client *c = e ? shim_client_ref(e->client) : NULL;
	pthread_mutex_unlock(&d->shims_lock);
	if (!c)
		return gone(pod_id, err);
	*out = c;
	return 0;
}

struct cri_shim_entry *cri_pod_lock(struct pv_daemon *d, const char *pod_id, pv_err_t **err)
{
	struct cri_shim_entry *e = entry_get(d, pod_id);
	if (!e) {
		gone(pod_id, err);
		return NULL;
	}
	pthread_mutex_lock(&e->lifecycle);
	if (!e->linked) { /* removed while we waited for it */
		pthread_mutex_unlock(&e->lifecycle);
		entry_put(d, e);
		gone(pod_id, err);
		return NULL;
	}
	return e;
}

void cri_pod_unlock(struct pv_daemon *d, struct cri_shim_entry *e)
{
	if (!e)
		return;
	pthread_mutex_unlock(&e->lifecycle);
	entry_put(d, e);
}

bool cri_pod_running(struct pv_daemon *d, const char *pod_id)
{
	struct pv_pod *p = NULL;
	if (pv_store_pod_get(d->store, pod_id, &p, NULL) < 0)
		return false;
	bool ready = p->st.ready;
	pv_pod_free(p);
	if (!ready)
		return false;
	cleanup_free char *dir = cri_pod_dir(d, pod_id);
	Podvisor__Shim__StatusResponse *st = NULL;
	if (shim_client_read_state(dir, &st, NULL) < 0)
		return false;
	bool up = st->state == PODVISOR__SHIM__POD_STATE__POD_READY;
	podvisor__shim__status_response__free_unpacked(st, NULL);
	return up;
}

void cri_pod_refine_err(struct pv_daemon *d, const char *pod_id, pv_err_t **err)
{
	if (!err || !*err || ((*err)->status != PV_UNAVAILABLE && (*err)->status != PV_FAILED_PRECONDITION))
		return;
	if (cri_pod_running(d, pod_id))
		return;
	pv_err_free(*err);
	*err = NULL;
	pv_err_set(err, PV_FAILED_PRECONDITION, ESHUTDOWN,
		   "pod sandbox %s is not running (stopped, or its VM is gone): remove it and run a new one", pod_id);
}

void cri_shims_fini(struct pv_daemon *d)
{
	/* Every call thread has ended: only the table's references are left. */
	while (d->shims) {
		struct cri_shim_entry *e = d->shims;
		d->shims = e->next;
		entry_free(e);
	}
}
