/* Pod sandboxes: one podvisor-shim per pod, and its micro-VM (or, for a host pod, its host agent). */
#include "runtime.h"
#include "backend.h"
#include "volumes.h"
#include "cleanup.h"
#include "config.h"
#include "image/store.h"
#include "log.h"
#include "network.h"
#include "handlers.h"
#include "runtime_info.h"
#include "templates.h"
#include "spec.h"
#include "util.h"
#include "vmm.h"

#include "../shim/client.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

/* The shim's graceful VM stop (agent shutdown, QMP quit) before it kills QEMU. */
#define SHIM_STOP_TIMEOUT_MS 10000
/* The monitor folds a stopped shim's final state within milliseconds; this is a bound. */
#define SHIM_SETTLE_TIMEOUT_MS 10000

/* ---- status messages ---------------------------------------------------- */

void *cri_copy_map(struct cri_call *call, struct pv_map_entry *const *src, size_t n,
		   const ProtobufCMessageDescriptor *desc, size_t *n_out)
{
	struct pv_map_entry **dst = cri_call_alloc(call, (n ? n : 1) * sizeof(*dst));
	for (size_t i = 0; i < n; i++) {
		struct pv_map_entry *e = cri_call_alloc(call, desc->sizeof_message);
		protobuf_c_message_init(desc, e);
		e->key = cri_call_strdup(call, src[i]->key);
		e->value = cri_call_strdup(call, src[i]->value);
		dst[i] = e;
	}
	*n_out = n;
	return dst;
}

Runtime__V1__PodSandboxMetadata *cri_pod_metadata(struct cri_call *call, const Runtime__V1__PodSandboxMetadata *m)
{
	Runtime__V1__PodSandboxMetadata *o = cri_call_new(call, Runtime__V1__PodSandboxMetadata);
	runtime__v1__pod_sandbox_metadata__init(o);
	o->name = cri_call_strdup(call, m->name);
	o->uid = cri_call_strdup(call, m->uid);
	o->namespace_ = cri_call_strdup(call, m->namespace_);
	o->attempt = m->attempt;
	return o;
}

static Runtime__V1__PodSandboxState pod_state(const struct pv_pod *p)
{
	return p->st.ready ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
}

Runtime__V1__PodSandboxStatus *cri_pod_status_msg(struct cri_call *call, const struct pv_pod *p)
{
	Runtime__V1__PodSandboxStatus *s = cri_call_new(call, Runtime__V1__PodSandboxStatus);
	runtime__v1__pod_sandbox_status__init(s);
	s->id = cri_call_strdup(call, p->id);
	s->metadata = cri_pod_metadata(call, p->config->metadata);
	s->state = pod_state(p);
	s->created_at = p->st.created_ns;
	s->runtime_handler = cri_call_strdup(call, p->st.runtime_handler);
	COPY_MAP(call, s, p->config, &runtime__v1__pod_sandbox_status__labels_entry__descriptor);
	COPY_ANNOTATIONS(call, s, p->config, &runtime__v1__pod_sandbox_status__annotations_entry__descriptor);

	Runtime__V1__PodSandboxNetworkStatus *net = cri_call_new(call, Runtime__V1__PodSandboxNetworkStatus);
	runtime__v1__pod_sandbox_network_status__init(net);
	net->ip = cri_call_strdup(call, p->st.ip);
	size_t extra = 0;
	while (p->st.extra_ips && p->st.extra_ips[extra])
		extra++;
	if (extra) {
		net->additional_ips = cri_call_alloc(call, extra * sizeof(*net->additional_ips));
		for (size_t i = 0; i < extra; i++) {
			Runtime__V1__PodIP *ip = cri_call_new(call, Runtime__V1__PodIP);
			runtime__v1__pod_ip__init(ip);
			ip->ip = cri_call_strdup(call, p->st.extra_ips[i]);
			net->additional_ips[i] = ip;
		}
		net->n_additional_ips = extra;
	}
	s->network = net;

	/* The namespaces the containers really have: a VM's own, or a host pod's as asked. */
	Runtime__V1__LinuxPodSandboxStatus *lx = cri_call_new(call, Runtime__V1__LinuxPodSandboxStatus);
	runtime__v1__linux_pod_sandbox_status__init(lx);
	Runtime__V1__Namespace *ns = cri_call_new(call, Runtime__V1__Namespace);
	runtime__v1__namespace__init(ns);
	Runtime__V1__NamespaceOption *opt = cri_call_new(call, Runtime__V1__NamespaceOption);
	runtime__v1__namespace_option__init(opt);
	cri_backend_ns_modes(p, &opt->network, &opt->pid, &opt->ipc);
	ns->options = opt;
	lx->namespaces = ns;
	s->linux = lx;
	return s;
}

