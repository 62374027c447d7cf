/* Container and pod statistics, read from the guest's cgroup v2 files by the agent. */
#include "runtime.h"
#include "cleanup.h"
#include "util.h"

#include "../shim/client.h"

#include <errno.h>
#include <string.h>

static Runtime__V1__UInt64Value *u64(struct cri_call *call, uint64_t v)
{
	Runtime__V1__UInt64Value *o = cri_call_new(call, Runtime__V1__UInt64Value);
	runtime__v1__uint64_value__init(o);
	o->value = v;
	return o;
}

static Runtime__V1__CpuUsage *cpu_usage(struct cri_call *call, int64_t ts, uint64_t usage_usec)
{
	Runtime__V1__CpuUsage *cpu = cri_call_new(call, Runtime__V1__CpuUsage);
	runtime__v1__cpu_usage__init(cpu);
	cpu->timestamp = ts;
	cpu->usage_core_nano_seconds = u64(call, usage_usec * 1000);
	return cpu;
}

static Runtime__V1__MemoryUsage *mem_usage(struct cri_call *call, int64_t ts,
					   const Podvisor__Agent__StatsContainerResponse *s)
{
	Runtime__V1__MemoryUsage *m = cri_call_new(call, Runtime__V1__MemoryUsage);
	runtime__v1__memory_usage__init(m);
	m->timestamp = ts;
	m->working_set_bytes = u64(call, s->memory_working_set_bytes);
	m->usage_bytes = u64(call, s->memory_usage_bytes);
	m->rss_bytes = u64(call, s->memory_rss_bytes);
	m->page_faults = u64(call, s->memory_page_faults);
	m->major_page_faults = u64(call, s->memory_major_page_faults);
	if (s->memory_limit_bytes)
		m->available_bytes = u64(call, s->memory_limit_bytes > s->memory_working_set_bytes
						       ? s->memory_limit_bytes - s->memory_working_set_bytes
						       : 0);
	return m;
}

