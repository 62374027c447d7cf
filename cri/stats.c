/*
 * Container and pod statistics, the fields kubelet's CRI stats provider reads
 * (docs/kubelet.md, "Stats"). One sample per pod and call: the guest's answer to
 * StatsSandbox (every container's cgroup v2 figures and writable layer, eth0's
 * counters, the guest's memory) plus the host's view of the pod's VM (QEMU and the
 * shim from /proc: their CPU time and resident memory are what the pod costs the node).
 */
#include "runtime.h"
#include "stats_host.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include "../shim/client.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATS_CALL_TIMEOUT_MS 10000

/* ---- one pod's sample ------------------------------------------------------------ */

struct pod_sample {
	Podvisor__Shim__Response *resp;                     /* owns guest */
	const Podvisor__Agent__StatsSandboxResponse *guest; /* NULL: the VM did not answer */
	struct cri_host_usage host;
};

/* The pod's shim: its status (QEMU's pid) and the guest's StatsSandbox. The only shim calls here. */
static void pod_sample_take(struct pv_daemon *d, const char *pod_id, struct pod_sample *s)
{
	memset(s, 0, sizeof(*s));
	cleanup_shim struct shim_client *shim = NULL;
	Podvisor__Shim__Response *st = NULL;
	cleanup_err pv_err_t *err = NULL;
	if (cri_pod_shim(d, pod_id, &shim, &err) < 0 || shim_client_status(shim, &st, &err) < 0) {
		pv_debug("no stats from the pod's shim", "pod=%s error=%s", pod_id, err ? err->msg : "");
		return;
	}
	if (st->resp_case == PODVISOR__SHIM__RESPONSE__RESP_STATUS_INFO && st->status_info->vmm_pid &&
	    cri_stats_proc_usage((pid_t)st->status_info->vmm_pid, &s->host)) {
		s->host.ok = true;
		s->host.ts = pv_now_realtime_ns();
		cri_stats_proc_usage((pid_t)st->status_info->shim_pid, &s->host); /* a few MiB more, if readable */
	}
	shim_client_free_response(st);

	Podvisor__Agent__StatsSandboxRequest sr = PODVISOR__AGENT__STATS_SANDBOX_REQUEST__INIT;
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	areq.req_case = PODVISOR__AGENT__REQUEST__REQ_STATS_SANDBOX;
	areq.stats_sandbox = &sr;
	Podvisor__Shim__AgentRequest ar = PODVISOR__SHIM__AGENT_REQUEST__INIT;
	ar.request = &areq;
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_AGENT;
	req.agent = &ar;
	if (shim_client_call(shim, &req, STATS_CALL_TIMEOUT_MS, &s->resp, &err) < 0) {
		pv_debug("no stats from the pod's guest", "pod=%s error=%s", pod_id, err->msg);
		return;
	}
	if (s->resp->resp_case == PODVISOR__SHIM__RESPONSE__RESP_AGENT && s->resp->agent &&
	    s->resp->agent->resp_case == PODVISOR__AGENT__RESPONSE__RESP_STATS_SANDBOX)
		s->guest = s->resp->agent->stats_sandbox;
}

static void pod_sample_drop(struct pod_sample *s)
{
	if (s->resp)
		shim_client_free_response(s->resp);
	s->resp = NULL;
	s->guest = NULL;
}

static const Podvisor__Agent__StatsContainerResponse *sample_ctr(const struct pod_sample *s, const char *id)
{
	for (size_t i = 0; s->guest && i < s->guest->n_containers; i++)
		if (!strcmp(s->guest->containers[i]->container_id, id))
			return s->guest->containers[i];
	return NULL;
}

/* ---- CRI messages ------------------------------------------------------------------ */

static Runtime__V1__UInt64Value *u64(struct cri_call *call, uint64_t v)
{
	Runtime__V1__UInt64Value *o = cri_call_new(call, Runtime__V1__UInt64Value);
	runtime__v1__uint64_value__init(o);
	o->value = v;
	return o;
}