/* ---- RunPodSandbox ------------------------------------------------------ */

static int validate_pod_config(const Runtime__V1__PodSandboxConfig *cfg, pv_err_t **err)
{
	if (!cfg)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "config is required");
	const Runtime__V1__PodSandboxMetadata *m = cfg->metadata;
	if (!m || !m->name || !*m->name)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "config.metadata.name is required");
	if (!m->namespace_ || !*m->namespace_)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "config.metadata.namespace is required");
	if (cfg->hostname && strlen(cfg->hostname) > 64)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "config.hostname is longer than 64 characters");
	return 0;
}

/* VM size from the pod's resources (limits of all its containers, from kubelet) plus
 * overhead: the policy is sandbox_sizing_compute()'s, the numbers the config's. */
static void vm_size(struct pv_daemon *d, const Runtime__V1__PodSandboxConfig *cfg, unsigned *vcpus,
		    uint64_t *mem_mib)
{
	const Runtime__V1__LinuxContainerResources *r = cfg->linux ? cfg->linux->resources : NULL;
	struct vmm_sizing sz;
	sandbox_sizing_defaults(&sz);
	sz.default_vcpus = (unsigned)pv_config_runtime_int(d->cfg, "default_vcpus", sz.default_vcpus);
	sz.default_memory_mib = (uint64_t)pv_config_runtime_int(d->cfg, "default_memory_mb", (int64_t)sz.default_memory_mib);
	sz.memory_overhead_mib =
		(uint64_t)pv_config_runtime_int(d->cfg, "memory_overhead_mb", (int64_t)sz.memory_overhead_mib);
	sandbox_sizing_compute(&sz, r ? r->cpu_quota : 0, r ? r->cpu_period : 0, r ? r->memory_limit_in_bytes : 0,
			       vcpus, mem_mib);
}

void cri_pod_default_spawn_opts(struct pv_daemon *d, struct shim_spawn_opts *o)
{
	Runtime__V1__PodSandboxConfig none = RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
	unsigned vcpus;
	uint64_t mem_mib;
	vm_size(d, &none, &vcpus, &mem_mib);
	*o = (struct shim_spawn_opts){
		.accel = d->accel,
		.log_level = d->cfg->log_level == PV_LOG_DEBUG ? "debug" : "info",
		.vcpus = vcpus,
		.memory_mib = mem_mib,
		.boot_timeout_ms = (int)pv_config_runtime_int(d->cfg, "boot_timeout_s", 60) * 1000,
	};
	const struct cri_handler *h = cri_handler_find(d->handlers, "", NULL);
	if (h)
		cri_handler_spawn_opts(d, h, o);
}

/* The shim booted although it was given a template: that template is bad. */
static void check_clone(struct pv_daemon *d, const char *dir, const char *tpl)
{
	Podvisor__Shim__StatusResponse *st = NULL;
	if (!tpl || shim_client_read_state(dir, &st, NULL) < 0)
		return;
	if (st->vm_start && !strcmp(st->vm_start, "boot-fallback"))
		cri_template_failed(d, tpl, st->vm_start_error);
	podvisor__shim__status_response__free_unpacked(st, NULL);
}

