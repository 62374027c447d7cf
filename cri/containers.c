/* Containers: metadata here, the process in the pod's VM through its shim. */
#include "runtime.h"
#include "backend.h"
#include "cleanup.h"
#include "config.h"
#include "guest_abi.h"
#include "handlers.h"
#include "image/store.h"
#include "log.h"
#include "passwd.h"
#include "path.h"
#include "spec.h"
#include "util.h"
#include "volumes.h"

#include "../shim/client.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#define STOP_KILL_WAIT_MS 30000
/* The monitor folds a shim's answer within milliseconds; this only bounds a wait. */
#define FOLD_WAIT_MS 10000
#define EXEC_MAX_OUTPUT (16u << 20)

/* ---- status ------------------------------------------------------------- */

Runtime__V1__ContainerMetadata *cri_ctr_metadata(struct cri_call *call, const Runtime__V1__ContainerConfig *cfg)
{
	Runtime__V1__ContainerMetadata *m = cri_call_new(call, Runtime__V1__ContainerMetadata);
	runtime__v1__container_metadata__init(m);
	m->name = cri_call_strdup(call, cfg->metadata->name);
	m->attempt = cfg->metadata->attempt;
	return m;
}

/* The container's volumes as its config asked for them (kubelet and critest read them back). */
static Runtime__V1__Mount **ctr_status_mounts(struct cri_call *call, const Runtime__V1__ContainerConfig *cfg,
					      size_t *n)
{
	Runtime__V1__Mount **v = cri_call_alloc(call, (cfg->n_mounts ? cfg->n_mounts : 1) * sizeof(*v));
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		const Runtime__V1__Mount *m = cfg->mounts[i];
		Runtime__V1__Mount *o = cri_call_new(call, Runtime__V1__Mount);
		runtime__v1__mount__init(o);
		o->container_path = cri_call_strdup(call, m->container_path);
		o->host_path = cri_call_strdup(call, m->host_path);
		o->readonly = m->readonly;
		o->recursive_read_only = m->recursive_read_only;
		o->selinux_relabel = m->selinux_relabel;
		o->propagation = m->propagation;
		v[i] = o;
	}
	*n = cfg->n_mounts;
	return v;
}

Runtime__V1__ContainerStatus *cri_ctr_status_msg(struct cri_call *call, const struct pv_ctr *c)
{
	Runtime__V1__ContainerStatus *s = cri_call_new(call, Runtime__V1__ContainerStatus);
	runtime__v1__container_status__init(s);
	s->id = cri_call_strdup(call, c->id);
	s->metadata = cri_ctr_metadata(call, c->config);
	s->state = c->st.state;
	s->created_at = c->st.created_ns;
	s->started_at = c->st.started_ns;
	s->finished_at = c->st.finished_ns;
	s->exit_code = c->st.exit_code;
	Runtime__V1__ImageSpec *img = cri_call_new(call, Runtime__V1__ImageSpec);
	runtime__v1__image_spec__init(img);
	img->image = cri_call_strdup(call, c->st.image_name);
	s->image = img;
	s->image_ref = cri_call_strdup(call, c->st.image_ref ? c->st.image_ref : c->st.image_id);
	s->image_id = cri_call_strdup(call, c->st.image_id);
	s->reason = cri_call_strdup(call, c->st.reason);
	s->message = cri_call_strdup(call, c->st.message);
	s->log_path = cri_call_strdup(call, c->st.log_path);
	COPY_MAP(call, s, c->config, &runtime__v1__container_status__labels_entry__descriptor);
	COPY_ANNOTATIONS(call, s, c->config, &runtime__v1__container_status__annotations_entry__descriptor);
	if (c->config->linux && c->config->linux->resources) {
		Runtime__V1__ContainerResources *res = cri_call_new(call, Runtime__V1__ContainerResources);
		runtime__v1__container_resources__init(res);
		Runtime__V1__LinuxContainerResources *lr = cri_call_new(call, Runtime__V1__LinuxContainerResources);
		*lr = *c->config->linux->resources; /* scalars; strings and maps stay with c, copied below */
		lr->cpuset_cpus = cri_call_strdup(call, lr->cpuset_cpus);
		lr->cpuset_mems = cri_call_strdup(call, lr->cpuset_mems);
		lr->n_hugepage_limits = 0;
		lr->hugepage_limits = NULL;
		lr->unified = cri_copy_map(call, PV_MAP(c->config->linux->resources->unified),
					   c->config->linux->resources->n_unified,
					   &runtime__v1__linux_container_resources__unified_entry__descriptor, &lr->n_unified);
		res->linux = lr;
		s->resources = res;
	}
	s->stop_signal = c->config->stop_signal;
	s->mounts = ctr_status_mounts(call, c->config, &s->n_mounts);
	return s;
}