static Runtime__V1__CpuUsage *cpu_usage(struct cri_call *call, const char *kind, const char *id, int64_t ts,
					uint64_t usage_ns)
{
	Runtime__V1__CpuUsage *cpu = cri_call_new(call, Runtime__V1__CpuUsage);
	runtime__v1__cpu_usage__init(cpu);
	cpu->timestamp = ts;
	cpu->usage_core_nano_seconds = u64(call, usage_ns);
	uint64_t nano_cores;
	if (cri_stats_rate_update(kind, id, usage_ns, ts, &nano_cores))
		cpu->usage_nano_cores = u64(call, nano_cores);
	return cpu;
}

struct mem_figures {
	uint64_t working_set, usage, rss, faults, major_faults, available;
	bool has_available;
};

static Runtime__V1__MemoryUsage *mem_usage(struct cri_call *call, int64_t ts, const struct mem_figures *f)
{
	Runtime__V1__MemoryUsage *m = cri_call_new(call, Runtime__V1__MemoryUsage);
	runtime__v1__memory_usage__init(m);
	m->timestamp = ts;
	m->working_set_bytes = u64(call, f->working_set);
	m->usage_bytes = u64(call, f->usage);
	m->rss_bytes = u64(call, f->rss);
	m->page_faults = u64(call, f->faults);
	m->major_page_faults = u64(call, f->major_faults);
	if (f->has_available)
		m->available_bytes = u64(call, f->available);
	return m;
}

static Runtime__V1__ContainerAttributes *ctr_attributes(struct cri_call *call, const struct pv_ctr *c)
{
	Runtime__V1__ContainerAttributes *at = cri_call_new(call, Runtime__V1__ContainerAttributes);
	runtime__v1__container_attributes__init(at);
	at->id = cri_call_strdup(call, c->id);
	at->metadata = cri_ctr_metadata(call, c->config);
	COPY_MAP(call, at, c->config, &runtime__v1__container_attributes__labels_entry__descriptor);
	COPY_ANNOTATIONS(call, at, c->config, &runtime__v1__container_attributes__annotations_entry__descriptor);
	return at;
}

/* The container's writable layer: its qcow2 overlay lives in the pod's disk dir. */
static Runtime__V1__FilesystemUsage *writable_layer(struct cri_call *call, struct pv_daemon *d,
						    const struct pv_ctr *c, int64_t ts,
						    const Podvisor__Agent__StatsContainerResponse *s)
{
	Runtime__V1__FilesystemUsage *fs = cri_call_new(call, Runtime__V1__FilesystemUsage);
	runtime__v1__filesystem_usage__init(fs);
	fs->timestamp = ts;
	Runtime__V1__FilesystemIdentifier *fid = cri_call_new(call, Runtime__V1__FilesystemIdentifier);
	runtime__v1__filesystem_identifier__init(fid);
	cleanup_free char *disks = cri_pod_disk_dir(d, c->pod_id);
	fid->mountpoint = cri_call_strdup(call, disks);
	fs->fs_id = fid;
	fs->used_bytes = u64(call, s->writable_bytes);
	fs->inodes_used = u64(call, s->writable_inodes);
	return fs;
}

/* Stats of one container from its pod's sample; a container the guest has no figures for
 * (not running, or the VM did not answer) gets its attributes only. */
static Runtime__V1__ContainerStats *ctr_stats(struct cri_call *call, struct pv_daemon *d, const struct pv_ctr *c,
					      const struct pod_sample *ps)
{
	Runtime__V1__ContainerStats *o = cri_call_new(call, Runtime__V1__ContainerStats);
	runtime__v1__container_stats__init(o);
	o->attributes = ctr_attributes(call, c);
	const Podvisor__Agent__StatsContainerResponse *s = sample_ctr(ps, c->id);
	if (c->st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING || !s)
		return o;
	int64_t ts = s->timestamp_ns ? s->timestamp_ns : pv_now_realtime_ns();
	o->cpu = cpu_usage(call, "ctr", c->id, ts, s->cpu_usage_usec * 1000);
	struct mem_figures f = {
		.working_set = s->memory_working_set_bytes,
		.usage = s->memory_usage_bytes,
		.rss = s->memory_rss_bytes,
		.faults = s->memory_page_faults,
		.major_faults = s->memory_major_page_faults,
	};
	/* Bounded by the container's own limit, else by what the guest has left. */
	uint64_t room = s->memory_limit_bytes;
	if (!room && ps->guest)
		room = ps->guest->memory_available_bytes + s->memory_working_set_bytes;
	if (room) {
		f.has_available = true;
		f.available = room > s->memory_working_set_bytes ? room - s->memory_working_set_bytes : 0;
	}
	o->memory = mem_usage(call, ts, &f);
	o->writable_layer = writable_layer(call, d, c, ts, s);
	return o;
}