static int create_sandbox_in_guest(struct shim_client *sc, const Runtime__V1__PodSandboxConfig *cfg,
				   pv_err_t **err)
{
	Podvisor__Agent__CreateSandboxRequest sb = PODVISOR__AGENT__CREATE_SANDBOX_REQUEST__INIT;
	char node[256];
	sb.hostname = (char *)spec_pod_hostname(cfg, node, sizeof(node));
	if (cfg->dns_config) {
		sb.dns_servers = cfg->dns_config->servers;
		sb.n_dns_servers = cfg->dns_config->n_servers;
		sb.dns_searches = cfg->dns_config->searches;
		sb.n_dns_searches = cfg->dns_config->n_searches;
		sb.dns_options = cfg->dns_config->options;
		sb.n_dns_options = cfg->dns_config->n_options;
	}
	size_t n_sys = cfg->linux ? cfg->linux->n_sysctls : 0;
	cleanup_free Podvisor__Agent__KeyValue *kvs = pv_xcalloc(n_sys, sizeof(*kvs));
	cleanup_free Podvisor__Agent__KeyValue **kvp = pv_xcalloc(n_sys, sizeof(*kvp));
	for (size_t i = 0; i < n_sys; i++) {
		podvisor__agent__key_value__init(&kvs[i]);
		kvs[i].key = cfg->linux->sysctls[i]->key;
		kvs[i].value = cfg->linux->sysctls[i]->value;
		kvp[i] = &kvs[i];
	}
	sb.sysctls = kvp;
	sb.n_sysctls = n_sys;
	Podvisor__Shim__CreateSandboxRequest csr = PODVISOR__SHIM__CREATE_SANDBOX_REQUEST__INIT;
	csr.sandbox = &sb;
	Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
	req.req_case = PODVISOR__SHIM__REQUEST__REQ_CREATE_SANDBOX;
	req.create_sandbox = &csr;
	return shim_client_call(sc, &req, 30000, NULL, err);
}

/*
 * Stop a pod's shim, whatever state its VM is in: ask it to shut down (it stops the VM),
 * and if it will not go, kill it (QEMU dies with its shim). shim_pid 0: take it from the
 * shim's state file. A dead shim is fine. Then wait for the monitor to fold the shim's
 * final state (containers EXITED with their reasons).
 */
static void stop_shim(struct pv_daemon *d, const char *pod_id, pid_t shim_pid)
{
	if (shim_pid <= 0) {
		cleanup_free char *dir = cri_pod_dir(d, pod_id);
		Podvisor__Shim__StatusResponse *st = NULL;
		if (shim_client_read_state(dir, &st, NULL) == 0) {
			shim_pid = (pid_t)st->shim_pid;
			podvisor__shim__status_response__free_unpacked(st, NULL);
		}
	}
	if (shim_client_alive(shim_pid)) {
		cleanup_shim struct shim_client *sc = NULL;
		pv_err_t *e = NULL;
		int64_t t0 = pv_now_monotonic_ns();
		/* Bounded: a shim that does not answer its shutdown in time is killed. */
		Podvisor__Shim__ShutdownRequest sr = PODVISOR__SHIM__SHUTDOWN_REQUEST__INIT;
		sr.timeout_ms = SHIM_STOP_TIMEOUT_MS;
		Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
		req.req_case = PODVISOR__SHIM__REQUEST__REQ_SHUTDOWN;
		req.shutdown = &sr;
		if (cri_pod_shim(d, pod_id, &sc, &e) < 0 ||
		    shim_client_call(sc, &req, SHIM_STOP_TIMEOUT_MS + 5000, NULL, &e) < 0)
			pv_warn("shim shutdown failed, killing it", "pod=%s shim_pid=%d error=%s", pod_id, (int)shim_pid,
				e ? e->msg : "");
		pv_err_free(e);
		pv_debug("shim shutdown answered", "pod=%s ms=%lld", pod_id,
			 (long long)((pv_now_monotonic_ns() - t0) / 1000000));
		for (int i = 0; i < 100 && shim_client_alive(shim_pid); i++)
			usleep(50000);
		if (shim_client_alive(shim_pid)) {
			pv_warn("shim did not exit after shutdown, killing it", "pod=%s shim_pid=%d", pod_id,
				(int)shim_pid);
			kill(shim_pid, SIGKILL);
		}
	}
	cri_monitor_settle(d, pod_id, SHIM_SETTLE_TIMEOUT_MS);
}