static Runtime__V1__ContainerState ctr_state(const struct pv_ctr *c)
{
	return (Runtime__V1__ContainerState)c->st.state;
}

static int get_ctr(struct pv_daemon *d, const char *id, struct pv_ctr **out, pv_err_t **err)
{
	return pv_store_ctr_get(d->store, id, out, err);
}

/* ---- CreateContainer ---------------------------------------------------- */

static void spec_image_from(struct spec_image *si, const struct image_info *info)
{
	si->env = info->env;
	si->entrypoint = info->entrypoint;
	si->cmd = info->cmd;
	si->workdir = info->workdir;
	si->user = info->user;
	si->stop_signal = info->stop_signal;
}

/* The container's log file beneath the pod's log directory (NULL: no log); the shim opens
 * it without following anything below the directory (pv_open_file_beneath). */
static int resolve_log_path(const char *dir, const char *path, char **out, pv_err_t **err)
{
	*out = NULL;
	if (!path || !*path)
		return 0;
	if (!dir || !*dir)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "config.log_path \"%s\" needs the pod's log_directory, which is empty", PV_ECHO(path));
	cleanup_free char *rel = NULL;
	if (pv_path_beneath(dir, path, "config.log_path", &rel, err) < 0)
		return -1;
	*out = dir[strlen(dir) - 1] == '/' ? pv_xasprintf("%s%s", dir, rel) : pv_xasprintf("%s/%s", dir, rel);
	return 0;
}

static int check_mounts(struct pv_daemon *d, const struct cri_backend *be, const Runtime__V1__ContainerConfig *cfg,
			pv_err_t **err)
{
	/* podvisor's own state is no volume: a pod could edit other pods' through the share. */
	const char *const own[] = { d->cfg->root_dir, d->cfg->state_dir, NULL };
	if ((be->volumes_direct ? cri_volumes_check_host(cfg, own, err) : cri_volumes_check(cfg, own, err)) < 0)
		return -1;
	if (cfg->n_devices)
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENOTSUP,
				  "config.devices: host devices are not passed to a %s's containers", be->what);
	return 0;
}

static bool has_destination(const Runtime__V1__ContainerConfig *cfg, const char *path)
{
	for (size_t i = 0; i < cfg->n_mounts; i++)
		if (!strcmp(cfg->mounts[i]->container_path, path))
			return true;
	return false;
}

/* The agent's process spec for this container's config and image. */
static int build_process(struct pv_daemon *d, struct cri_arena *a, const Runtime__V1__ContainerConfig *cfg,
			 const struct image_info *info, const char *hostname, Podvisor__Agent__Process **out,
			 pv_err_t **err)
{
	struct spec_image si = { 0 };
	spec_image_from(&si, info);
	struct pv_passwd *pw = NULL;
	if (pv_passwd_load_ext4(info->ext4_path, &pw, err) < 0)
		return -1;
	struct spec_ids ids = pv_passwd_ids(pw);
	int r = spec_build_process(a, cfg, &si, &ids, hostname, out, err);
	pv_passwd_free(pw);
	return r;
}

/* pin: keep the image's ext4 from being removed while a container uses it (release by chain id). */
/* pod_handler: a tag pulled for several platforms gives the one of the pod's runtime handler. */
static int resolve_image(struct pv_daemon *d, const char *name, int pin, const char *pod_handler,
			 struct image_info **out, pv_err_t **err)
{
	if (!d->images)
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTSUP, "the image store is not available");
	pv_err_t *e = NULL;
	struct image_platform want[IMAGE_PLATFORMS_MAX];
	int n = pod_handler ? cri_pull_platforms(d, pod_handler, NULL, want, IMAGE_PLATFORMS_MAX, NULL) : 0;
	n = n < 0 ? 0 : n;
	int r = pin ? image_store_acquire_for(d->images, name, want, (size_t)n, out, &e)
		    : image_store_resolve_for(d->images, name, want, (size_t)n, out, &e);
	if (r < 0) {
		if (e->status == PV_NOT_FOUND) {
			pv_err_free(e);
			return pv_err_set(err, PV_NOT_FOUND, ENOENT, "image \"%s\" not found: pull it first (PullImage)",
					  PV_ECHO(name));
		}
		pv_err_move(err, e);
		return -1;
	}
	return 0;
}

