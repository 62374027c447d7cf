/* Per-pod bookkeeping in podvisord: state directory, shim connection, lifecycle lock. */
#include "runtime.h"
#include "cleanup.h"
#include "config.h"
#include "util.h"

#include "../shim/client.h"

#include <string.h>

#define CONNECT_TIMEOUT_MS 5000

struct cri_shim_entry {
	char *pod_id;
	struct shim_client *client;
	pthread_mutex_t lifecycle;
	pthread_mutex_t sync; /* one status sync of this pod at a time */
	struct cri_shim_entry *next;
};

char *cri_pod_dir(struct pv_daemon *d, const char *pod_id)
{
	return pv_xasprintf("%s/pods/%s", d->cfg->state_dir, pod_id);
}

char *cri_pod_volumes_dir(struct pv_daemon *d, const char *pod_id)
{
	return pv_xasprintf("%s/pods/%s/volumes", d->cfg->state_dir, pod_id);
}

/* Find or make the entry; called with shims_lock held. */
static struct cri_shim_entry *entry_get(struct pv_daemon *d, const char *pod_id)
{
	for (struct cri_shim_entry *e = d->shims; e; e = e->next)
		if (!strcmp(e->pod_id, pod_id))
			return e;
	struct cri_shim_entry *e = pv_xcalloc(1, sizeof(*e));
	e->pod_id = pv_xstrdup(pod_id);
	pthread_mutex_init(&e->lifecycle, NULL);
	pthread_mutex_init(&e->sync, NULL);
	e->next = d->shims;
	d->shims = e;
	return e;
}

int cri_pod_shim(struct pv_daemon *d, const char *pod_id, struct shim_client **out, pv_err_t **err)
{
	pthread_mutex_lock(&d->shims_lock);
	struct cri_shim_entry *e = entry_get(d, pod_id);
	if (!e->client) {
		cleanup_free char *dir = cri_pod_dir(d, pod_id);
		if (shim_client_connect(dir, CONNECT_TIMEOUT_MS, &e->client, err) < 0) {
			pthread_mutex_unlock(&d->shims_lock);
			pv_err_prefix(err, "pod %s", pod_id);
			return -1;
		}
	}
	*out = e->client;
	pthread_mutex_unlock(&d->shims_lock);
	return 0;
}

int cri_pod_shim_private(struct pv_daemon *d, const char *pod_id, struct shim_client **out, pv_err_t **err)
{
	cleanup_free char *dir = cri_pod_dir(d, pod_id);
	if (shim_client_connect(dir, CONNECT_TIMEOUT_MS, out, err) < 0) {
		pv_err_prefix(err, "pod %s", pod_id);
		return -1;
	}
	return 0;
}

void cri_pod_shim_forget(struct pv_daemon *d, const char *pod_id)
{
	pthread_mutex_lock(&d->shims_lock);
	for (struct cri_shim_entry *e = d->shims; e; e = e->next) {
		if (!strcmp(e->pod_id, pod_id) && e->client) {
			shim_client_close(e->client);
			e->client = NULL;
		}
	}
	pthread_mutex_unlock(&d->shims_lock);
}

void cri_pod_lock(struct pv_daemon *d, const char *pod_id)
{
	pthread_mutex_lock(&d->shims_lock);
	struct cri_shim_entry *e = entry_get(d, pod_id);
	pthread_mutex_unlock(&d->shims_lock);
	/* Entries are freed only at shutdown, so e stays valid. */
	pthread_mutex_lock(&e->lifecycle);
}

void cri_pod_unlock(struct pv_daemon *d, const char *pod_id)
{
	pthread_mutex_lock(&d->shims_lock);
	struct cri_shim_entry *e = entry_get(d, pod_id);
	pthread_mutex_unlock(&d->shims_lock);
	pthread_mutex_unlock(&e->lifecycle);
}

void cri_pod_sync_lock(struct pv_daemon *d, const char *pod_id)
{
	pthread_mutex_lock(&d->shims_lock);
	struct cri_shim_entry *e = entry_get(d, pod_id);
	pthread_mutex_unlock(&d->shims_lock);
	pthread_mutex_lock(&e->sync);
}

void cri_pod_sync_unlock(struct pv_daemon *d, const char *pod_id)
{
	pthread_mutex_lock(&d->shims_lock);
	struct cri_shim_entry *e = entry_get(d, pod_id);
	pthread_mutex_unlock(&d->shims_lock);
	pthread_mutex_unlock(&e->sync);
}

void cri_shims_fini(struct pv_daemon *d)
{
	while (d->shims) {
		struct cri_shim_entry *e = d->shims;
		d->shims = e->next;
		if (e->client)
			shim_client_close(e->client);
		pthread_mutex_destroy(&e->lifecycle);
		pthread_mutex_destroy(&e->sync);
		free(e->pod_id);
		free(e);
	}
}