CRI_HANDLER(cri_pod_run)
{
	const Runtime__V1__RunPodSandboxRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	const Runtime__V1__PodSandboxConfig *cfg = in->config;
	if (validate_pod_config(cfg, err) < 0)
		return -1;
	/* The pod's backend, once (recorded in its state, the shim runs it), then its handler's
	 * VM or host pod, which this node must be able to run. */
	const char *hname = in->runtime_handler ? in->runtime_handler : "";
	const struct cri_backend *be = NULL;
	bool by_policy = false;
	struct cri_backend_policy pol = cri_backend_policy_of(d);
	if (!cri_handler_find(d->handlers, hname, err) ||
	    cri_backend_choose(&pol, hname, cfg, &be, &by_policy, err) < 0)
		return -1;
	const struct cri_handler *handler = cri_handler_for_pod(d, be->oci ? CRI_HOST_HANDLER : hname, err);
	if (!handler)
		return -1;

	struct pv_pod_state st = { .ready = 0, .created_ns = pv_now_realtime_ns() };
	st.runtime_handler = in->runtime_handler;
	st.backend = (char *)be->name;
	st.reason = "Starting";
	cleanup_free char *id = NULL;
	if (pv_store_pod_add(d->store, cfg, &st, &id, err) < 0)
		return -1;
	cri_pod_register(d, id);
	struct cri_shim_entry *pe = cri_pod_lock(d, id, err);
	if (!pe)
		return -1;
	cleanup_free char *dir = cri_pod_dir(d, id);
	cleanup_free char *voldir = cri_pod_volumes_dir(d, id);
	cleanup_free char *diskdir = cri_pod_disk_dir(d, id);
	cleanup_free char *netns = NULL, *ip = NULL, *ip6 = NULL;
	cleanup_free char *ns_arg = cri_backend_ns_arg(cfg);
	unsigned vcpus;
	uint64_t mem_mib;
	vm_size(d, cfg, &vcpus, &mem_mib);
	pid_t shim_pid = 0;
	cleanup_shim struct shim_client *sc = NULL;
	int64_t t0 = pv_now_monotonic_ns();
	if (by_policy)
		pv_info("pod shares node namespaces: a host pod (runtime.host_namespace_pods is \"host\")",
			"pod=%s namespace=%s name=%s namespaces=%s", id, cfg->metadata->namespace_, cfg->metadata->name,
			ns_arg);
	/* A pod on the node's network gets no network of its own. */
	int r = cri_backend_host_network(cfg) ? 0 : cri_net_setup(d, id, cfg, &netns, &ip, &ip6, err);
	bool net_up = r == 0;
	int64_t t_net = pv_now_monotonic_ns(), t_tpl = t_net, t_spawn = t_net;
	cleanup_free char *tpl = NULL;
	/* A VM's volumes go through its share, a private mount; a host pod binds them itself. */
	if (r == 0 && !be->volumes_direct)
		r = cri_volumes_prepare(voldir, err);
	if (r == 0) {
		struct shim_spawn_opts o = {
			.state_dir = dir,
			.kernel = d->kernel_path,
			.initramfs = d->initramfs_path,
			.qemu = d->qemu_path,
			.name = id,
			.accel = d->accel,
			.log_level = d->cfg->log_level == PV_LOG_DEBUG ? "debug" : "info",
			.vcpus = vcpus,
			.memory_mib = mem_mib,
			.boot_timeout_ms = (int)pv_config_runtime_int(d->cfg, "boot_timeout_s", 60) * 1000,
			.netns = netns,
			.share_dir = voldir,
			.disk_dir = diskdir,
			.disk_size_mib = (uint64_t)pv_config_runtime_int(d->cfg, "container_disk_mb", 10240),
			.backend = be->vmm,
		};
		cri_handler_spawn_opts(d, handler, &o); /* the guest of the pod's architecture */
		if (be->oci) {
			o.oci_runtime = d->oci_runtime;
			o.namespaces = ns_arg;
		} else {
			/* Templates are of pod VMs: a host pod has no guest to clone. */
			o.template_dir = tpl = cri_template_for(d, &o, netns != NULL);
		}
		t_tpl = pv_now_monotonic_ns();
		r = shim_client_spawn(&o, &shim_pid, err);
		t_spawn = pv_now_monotonic_ns();
		if (r == 0)
			check_clone(d, dir, tpl);
		if (r == 0)
			r = cri_pod_shim(d, id, &sc, err);
		if (r == 0)
			r = create_sandbox_in_guest(sc, cfg, err);
		if (r < 0) {
			pv_err_prefix(err, "start %s for pod %s", be->what, cfg->metadata->name);
			stop_shim(d, id, shim_pid);
		}
	}
	if (r == 0) {
		st.ready = 1;
		st.reason = NULL;
		st.ip = ip ? ip : ip6;
		char *extra[2] = { ip && ip6 ? ip6 : NULL, NULL };
		st.extra_ips = extra;
		st.netns_path = netns;
		r = pv_store_pod_set_state(d->store, id, &st, err);
		if (r < 0)
			stop_shim(d, id, shim_pid);
	}
	if (r < 0) {
		/* Nothing of the pod is left: no VM, no network, no state, no disk, no record. */
		cri_volumes_release(voldir, NULL, NULL);
		pv_rm_rf(dir, NULL);
		pv_rm_rf(diskdir, NULL);
		if (net_up)
			cri_net_teardown(d, id, NULL);
		cri_monitor_forget(d, id);
		pv_store_pod_remove(d->store, id, NULL);
		cri_pod_unregister(d, pe);
		cri_pod_unlock(d, pe);
		return -1;
	}
	cri_monitor_follow(d, id);
	cri_pod_unlock(d, pe);
	int64_t t_end = pv_now_monotonic_ns();
	pv_info("pod started",
		"pod=%s namespace=%s name=%s backend=%s ip=%s vcpus=%u memory_mib=%llu shim_pid=%d template=%s ms=%lld "
		"net_ms=%lld template_ms=%lld spawn_ms=%lld sandbox_ms=%lld",
		id, cfg->metadata->namespace_, cfg->metadata->name, be->name, ip ? ip : "", vcpus,
		(unsigned long long)mem_mib, (int)shim_pid, tpl ? tpl : "", (long long)((t_end - t0) / 1000000),
		(long long)((t_net - t0) / 1000000), (long long)((t_tpl - t_net) / 1000000),
		(long long)((t_spawn - t_tpl) / 1000000), (long long)((t_end - t_spawn) / 1000000));
	Runtime__V1__RunPodSandboxResponse *o = cri_call_new(call, Runtime__V1__RunPodSandboxResponse);
	runtime__v1__run_pod_sandbox_response__init(o);
	o->pod_sandbox_id = cri_call_strdup(call, id);
	*resp = &o->base;
	return 0;
}