static int create_in_shim(struct pv_daemon *d, const struct pv_pod *pod, const char *id,
			  const Runtime__V1__ContainerConfig *cfg, const struct image_info *info, const char *log_path,
			  struct cri_volumes *vols, pv_err_t **err)
{
	struct cri_arena a = { 0 };
	Podvisor__Agent__CreateContainerRequest spec = PODVISOR__AGENT__CREATE_CONTAINER_REQUEST__INIT;
	char node[256];
	const char *hostname = spec_pod_hostname(pod->config, node, sizeof(node));
	const Runtime__V1__LinuxContainerSecurityContext *sc = cfg->linux ? cfg->linux->security_context : NULL;
	int r = build_process(d, &a, cfg, info, hostname, &spec.process, err);
	if (r == 0)
		r = spec_build_security(&a, pod->config, cfg, spec.process, cri_backend_of(pod)->oci, &spec, err);
	if (r == 0)
		r = spec_build_resources(&a, cfg->linux ? cfg->linux->resources : NULL, &spec.resources, err);
	/* The pod's DNS settings, written by the agent at sandbox creation, as containerd shares them. */
	const Runtime__V1__DNSConfig *dns = pod->config->dns_config;
	Podvisor__Agent__Mount resolv = PODVISOR__AGENT__MOUNT__INIT;
	Podvisor__Agent__Mount **mounts = pv_xcalloc(vols->n + 1, sizeof(*mounts));
	char *resolv_opts[2] = { "rbind", "ro" };
	/* A volume on /etc/resolv.conf wins over the pod's (as in containerd). */
	if (dns && (dns->n_servers || dns->n_searches || dns->n_options) && !has_destination(cfg, "/etc/resolv.conf")) {
		resolv.destination = "/etc/resolv.conf";
		resolv.type = "bind";
		resolv.source = PV_GUEST_RESOLV_CONF;
		resolv.options = resolv_opts;
		resolv.n_options = sc && sc->readonly_rootfs ? 2 : 1;
		mounts[spec.n_mounts++] = &resolv;
	}
	for (size_t i = 0; i < vols->n; i++)
		mounts[spec.n_mounts++] = &vols->mounts[i];
	spec.mounts = mounts;
	if (r == 0) {
		spec.container_id = (char *)id;
		spec.readonly_rootfs = sc && sc->readonly_rootfs;
		spec.hostname = (char *)hostname;
		Podvisor__Shim__CreateContainerRequest req = PODVISOR__SHIM__CREATE_CONTAINER_REQUEST__INIT;
		req.container_id = (char *)id;
		req.image_disk = info->ext4_path;
		req.log_path = (char *)(log_path ? log_path : "");
		req.log_dir = log_path ? pod->config->log_directory : "";
		req.stdin = cfg->stdin; /* kept open for Attach */
		req.stdin_once = cfg->stdin_once;
		req.spec = &spec;
		cleanup_shim struct shim_client *shim = NULL;
		Podvisor__Shim__Response *out = NULL;
		r = cri_pod_shim(d, pod->id, &shim, err);
		if (r == 0)
			r = shim_client_create_container(shim, &req, &out, err);
		/* the store shows the container CREATED already; nothing to wait for */
		if (out)
			shim_client_free_response(out);
	}
	free(mounts);
	cri_arena_free(&a);
	return r;
}

/* The host side of the container's volumes, then the container in the VM; on failure
 * no volume mount is left behind. */
static int create_with_volumes(struct pv_daemon *d, const struct pv_pod *pod, const char *id,
			       const Runtime__V1__ContainerConfig *cfg, const struct image_info *info,
			       const char *log_path, pv_err_t **err)
{
	struct cri_volumes vols = { 0 };
	cleanup_free char *voldir = cri_pod_volumes_dir(d, pod->id);
	const char *const own[] = { d->cfg->root_dir, d->cfg->state_dir, NULL };
	int r = cri_backend_of(pod)->volumes_direct ? cri_volumes_direct(cfg, &vols)
						     : cri_volumes_setup(voldir, id, cfg, own, &vols, err);
	if (r == 0)
		r = create_in_shim(d, pod, id, cfg, info, log_path, &vols, err);
	cri_volumes_free(&vols);
	pv_err_t *ve = NULL;
	if (r < 0 && cri_volumes_release(voldir, id, &ve) < 0) {
		pv_warn("volumes of a failed container not released", "container=%s error=%s", id, ve->msg);
		pv_err_free(ve);
	}
	return r;
}