static bool ctr_running_in(const struct pv_ctr *c, const char *pod_id)
{
	return !strcmp(c->pod_id, pod_id) && c->st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
}

CRI_HANDLER(cri_ctr_stats)
{
	const Runtime__V1__ContainerStatsRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	struct pv_ctr *c = NULL;
	if (pv_store_ctr_get(d->store, in->container_id, &c, err) < 0)
		return -1;
	struct pod_sample ps = { 0 };
	if (c->st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
		pod_sample_take(d, c->pod_id, &ps);
	Runtime__V1__ContainerStatsResponse *o = cri_call_new(call, Runtime__V1__ContainerStatsResponse);
	runtime__v1__container_stats_response__init(o);
	o->stats = ctr_stats(call, d, c, &ps);
	pod_sample_drop(&ps);
	pv_ctr_free(c);
	*resp = &o->base;
	return 0;
}

static bool ctr_filter_match(const struct pv_ctr *c, const Runtime__V1__ContainerStatsFilter *f)
{
	/* kubelet lists stats of running containers only. */
	if (c->st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
		return false;
	if (f && f->id && *f->id && strncmp(c->id, f->id, strlen(f->id)))
		return false;
	if (f && f->pod_sandbox_id && *f->pod_sandbox_id &&
	    strncmp(c->pod_id, f->pod_sandbox_id, strlen(f->pod_sandbox_id)))
		return false;
	return !f || pv_labels_match(PV_MAP(f->label_selector), f->n_label_selector, PV_MAP(c->config->labels),
				     c->config->n_labels);
}

CRI_HANDLER(cri_ctr_list_stats)
{
	const Runtime__V1__ListContainerStatsRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	size_t n;
	struct pv_ctr **ctrs = pv_store_ctr_list(d->store, &n);
	Runtime__V1__ListContainerStatsResponse *o = cri_call_new(call, Runtime__V1__ListContainerStatsResponse);
	runtime__v1__list_container_stats_response__init(o);
	o->stats = cri_call_alloc(call, (n ? n : 1) * sizeof(*o->stats));
	bool *done = pv_xcalloc(n ? n : 1, sizeof(*done));
	/* One sample per pod, for all its listed containers. */
	for (size_t i = 0; i < n; i++) {
		if (done[i] || !ctr_filter_match(ctrs[i], in->filter))
			continue;
		struct pod_sample ps;
		pod_sample_take(d, ctrs[i]->pod_id, &ps);
		for (size_t j = i; j < n; j++) {
			if (!done[j] && !strcmp(ctrs[j]->pod_id, ctrs[i]->pod_id) && ctr_filter_match(ctrs[j], in->filter)) {
				o->stats[o->n_stats++] = ctr_stats(call, d, ctrs[j], &ps);
				done[j] = true;
			}
		}
		pod_sample_drop(&ps);
	}
	free(done);
	pv_ctr_list_free(ctrs, n);
	*resp = &o->base;
	return 0;
}

/* ---- pods ----------------------------------------------------------------------- */

static Runtime__V1__NetworkInterfaceUsage *iface_usage(struct cri_call *call,
						       const Podvisor__Agent__InterfaceStats *i)
{
	Runtime__V1__NetworkInterfaceUsage *u = cri_call_new(call, Runtime__V1__NetworkInterfaceUsage);
	runtime__v1__network_interface_usage__init(u);
	u->name = cri_call_strdup(call, i->name);
	u->rx_bytes = u64(call, i->rx_bytes);
	u->rx_errors = u64(call, i->rx_errors);
	u->tx_bytes = u64(call, i->tx_bytes);
	u->tx_errors = u64(call, i->tx_errors);
	return u;
}

/* The guest's interfaces; eth0 (the pod's CNI interface) is the default one. */
static Runtime__V1__NetworkUsage *net_usage(struct cri_call *call, const Podvisor__Agent__StatsSandboxResponse *g)
{
	if (!g->n_interfaces)
		return NULL;
	Runtime__V1__NetworkUsage *n = cri_call_new(call, Runtime__V1__NetworkUsage);
	runtime__v1__network_usage__init(n);
	n->timestamp = g->timestamp_ns;
	n->interfaces = cri_call_alloc(call, g->n_interfaces * sizeof(*n->interfaces));
	for (size_t i = 0; i < g->n_interfaces; i++) {
		n->interfaces[n->n_interfaces++] = iface_usage(call, g->interfaces[i]);
		if (!strcmp(g->interfaces[i]->name, "eth0"))
			n->default_interface = n->interfaces[i];
	}
	if (!n->default_interface)
		n->default_interface = n->interfaces[0];
	return n;
}

/*
 * The pod as the node pays for it: CPU time and resident memory of its QEMU and shim
 * (guest kernel, agent, emulation and all). Without the host's view, the guest's own
 * totals. Processes: those of the pod's containers.
 */
static void pod_usage(struct cri_call *call, const struct pv_pod *p, const struct pod_sample *ps,
		      Runtime__V1__LinuxPodSandboxStats *lx)
{
	const Podvisor__Agent__StatsSandboxResponse *g = ps->guest;
	int64_t ts = g && g->timestamp_ns ? g->timestamp_ns : pv_now_realtime_ns();
	struct mem_figures f = { 0 };
	uint64_t cpu_ns = 0, pids = 0;
	for (size_t i = 0; g && i < g->n_containers; i++) {
		f.rss += g->containers[i]->memory_rss_bytes;
		cpu_ns += g->containers[i]->cpu_usage_usec * 1000;
		pids += g->containers[i]->pids_current;
	}
	if (ps->host.ok) {
		ts = ps->host.ts;
		cpu_ns = ps->host.cpu_ns;
		f.usage = f.working_set = ps->host.rss;
		f.rss = ps->host.anon;
		f.faults = ps->host.minflt;
		f.major_faults = ps->host.majflt;
	} else if (g) {
		cpu_ns = g->cpu_usage_usec * 1000;
		f.usage = f.working_set = g->memory_total_bytes - g->memory_available_bytes;
	} else {
		return;
	}
	if (g) {
		f.has_available = true;
		f.available = g->memory_available_bytes;
	}
	lx->cpu = cpu_usage(call, "pod", p->id, ts, cpu_ns);
	lx->memory = mem_usage(call, ts, &f);
	if (g) {
		Runtime__V1__ProcessUsage *pu = cri_call_new(call, Runtime__V1__ProcessUsage);
		runtime__v1__process_usage__init(pu);
		pu->timestamp = ts;
		pu->process_count = u64(call, pids);
		lx->process = pu;
		lx->network = net_usage(call, g);
	}
}

static Runtime__V1__PodSandboxStats *pod_stats(struct cri_call *call, struct pv_daemon *d, const struct pv_pod *p,
					       struct pv_ctr **ctrs, size_t n)
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
	struct pod_sample ps = { 0 };
	if (p->st.ready)
		pod_sample_take(d, p->id, &ps);
	lx->containers = cri_call_alloc(call, (n ? n : 1) * sizeof(*lx->containers));
	for (size_t i = 0; i < n; i++)
		if (ctr_running_in(ctrs[i], p->id))
			lx->containers[lx->n_containers++] = ctr_stats(call, d, ctrs[i], &ps);
	pod_usage(call, p, &ps, lx);
	pod_sample_drop(&ps);
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
	size_t n;
	struct pv_ctr **ctrs = pv_store_ctr_list(d->store, &n);
	o->stats = pod_stats(call, d, p, ctrs, n);
	pv_ctr_list_free(ctrs, n);
	pv_pod_free(p);
	*resp = &o->base;
	return 0;
}

CRI_HANDLER(cri_pod_list_stats)
{
	const Runtime__V1__ListPodSandboxStatsRequest *in = (const void *)req;
	const Runtime__V1__PodSandboxStatsFilter *f = in->filter;
	struct pv_daemon *d = cri_call_daemon(call);
	size_t n, nc;
	struct pv_pod **pods = pv_store_pod_list(d->store, &n);
	struct pv_ctr **ctrs = pv_store_ctr_list(d->store, &nc);
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
		o->stats[o->n_stats++] = pod_stats(call, d, p, ctrs, nc);
	}
	pv_ctr_list_free(ctrs, nc);
	pv_pod_list_free(pods, n);
	*resp = &o->base;
	return 0;
}