/* Stats of one container; a container that is not running has none from the guest. */
static Runtime__V1__ContainerStats *ctr_stats(struct cri_call *call, struct pv_daemon *d, const struct pv_ctr *c,
					      Podvisor__Agent__StatsContainerResponse *sum)
{
	Runtime__V1__ContainerStats *o = cri_call_new(call, Runtime__V1__ContainerStats);
	runtime__v1__container_stats__init(o);
	Runtime__V1__ContainerAttributes *at = cri_call_new(call, Runtime__V1__ContainerAttributes);
	runtime__v1__container_attributes__init(at);
	at->id = cri_call_strdup(call, c->id);
	at->metadata = cri_ctr_metadata(call, c->config);
	COPY_MAP(call, at, c->config, &runtime__v1__container_attributes__labels_entry__descriptor);
	COPY_ANNOTATIONS(call, at, c->config, &runtime__v1__container_attributes__annotations_entry__descriptor);
	o->attributes = at;
	if (c->st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
		return o;
	cleanup_shim struct shim_client *shim = NULL;
	Podvisor__Shim__Response *r = NULL;
	if (cri_pod_shim(d, c->pod_id, &shim, NULL) < 0 || shim_client_stats(shim, c->id, &r, NULL) < 0 ||
	    r->resp_case != PODVISOR__SHIM__RESPONSE__RESP_STATS) {
		if (r)
			shim_client_free_response(r);
		return o;
	}
	const Podvisor__Agent__StatsContainerResponse *s = r->stats;
	int64_t ts = s->timestamp_ns ? s->timestamp_ns : pv_now_realtime_ns();
	o->cpu = cpu_usage(call, ts, s->cpu_usage_usec);
	o->memory = mem_usage(call, ts, s);
	Runtime__V1__FilesystemUsage *fs = cri_call_new(call, Runtime__V1__FilesystemUsage);
	runtime__v1__filesystem_usage__init(fs);
	fs->timestamp = ts;
	Runtime__V1__FilesystemIdentifier *fid = cri_call_new(call, Runtime__V1__FilesystemIdentifier);
	runtime__v1__filesystem_identifier__init(fid);
	fid->mountpoint = cri_call_strdup(call, "/");
	fs->fs_id = fid;
	fs->used_bytes = u64(call, s->rootfs_used_bytes);
	fs->inodes_used = u64(call, s->rootfs_inodes_used);
	o->writable_layer = fs;
	if (sum) {
		sum->timestamp_ns = ts;
		sum->cpu_usage_usec += s->cpu_usage_usec;
		sum->memory_usage_bytes += s->memory_usage_bytes;
		sum->memory_working_set_bytes += s->memory_working_set_bytes;
		sum->memory_rss_bytes += s->memory_rss_bytes;
		sum->memory_page_faults += s->memory_page_faults;
		sum->memory_major_page_faults += s->memory_major_page_faults;
		sum->pids_current += s->pids_current;
	}
	shim_client_free_response(r);
	return o;
}

CRI_HANDLER(cri_ctr_stats)
{
	const Runtime__V1__ContainerStatsRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	struct pv_ctr *c = NULL;
	if (pv_store_ctr_get(d->store, in->container_id, &c, err) < 0)
		return -1;
	Runtime__V1__ContainerStatsResponse *o = cri_call_new(call, Runtime__V1__ContainerStatsResponse);
	runtime__v1__container_stats_response__init(o);
	o->stats = ctr_stats(call, d, c, NULL);
	pv_ctr_free(c);
	*resp = &o->base;
	return 0;
}

CRI_HANDLER(cri_ctr_list_stats)
{
	const Runtime__V1__ListContainerStatsRequest *in = (const void *)req;
	const Runtime__V1__ContainerStatsFilter *f = in->filter;
	struct pv_daemon *d = cri_call_daemon(call);
	size_t n;
	struct pv_ctr **ctrs = pv_store_ctr_list(d->store, &n);
	Runtime__V1__ListContainerStatsResponse *o = cri_call_new(call, Runtime__V1__ListContainerStatsResponse);
	runtime__v1__list_container_stats_response__init(o);
	o->stats = cri_call_alloc(call, (n ? n : 1) * sizeof(*o->stats));
	for (size_t i = 0; i < n; i++) {
		const struct pv_ctr *c = ctrs[i];
		/* kubelet lists stats of running containers only. */
		if (c->st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
			continue;
		if (f && f->id && *f->id && strncmp(c->id, f->id, strlen(f->id)))
			continue;
		if (f && f->pod_sandbox_id && *f->pod_sandbox_id &&
		    strncmp(c->pod_id, f->pod_sandbox_id, strlen(f->pod_sandbox_id)))
			continue;
		if (f && !pv_labels_match(PV_MAP(f->label_selector), f->n_label_selector, PV_MAP(c->config->labels),
					  c->config->n_labels))
			continue;
		o->stats[o->n_stats++] = ctr_stats(call, d, c, NULL);
	}
	pv_ctr_list_free(ctrs, n);
	*resp = &o->base;
	return 0;
}

static Runtime__V1__PodSandboxStats *pod_stats(struct cri_call *call, struct pv_daemon *d, const struct pv_pod *p)
{
	Runtime__V1__PodSandboxStats *o = cri_call_new(call, Runtime__V1__PodSandboxStats);
	runtime__v1__pod_sandbox_stats__init(o);
	Runtime__V1__PodSandboxAttributes *at = cri_call_new(call, Runtime__V1__PodSandboxAttributes);
	runtime__v1__pod_sandbox_attributes__init(at);
	at->id = cri_call_strdup(call, p->id);
	at->metadata = cri_pod_metadata(call, p->config->metadata);
	COPY_MAP(call, at, p->config, &runtime__v1__pod_sandbox_attributes__labels_entry__descriptor);
	COPY_ANNOTATIONS(call, at, p->config, &runtime__v1__pod_sandbox_attributes__annotations_entry__descriptor);
	o->attributes = at;

	Runtime__V1__LinuxPodSandboxStats *lx = cri_call_new(call, Runtime__V1__LinuxPodSandboxStats);
	runtime__v1__linux_pod_sandbox_stats__init(lx);
	Podvisor__Agent__StatsContainerResponse sum = PODVISOR__AGENT__STATS_CONTAINER_RESPONSE__INIT;
	size_t n;
	struct pv_ctr **ctrs = pv_store_ctr_list(d->store, &n);
	lx->containers = cri_call_alloc(call, (n ? n : 1) * sizeof(*lx->containers));
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ctrs[i]->pod_id, p->id) &&
		    ctrs[i]->st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
			lx->containers[lx->n_containers++] = ctr_stats(call, d, ctrs[i], &sum);
	pv_ctr_list_free(ctrs, n);
	int64_t ts = sum.timestamp_ns ? sum.timestamp_ns : pv_now_realtime_ns();
	lx->cpu = cpu_usage(call, ts, sum.cpu_usage_usec);
	lx->memory = mem_usage(call, ts, &sum);
	Runtime__V1__ProcessUsage *pu = cri_call_new(call, Runtime__V1__ProcessUsage);
	runtime__v1__process_usage__init(pu);
	pu->timestamp = ts;
	pu->process_count = u64(call, sum.pids_current);
	lx->process = pu;
	o->linux = lx;
	return o;
}

CRI_HANDLER(cri_pod_stats)
{
	const Runtime__V1__PodSandboxStatsRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	struct pv_pod *p = NULL;
	if (pv_store_pod_get(d->store, in->pod_sandbox_id, &p, err) < 0)
		return -1;
	Runtime__V1__PodSandboxStatsResponse *o = cri_call_new(call, Runtime__V1__PodSandboxStatsResponse);
	runtime__v1__pod_sandbox_stats_response__init(o);
	o->stats = pod_stats(call, d, p);
	pv_pod_free(p);
	*resp = &o->base;
	return 0;
}

CRI_HANDLER(cri_pod_list_stats)
{
	const Runtime__V1__ListPodSandboxStatsRequest *in = (const void *)req;
	const Runtime__V1__PodSandboxStatsFilter *f = in->filter;
	struct pv_daemon *d = cri_call_daemon(call);
	size_t n;
	struct pv_pod **pods = pv_store_pod_list(d->store, &n);
	Runtime__V1__ListPodSandboxStatsResponse *o = cri_call_new(call, Runtime__V1__ListPodSandboxStatsResponse);
	runtime__v1__list_pod_sandbox_stats_response__init(o);
	o->stats = cri_call_alloc(call, (n ? n : 1) * sizeof(*o->stats));
	for (size_t i = 0; i < n; i++) {
		const struct pv_pod *p = pods[i];
		if (!p->st.ready)
			continue;
		if (f && f->id && *f->id && strncmp(p->id, f->id, strlen(f->id)))
			continue;
		if (f && !pv_labels_match(PV_MAP(f->label_selector), f->n_label_selector, PV_MAP(p->config->labels),
					  p->config->n_labels))
			continue;
		o->stats[o->n_stats++] = pod_stats(call, d, p);
	}
	pv_pod_list_free(pods, n);
	*resp = &o->base;
	return 0;
}