CRI_HANDLER(cri_ctr_create)
{
	const Runtime__V1__CreateContainerRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	const Runtime__V1__ContainerConfig *cfg = in->config;
	if (!cfg || !cfg->metadata || !cfg->metadata->name || !*cfg->metadata->name)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "config.metadata.name is required");
	if (!cfg->image || !cfg->image->image || !*cfg->image->image)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "config.image.image is required");
	struct pv_pod *pod = NULL;
	if (pv_store_pod_get(d->store, in->pod_sandbox_id, &pod, err) < 0)
		return -1;
	struct cri_shim_entry *pe = cri_pod_lock(d, pod->id, err);
	pv_pod_free(pod);
	pod = NULL;
	/* What the pod is now that we hold its lock (a Stop or Remove may have come first). */
	if (!pe || pv_store_pod_get(d->store, in->pod_sandbox_id, &pod, err) < 0) {
		cri_pod_unlock(d, pe);
		return -1;
	}
	struct image_info *info = NULL;
	cleanup_free char *id = NULL;
	cleanup_free char *log_path = NULL;
	int r = -1;
	if (resolve_log_path(pod->config->log_directory, cfg->log_path, &log_path, err) < 0)
		goto out;
	if (!pod->st.ready) {
		pv_err_set(err, PV_FAILED_PRECONDITION, EINVAL,
			   "pod sandbox %s is not ready (%s): remove it and run a new one", pod->id,
			   pod->st.reason ? pod->st.reason : "stopped");
		goto out;
	}
	if (check_mounts(d, cri_backend_of(pod), cfg, err) < 0)
		goto out;
	const char *handler = pod->st.runtime_handler ? pod->st.runtime_handler : "";
	if (resolve_image(d, cfg->image->image, 1, handler, &info, err) < 0 ||
	    cri_handler_check_image(d, handler, info, err) < 0)
		goto out;
	struct pv_ctr_state st = {
		.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED,
		.created_ns = pv_now_realtime_ns(),
		.image_id = info->id,
		.image_ref = info->repo_digests && info->repo_digests[0] ? info->repo_digests[0] : info->id,
		.image_name = cfg->image->image,
		.image_chain_id = info->chain_id,
		.log_path = log_path,
	};
	if (pv_store_ctr_add(d->store, pod->id, cfg, &st, &id, err) < 0)
		goto out;
	r = create_with_volumes(d, pod, id, cfg, info, log_path, err);
	if (r < 0) {
		pv_store_ctr_remove(d->store, id, NULL);
		pv_err_prefix(err, "create container %s", cfg->metadata->name);
		goto out;
	}
out:
	if (r < 0 && info)
		image_store_release(d->images, info->chain_id);
	cri_pod_unlock(d, pe);
	image_info_free(info);
	if (r < 0) {
		pv_pod_free(pod);
		return -1;
	}
	pv_info("container created", "pod=%s container=%s name=%s image=%s", pod->id, id, cfg->metadata->name,
		cfg->image->image);
	pv_pod_free(pod);
	cri_events_emit(d, id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT);
	Runtime__V1__CreateContainerResponse *o = cri_call_new(call, Runtime__V1__CreateContainerResponse);
	runtime__v1__create_container_response__init(o);
	o->container_id = cri_call_strdup(call, id);
	*resp = &o->base;
	return 0;
}

/* ---- StartContainer ----------------------------------------------------- */

/* The store has folded the shim's state as of resp (the monitor is its one writer). */
static void await_fold(struct pv_daemon *d, const char *pod_id, const Podvisor__Shim__Response *resp)
{
	if (resp)
		cri_monitor_wait_seq(d, pod_id, resp->seq, FOLD_WAIT_MS);
}