/* ---- StopPodSandbox ----------------------------------------------------- */

/* Stop every container, then the VM; the pod stays listed as NOTREADY. Idempotent.
 * Called with the pod's lifecycle lock held. */
static int pod_stop(struct pv_daemon *d, const char *pod_id, pv_err_t **err)
{
	size_t n;
	struct pv_ctr **ctrs = pv_store_ctr_list(d->store, &n);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ctrs[i]->pod_id, pod_id) || ctrs[i]->st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
			continue;
		/* CRI: containers of a stopped pod are stopped forcibly. */
		pv_err_t *e = NULL;
		if (cri_ctr_stop_now(d, ctrs[i], 0, &e) < 0) {
			pv_warn("stop container of pod failed", "pod=%s container=%s error=%s", pod_id, ctrs[i]->id,
				e->msg);
			pv_err_free(e);
		}
	}
	pv_ctr_list_free(ctrs, n);
	pv_debug("pod stop: containers stopped", "pod=%s", pod_id);
	/* The VM may already be gone (NOTREADY) while its shim still runs: stop it either way.
	 * The monitor then folds the shim's final state (containers' last exits). */
	stop_shim(d, pod_id, 0);
	pv_debug("pod stop: shim stopped", "pod=%s", pod_id);
	/* No host bind mount outlives the VM (and the pod directory's removal must not reach them). */
	cleanup_free char *voldir = cri_pod_volumes_dir(d, pod_id);
	if (cri_volumes_release(voldir, NULL, err) < 0)
		return -1;
	/* Nor does a container layer its shim mounted, if the shim died before unmounting it. */
	cleanup_free char *disks = cri_pod_disk_dir(d, pod_id);
	if (cri_volumes_unmount_under(disks, err) < 0)
		return -1;
	struct pv_pod *now = NULL;
	if (pv_store_pod_get(d->store, pod_id, &now, err) < 0)
		return -1;
	int r = now->st.ready ? pv_store_pod_set_ready(d->store, pod_id, 0, "Stopped", err) : 0;
	pv_pod_free(now);
	if (r < 0)
		return -1;
	/* CNI DEL last, once the VM no longer uses the network; kubelet retries Stop on error. */
	return cri_net_teardown(d, pod_id, err);
}