CRI_HANDLER(cri_ctr_start)
{
	const Runtime__V1__StartContainerRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	struct pv_ctr *c = NULL;
	if (get_ctr(d, in->container_id, &c, err) < 0)
		return -1;
	int r = -1;
	cleanup_shim struct shim_client *shim = NULL;
	if (ctr_state(c) != RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED) {
		pv_err_set(err, PV_FAILED_PRECONDITION, EINVAL,
			   "container %s is %s, not CREATED: only a created container can be started", c->id,
			   runtime__v1__container_state__descriptor.values[c->st.state].name);
		goto out;
	}
	Podvisor__Shim__Response *sr = NULL;
	if (cri_pod_shim(d, c->pod_id, &shim, err) < 0 || shim_client_start_container(shim, c->id, &sr, err) < 0) {
		cri_pod_refine_err(d, c->pod_id, err);
		pv_err_prefix(err, "start container %s", c->id);
		goto out;
	}
	/* RUNNING (or already EXITED) in the store before we answer, as the caller expects. */
	await_fold(d, c->pod_id, sr);
	shim_client_free_response(sr);
	pv_info("container started", "container=%s", c->id);
	r = 0;
out:
	pv_ctr_free(c);
	if (r < 0)
		return -1;
	Runtime__V1__StartContainerResponse *o = cri_call_new(call, Runtime__V1__StartContainerResponse);
	runtime__v1__start_container_response__init(o);
	*resp = &o->base;
	return 0;
}

/* ---- StopContainer ------------------------------------------------------ */

/* Wait for the container's exit (a Wait holds a connection of the pool, no other call);
 * then the store shows it EXITED. */
static int wait_exit(struct pv_daemon *d, struct shim_client *shim, const struct pv_ctr *c, int timeout_ms,
		     pv_err_t **err)
{
	Podvisor__Shim__Response *r = NULL;
	int ret = shim_client_wait(shim, c->id, timeout_ms, &r, err);
	await_fold(d, c->pod_id, r);
	shim_client_free_response(r);
	return ret;
}

int cri_ctr_stop_now(struct pv_daemon *d, const struct pv_ctr *c, int64_t timeout_s, pv_err_t **err)
{
	/* The grace period counts from the call, not from when the signal got through. */
	int64_t deadline = pv_now_monotonic_ns() + (timeout_s > 100000 ? 100000 : timeout_s) * 1000000000LL;
	cleanup_shim struct shim_client *shim = NULL;
	if (cri_pod_shim(d, c->pod_id, &shim, err) < 0)
		return -1;
	int sig = SIGKILL;
	if (timeout_s > 0) {
		struct image_info *info = NULL;
		const char *img_sig = NULL;
		if (d->images && image_store_resolve(d->images, c->st.image_id, &info, NULL) == 0)
			img_sig = info->stop_signal;
		sig = spec_stop_signal(c->config, img_sig);
		image_info_free(info);
	}
	pv_err_t *e = NULL;
	int r = shim_client_signal(shim, c->id, sig, 0, &e);
	if (r == 0 && sig != SIGKILL) {
		int64_t ms = (deadline - pv_now_monotonic_ns()) / 1000000;
		pv_err_t *we = NULL;
		if (ms > 0 && wait_exit(d, shim, c, (int)ms, &we) == 0) {
			pv_err_free(e);
			return 0;
		}
		pv_info("container ignored its stop signal, killing", "container=%s signal=%d timeout_s=%lld", c->id,
			sig, (long long)timeout_s);
		pv_err_free(we);
	}
	pv_err_free(e);
	e = NULL;
	/* SIGKILL every process of the container, then wait for the shim to see it exit. */
	shim_client_signal(shim, c->id, SIGKILL, 1, &e);
	pv_err_free(e);
	return wait_exit(d, shim, c, STOP_KILL_WAIT_MS, err);
}

CRI_HANDLER(cri_ctr_stop)
{
	const Runtime__V1__StopContainerRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	struct pv_ctr *c = NULL;
	if (get_ctr(d, in->container_id, &c, err) < 0)
		return -1;
	int r = 0;
	if (ctr_state(c) == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING) {
		pv_err_t *e = NULL;
		r = cri_ctr_stop_now(d, c, in->timeout, &e);
		if (r < 0 && !cri_pod_running(d, c->pod_id)) {
			/* its pod stopped meanwhile, and the container with it */
			cri_monitor_settle(d, c->pod_id, FOLD_WAIT_MS);
			pv_err_free(e);
			r = 0;
		} else {
			pv_err_move(err, e);
		}
		if (r == 0)
			pv_info("container stopped", "container=%s timeout_s=%lld", c->id, (long long)in->timeout);
	}
	pv_ctr_free(c);
	if (r < 0)
		return -1;
	Runtime__V1__StopContainerResponse *o = cri_call_new(call, Runtime__V1__StopContainerResponse);
	runtime__v1__stop_container_response__init(o);
	*resp = &o->base;
	return 0;
}

/* ---- RemoveContainer ---------------------------------------------------- */

CRI_HANDLER(cri_ctr_remove)
{
	const Runtime__V1__RemoveContainerRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	Runtime__V1__RemoveContainerResponse *o = cri_call_new(call, Runtime__V1__RemoveContainerResponse);
	runtime__v1__remove_container_response__init(o);
	*resp = &o->base;
	struct pv_ctr *c = NULL;
	pv_err_t *lookup = NULL;
	if (get_ctr(d, in->container_id, &c, &lookup) < 0) {
		if (lookup->status == PV_NOT_FOUND) {
			pv_err_free(lookup);
			return 0; /* idempotent */
		}
		pv_err_move(err, lookup);
		return -1;
	}
	pv_err_t *le = NULL;
	struct cri_shim_entry *pe = cri_pod_lock(d, c->pod_id, &le);
	if (!pe) { /* its pod was removed meanwhile, and the container with it */
		pv_ctr_free(c);
		if (le->status == PV_NOT_FOUND) {
			pv_err_free(le);
			return 0;
		}
		pv_err_move(err, le);
		return -1;
	}
	struct pv_pod *pod = NULL;
	int r = 0;
	struct pv_ctr *now = NULL;
	if (get_ctr(d, c->id, &now, NULL) < 0) { /* removed by a concurrent call: done */
		cri_pod_unlock(d, pe);
		pv_ctr_free(c);
		return 0;
	}
	pv_ctr_free(now);
	if (pv_store_pod_get(d->store, c->pod_id, &pod, NULL) == 0 && pod->st.ready) {
		/* The shim kills it if it runs, removes it in the guest and hot-removes its disk. */
		cleanup_shim struct shim_client *shim = NULL;
		pv_err_t *e = NULL;
		r = cri_pod_shim(d, c->pod_id, &shim, &e);
		if (r == 0)
			r = shim_client_remove_container(shim, c->id, &e);
		if (r < 0 && e->status == PV_NOT_FOUND)
			r = 0;
		if (r < 0) {
			pv_err_move(err, e);
			pv_err_prefix(err, "remove container %s", c->id);
		} else {
			pv_err_free(e);
		}
	}
	pv_pod_free(pod);
	/* The container's volumes are unmounted on the host whatever became of its VM. */
	if (r == 0) {
		cleanup_free char *voldir = cri_pod_volumes_dir(d, c->pod_id);
		r = cri_volumes_release(voldir, c->id, err);
		if (r < 0)
			pv_err_prefix(err, "remove container %s", c->id);
	}
	if (r == 0)
		r = pv_store_ctr_remove(d->store, c->id, err);
	cri_pod_unlock(d, pe);
	if (r == 0) {
		if (d->images && c->st.image_chain_id)
			image_store_release(d->images, c->st.image_chain_id);
		cri_events_emit(d, c->id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT);
		pv_info("container removed", "container=%s", c->id);
	}
	pv_ctr_free(c);
	return r;
}

/* ---- ContainerStatus / ListContainers ----------------------------------- */

CRI_HANDLER(cri_ctr_status)
{
	const Runtime__V1__ContainerStatusRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	struct pv_ctr *c = NULL;
	if (get_ctr(d, in->container_id, &c, err) < 0)
		return -1;
	Runtime__V1__ContainerStatusResponse *o = cri_call_new(call, Runtime__V1__ContainerStatusResponse);
	runtime__v1__container_status_response__init(o);
	o->status = cri_ctr_status_msg(call, c);
	if (in->verbose) {
		json_t *info = json_pack("{s:s, s:s, s:s}", "podSandboxId", c->pod_id, "imageId",
					 c->st.image_id ? c->st.image_id : "", "logPath",
					 c->st.log_path ? c->st.log_path : "");
		char *json = json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(info);
		Runtime__V1__ContainerStatusResponse__InfoEntry *e =
			cri_call_new(call, Runtime__V1__ContainerStatusResponse__InfoEntry);
		runtime__v1__container_status_response__info_entry__init(e);
		e->key = cri_call_strdup(call, "info");
		e->value = cri_call_strdup(call, json);
		free(json);
		o->info = cri_call_alloc(call, sizeof(*o->info));
		o->info[0] = e;
		o->n_info = 1;
	}
	pv_ctr_free(c);
	*resp = &o->base;
	return 0;
}