CRI_HANDLER(cri_pod_stop)
{
	const Runtime__V1__StopPodSandboxRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	struct pv_pod *p = NULL;
	if (pv_store_pod_get(d->store, in->pod_sandbox_id, &p, err) < 0)
		return -1;
	cleanup_free char *id = pv_xstrdup(p->id);
	pv_pod_free(p);
	struct cri_shim_entry *pe = cri_pod_lock(d, id, err);
	if (!pe)
		return -1;
	int r = pod_stop(d, id, err);
	cri_pod_unlock(d, pe);
	if (r < 0)
		return -1;
	pv_info("pod stopped", "pod=%s", id);
	Runtime__V1__StopPodSandboxResponse *o = cri_call_new(call, Runtime__V1__StopPodSandboxResponse);
	runtime__v1__stop_pod_sandbox_response__init(o);
	*resp = &o->base;
	return 0;
}

/* ---- RemovePodSandbox --------------------------------------------------- */

/* Forget the pod's containers: records, image pins, DELETED events. */
static int remove_ctrs(struct pv_daemon *d, const char *pod_id, pv_err_t **err)
{
	size_t n;
	int r = 0;
	struct pv_ctr **ctrs = pv_store_ctr_list(d->store, &n);
	for (size_t i = 0; i < n && r == 0; i++) {
		if (strcmp(ctrs[i]->pod_id, pod_id))
			continue;
		r = pv_store_ctr_remove(d->store, ctrs[i]->id, err);
		if (r < 0)
			break;
		if (d->images && ctrs[i]->st.image_chain_id)
			image_store_release(d->images, ctrs[i]->st.image_chain_id);
		cri_events_emit(d, ctrs[i]->id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT);
	}
	pv_ctr_list_free(ctrs, n);
	return r;
}

static bool is_not_found(pv_err_t *e)
{
	return e && e->status == PV_NOT_FOUND;
}

CRI_HANDLER(cri_pod_remove)
{
	const Runtime__V1__RemovePodSandboxRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	Runtime__V1__RemovePodSandboxResponse *o = cri_call_new(call, Runtime__V1__RemovePodSandboxResponse);
	runtime__v1__remove_pod_sandbox_response__init(o);
	*resp = &o->base;
	struct pv_pod *p = NULL;
	pv_err_t *lookup = NULL;
	if (pv_store_pod_get(d->store, in->pod_sandbox_id, &p, &lookup) < 0) {
		/* Removing what is not there is success (CRI: idempotent). */
		if (is_not_found(lookup)) {
			pv_err_free(lookup);
			return 0;
		}
		pv_err_move(err, lookup);
		return -1;
	}
	cleanup_free char *id = pv_xstrdup(p->id);
	pv_pod_free(p);
	pv_err_t *le = NULL;
	struct cri_shim_entry *pe = cri_pod_lock(d, id, &le);
	if (!pe) { /* removed by a concurrent call */
		if (is_not_found(le)) {
			pv_err_free(le);
			return 0;
		}
		pv_err_move(err, le);
		return -1;
	}
	int r = pod_stop(d, id, err);
	if (r == 0)
		r = remove_ctrs(d, id, err);
	cleanup_free char *dir = cri_pod_dir(d, id);
	cleanup_free char *diskdir = cri_pod_disk_dir(d, id);
	if (r == 0)
		r = pv_rm_rf(dir, err);
	if (r == 0)
		r = pv_rm_rf(diskdir, err);
	if (r == 0)
		r = pv_store_pod_remove(d->store, id, err);
	if (r == 0) {
		cri_monitor_forget(d, id);
		cri_pod_unregister(d, pe);
	}
	cri_pod_unlock(d, pe);
	if (r < 0)
		return -1;
	pv_info("pod removed", "pod=%s", id);
	return 0;
}

/* ---- PodSandboxStatus / ListPodSandbox ---------------------------------- */