static int ctr_matches(const struct pv_ctr *c, const Runtime__V1__ContainerFilter *f)
{
	if (!f)
		return 1;
	if (f->id && *f->id && strncmp(c->id, f->id, strlen(f->id)))
		return 0;
	if (f->pod_sandbox_id && *f->pod_sandbox_id && strncmp(c->pod_id, f->pod_sandbox_id, strlen(f->pod_sandbox_id)))
		return 0;
	if (f->state && (int)f->state->state != c->st.state)
		return 0;
	return pv_labels_match(PV_MAP(f->label_selector), f->n_label_selector, PV_MAP(c->config->labels),
			       c->config->n_labels);
}

CRI_HANDLER(cri_ctr_list)
{
	const Runtime__V1__ListContainersRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	size_t n;
	struct pv_ctr **ctrs = pv_store_ctr_list(d->store, &n);
	Runtime__V1__ListContainersResponse *o = cri_call_new(call, Runtime__V1__ListContainersResponse);
	runtime__v1__list_containers_response__init(o);
	o->containers = cri_call_alloc(call, (n ? n : 1) * sizeof(*o->containers));
	for (size_t i = 0; i < n; i++) {
		const struct pv_ctr *c = ctrs[i];
		if (!ctr_matches(c, in->filter))
			continue;
		Runtime__V1__Container *x = cri_call_new(call, Runtime__V1__Container);
		runtime__v1__container__init(x);
		x->id = cri_call_strdup(call, c->id);
		x->pod_sandbox_id = cri_call_strdup(call, c->pod_id);
		x->metadata = cri_ctr_metadata(call, c->config);
		Runtime__V1__ImageSpec *img = cri_call_new(call, Runtime__V1__ImageSpec);
		runtime__v1__image_spec__init(img);
		img->image = cri_call_strdup(call, c->st.image_name);
		x->image = img;
		x->image_ref = cri_call_strdup(call, c->st.image_ref ? c->st.image_ref : c->st.image_id);
		x->image_id = cri_call_strdup(call, c->st.image_id);
		x->state = c->st.state;
		x->created_at = c->st.created_ns;
		COPY_MAP(call, x, c->config, &runtime__v1__container__labels_entry__descriptor);
		COPY_ANNOTATIONS(call, x, c->config, &runtime__v1__container__annotations_entry__descriptor);
		o->containers[o->n_containers++] = x;
	}
	pv_ctr_list_free(ctrs, n);
	*resp = &o->base;
	return 0;
}

/* ---- UpdateContainerResources / ReopenContainerLog ---------------------- */

static int running_ctr(struct pv_daemon *d, const char *id, const char *what, struct pv_ctr **out, pv_err_t **err)
{
	if (get_ctr(d, id, out, err) < 0)
		return -1;
	if (ctr_state(*out) != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING &&
	    !(ctr_state(*out) == RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED && !strcmp(what, "update"))) {
		pv_err_set(err, PV_FAILED_PRECONDITION, EINVAL, "container %s is not running", (*out)->id);
		pv_ctr_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

CRI_HANDLER(cri_ctr_update_resources)
{
	const Runtime__V1__UpdateContainerResourcesRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	struct pv_ctr *c = NULL;
	if (running_ctr(d, in->container_id, "update", &c, err) < 0)
		return -1;
	struct cri_arena a = { 0 };
	Podvisor__Shim__UpdateResourcesRequest ur = PODVISOR__SHIM__UPDATE_RESOURCES_REQUEST__INIT;
	ur.container_id = c->id;
	cleanup_shim struct shim_client *shim = NULL;
	int r = spec_build_resources(&a, in->linux, &ur.resources, err);
	if (r == 0)
		r = cri_pod_shim(d, c->pod_id, &shim, err);
	if (r == 0) {
		Podvisor__Shim__Request sreq = PODVISOR__SHIM__REQUEST__INIT;
		sreq.req_case = PODVISOR__SHIM__REQUEST__REQ_UPDATE_RESOURCES;
		sreq.update_resources = &ur;
		r = shim_client_call(shim, &sreq, 30000, NULL, err);
		if (r < 0)
			cri_pod_refine_err(d, c->pod_id, err);
	}
	cri_arena_free(&a);
	pv_ctr_free(c);
	if (r < 0)
		return -1;
	Runtime__V1__UpdateContainerResourcesResponse *o =
		cri_call_new(call, Runtime__V1__UpdateContainerResourcesResponse);
	runtime__v1__update_container_resources_response__init(o);
	*resp = &o->base;
	return 0;
}

CRI_HANDLER(cri_ctr_reopen_log)
{
	const Runtime__V1__ReopenContainerLogRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	struct pv_ctr *c = NULL;
	if (running_ctr(d, in->container_id, "reopen", &c, err) < 0)
		return -1;
	cleanup_shim struct shim_client *shim = NULL;
	int r = cri_pod_shim(d, c->pod_id, &shim, err);
	if (r == 0)
		r = shim_client_reopen_log(shim, c->id, err);
	if (r < 0)
		cri_pod_refine_err(d, c->pod_id, err);
	pv_ctr_free(c);
	if (r < 0)
		return -1;
	Runtime__V1__ReopenContainerLogResponse *o = cri_call_new(call, Runtime__V1__ReopenContainerLogResponse);
	runtime__v1__reopen_container_log_response__init(o);
	*resp = &o->base;
	return 0;
}

/* ---- ExecSync ----------------------------------------------------------- */

int cri_ctr_exec_process(struct pv_daemon *d, struct cri_arena *a, const struct pv_ctr *c, char **cmd, size_t n_cmd,
			 bool tty, Podvisor__Agent__Process **out, pv_err_t **err)
{
	/* The exec'd process gets the container's user, environment and working directory. */
	struct image_info *info = NULL;
	struct pv_pod *pod = NULL;
	int r = pv_store_pod_get(d->store, c->pod_id, &pod, err);
	if (r == 0)
		r = resolve_image(d, c->st.image_id, 0, NULL, &info, err);
	char node[256];
	if (r == 0)
		r = build_process(d, a, c->config, info, spec_pod_hostname(pod->config, node, sizeof(node)), out, err);
	if (r == 0) {
		(*out)->args = cmd;
		(*out)->n_args = n_cmd;
		(*out)->terminal = tty;
	}
	image_info_free(info);
	pv_pod_free(pod);
	return r;
}

static void copy_bytes(struct cri_call *call, ProtobufCBinaryData *dst, const ProtobufCBinaryData *src)
{
	dst->len = src->len;
	dst->data = cri_call_alloc(call, src->len);
	if (src->len) /* an empty field has no data pointer */
		memcpy(dst->data, src->data, src->len);
}

CRI_HANDLER(cri_ctr_exec_sync)
{
	const Runtime__V1__ExecSyncRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	if (!in->n_cmd || !in->cmd[0] || !*in->cmd[0])
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "cmd is empty");
	if (in->timeout < 0)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "timeout must not be negative");
	struct pv_ctr *c = NULL;
	if (running_ctr(d, in->container_id, "exec", &c, err) < 0)
		return -1;
	struct cri_arena a = { 0 };
	Podvisor__Agent__Process *proc = NULL;
	cleanup_shim struct shim_client *shim = NULL;
	int r = cri_ctr_exec_process(d, &a, c, in->cmd, in->n_cmd, false, &proc, err);
	if (r < 0)
		goto out;
	Podvisor__Shim__ExecRequest er = PODVISOR__SHIM__EXEC_REQUEST__INIT;
	er.container_id = c->id;
	er.process = proc;
	er.timeout_ms = in->timeout > 0 ? (uint32_t)(in->timeout > 86400 ? 86400000 : in->timeout * 1000) : 0;
	er.max_output = EXEC_MAX_OUTPUT;
	Podvisor__Shim__Response *sr = NULL;
	r = cri_pod_shim(d, c->pod_id, &shim, err);
	if (r == 0)
		r = shim_client_exec(shim, &er, &sr, err);
	if (r < 0)
		cri_pod_refine_err(d, c->pod_id, err);
	if (r == 0 && (sr->resp_case != PODVISOR__SHIM__RESPONSE__RESP_EXEC || !sr->exec)) {
		r = pv_err_set(err, PV_INTERNAL, EPROTO, "shim answered exec without a result");
	} else if (r == 0 && sr->exec->timed_out) {
		r = pv_err_set(err, PV_DEADLINE_EXCEEDED, ETIMEDOUT, "command %s timed out after %lld s", PV_ECHO(in->cmd[0]),
			       (long long)in->timeout);
	} else if (r == 0) {
		Runtime__V1__ExecSyncResponse *o = cri_call_new(call, Runtime__V1__ExecSyncResponse);
		runtime__v1__exec_sync_response__init(o);
		o->exit_code = sr->exec->exit_code;
		copy_bytes(call, &o->stdout, &sr->exec->stdout);
		copy_bytes(call, &o->stderr, &sr->exec->stderr);
		*resp = &o->base;
	}
	if (sr)
		shim_client_free_response(sr);
out:
	cri_arena_free(&a);
	pv_ctr_free(c);
	return r;
}