static char *pod_info_json(struct pv_daemon *d, const struct pv_pod *p)
{
	json_t *info = json_object();
	cleanup_free char *dir = cri_pod_dir(d, p->id);
	json_object_set_new(info, "stateDir", json_string(dir));
	json_object_set_new(info, "backend", json_string(cri_backend_of(p)->name));
	cleanup_free char *diskdir = cri_pod_disk_dir(d, p->id);
	json_object_set_new(info, "diskDir", json_string(diskdir));
	if (p->st.reason)
		json_object_set_new(info, "reason", json_string(p->st.reason));
	Podvisor__Shim__StatusResponse *st = NULL;
	cleanup_shim struct shim_client *sc = NULL;
	Podvisor__Shim__Response *r = NULL;
	if (p->st.ready && cri_pod_shim(d, p->id, &sc, NULL) == 0 && shim_client_status(sc, &r, NULL) == 0 &&
	    r->resp_case == PODVISOR__SHIM__RESPONSE__RESP_STATUS_INFO)
		st = r->status_info;
	if (st) {
		json_object_set_new(info, "shimPid", json_integer(st->shim_pid));
		json_object_set_new(info, "vmmPid", json_integer(st->vmm_pid));
		json_object_set_new(info, "accel", json_string(st->accel));
		json_object_set_new(info, "vcpus", json_integer(st->vcpus));
		json_object_set_new(info, "memoryMiB", json_integer((json_int_t)st->memory_mib));
		json_object_set_new(info, "agentVersion", json_string(st->agent_version));
		json_object_set_new(info, "vmStart", json_string(st->vm_start));
		json_object_set_new(info, "vmState", json_string(shim_client_pod_state_name(st->state)));
		if (st->ready_at_ns && st->created_at_ns)
			json_object_set_new(info, "bootMs",
					    json_integer((st->ready_at_ns - st->created_at_ns) / 1000000));
	}
	if (r)
		shim_client_free_response(r);
	char *s = json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(info);
	return s;
}

CRI_HANDLER(cri_pod_status)
{
	const Runtime__V1__PodSandboxStatusRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	struct pv_pod *p = NULL;
	if (pv_store_pod_get(d->store, in->pod_sandbox_id, &p, err) < 0)
		return -1;
	Runtime__V1__PodSandboxStatusResponse *o = cri_call_new(call, Runtime__V1__PodSandboxStatusResponse);
	runtime__v1__pod_sandbox_status_response__init(o);
	o->status = cri_pod_status_msg(call, p);
	o->timestamp = pv_now_realtime_ns();
	if (in->verbose) {
		Runtime__V1__PodSandboxStatusResponse__InfoEntry *e =
			cri_call_new(call, Runtime__V1__PodSandboxStatusResponse__InfoEntry);
		runtime__v1__pod_sandbox_status_response__info_entry__init(e);
		e->key = cri_call_strdup(call, "info");
		char *json = pod_info_json(d, p);
		e->value = cri_call_strdup(call, json);
		free(json);
		o->info = cri_call_alloc(call, sizeof(*o->info));
		o->info[0] = e;
		o->n_info = 1;
	}
	pv_pod_free(p);
	*resp = &o->base;
	return 0;
}

static int pod_matches(const struct pv_pod *p, const Runtime__V1__PodSandboxFilter *f)
{
	if (!f)
		return 1;
	if (f->id && *f->id && strncmp(p->id, f->id, strlen(f->id)))
		return 0;
	if (f->state && f->state->state != pod_state(p))
		return 0;
	return pv_labels_match(PV_MAP(f->label_selector), f->n_label_selector, PV_MAP(p->config->labels),
			       p->config->n_labels);
}

CRI_HANDLER(cri_pod_list)
{
	const Runtime__V1__ListPodSandboxRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	size_t n;
	struct pv_pod **pods = pv_store_pod_list(d->store, &n);
	Runtime__V1__ListPodSandboxResponse *o = cri_call_new(call, Runtime__V1__ListPodSandboxResponse);
	runtime__v1__list_pod_sandbox_response__init(o);
	o->items = cri_call_alloc(call, (n ? n : 1) * sizeof(*o->items));
	for (size_t i = 0; i < n; i++) {
		const struct pv_pod *p = pods[i];
		if (!pod_matches(p, in->filter))
			continue;
		Runtime__V1__PodSandbox *s = cri_call_new(call, Runtime__V1__PodSandbox);
		runtime__v1__pod_sandbox__init(s);
		s->id = cri_call_strdup(call, p->id);
		s->metadata = cri_pod_metadata(call, p->config->metadata);
		s->state = pod_state(p);
		s->created_at = p->st.created_ns;
		s->runtime_handler = cri_call_strdup(call, p->st.runtime_handler);
		COPY_MAP(call, s, p->config, &runtime__v1__pod_sandbox__labels_entry__descriptor);
		COPY_ANNOTATIONS(call, s, p->config, &runtime__v1__pod_sandbox__annotations_entry__descriptor);
		o->items[o->n_items++] = s;
	}
	pv_pod_list_free(pods, n);
	*resp = &o->base;
	return 0;
}
