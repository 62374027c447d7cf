#include "runtime_info.h"
#include "version.h"
#include "vmm.h"
#include "cleanup.h"
#include "config.h"
#include "handlers.h"
#include "log.h"
#include "network.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUNTIME_CONFIG_FILE "runtime-config.json"

/* Keys of the config's "runtime" section and the JSON type each must have. */
static const struct {
	const char *key;
	json_type type;
} runtime_keys[] = {
	{ "qemu", JSON_STRING },	   { "kernel", JSON_STRING },
	{ "initramfs", JSON_STRING },	   { "accel", JSON_STRING },
	{ "default_vcpus", JSON_INTEGER }, { "default_memory_mb", JSON_INTEGER },
	{ "memory_overhead_mb", JSON_INTEGER }, { "boot_timeout_s", JSON_INTEGER },
	{ "container_disk_mb", JSON_INTEGER },
	{ "oci_runtime", JSON_STRING },
	/* pods of either architecture (cri/handlers.c, docs/arm64.md) */
	{ "arch", JSON_STRING },	   { "arm64_qemu", JSON_STRING },
	{ "arm64_kernel", JSON_STRING },   { "arm64_initramfs", JSON_STRING },
	{ "arm64_initramfs_x86", JSON_STRING },
};

static int validate_runtime_section(const struct pv_config *cfg, pv_err_t **err)
{
	const char *key;
	json_t *v;
	json_object_foreach(cfg->runtime, key, v) {
		size_t i;
		for (i = 0; i < PV_ARRAY_SIZE(runtime_keys); i++)
			if (!strcmp(runtime_keys[i].key, key))
				break;
		const char *name = cfg->config_path ? cfg->config_path : "config";
		int line = pv_config_key_line(cfg->source_text, key);
		if (i == PV_ARRAY_SIZE(runtime_keys))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s:%d: key \"runtime.%s\": unknown key",
					  name, line, key);
		if (json_typeof(v) != runtime_keys[i].type)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s:%d: key \"runtime.%s\": must be %s",
					  name, line, key,
					  runtime_keys[i].type == JSON_STRING ? "a string" : "an integer");
	}
	return 0;
}

/* A heap copy of a string of the "runtime" section, or NULL. */
static char *runtime_string(const struct pv_config *cfg, const char *key)
{
	const char *v = pv_config_runtime_str(cfg, key);
	return v ? pv_xstrdup(v) : NULL;
}

/* The parent of this binary's directory (<prefix> for <prefix>/bin/podvisord), or NULL. */
static char *exe_prefix(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	char *bindir = dirname(exe);
	return pv_xstrdup(dirname(bindir));
}

/*
 * A VM asset not named in the config: the build tree's <bindir>/../<build_rel> (make build),
 * then the installed <bindir>/../lib/podvisor/<name> (make install). Neither there: the
 * installed path, which Status and --check then report as missing.
 */
char *cri_default_asset(const char *build_rel, const char *name)
{
	cleanup_free char *prefix = exe_prefix();
	if (!prefix)
		return pv_xasprintf(CRI_ASSET_DIR_REL "/%s", name);
	char *built = pv_xasprintf("%s/%s", prefix, build_rel);
	if (access(built, F_OK) == 0)
		return built;
	free(built);
	return pv_xasprintf("%s/" CRI_ASSET_DIR_REL "/%s", prefix, name);
}

int cri_runtime_info_init(struct pv_daemon *d, pv_err_t **err)
{
	const struct pv_config *cfg = d->cfg;
	if (cfg->runtime && validate_runtime_section(cfg, err) < 0)
		return -1;
	d->qemu_path = runtime_string(cfg, "qemu");
	if (!d->qemu_path) {
		const char *path = getenv("PATH");
		d->qemu_path = pv_find_executable(path && *path ? path : "/usr/bin:/bin", "qemu-system-x86_64");
		if (!d->qemu_path)
			d->qemu_path = pv_xstrdup("qemu-system-x86_64"); /* Status says it is missing */
	}
	d->kernel_path = runtime_string(cfg, "kernel");
	if (!d->kernel_path)
		d->kernel_path = cri_default_asset("kernel/vmlinux", "vmlinux");
	d->initramfs_path = runtime_string(cfg, "initramfs");
	if (!d->initramfs_path)
		d->initramfs_path = cri_default_asset("guest/initramfs.cpio", "initramfs.cpio");
	d->started_ns = pv_now_realtime_ns();

	/* The KVM probe runs a test VM (~0.3 s): do it once here, not in every shim. */
	enum vmm_accel want = VMM_ACCEL_AUTO;
	cleanup_free char *accel_cfg = runtime_string(cfg, "accel");
	if (accel_cfg && sandbox_accel_parse(accel_cfg, &want) < 0)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "runtime.accel: \"%s\" is not one of auto, kvm, hvf, tcg", accel_cfg);
	char *why = NULL;
	enum vmm_accel got = sandbox_accel_detect(want, "/dev/kvm", &why);
	d->accel = pv_xstrdup(sandbox_accel_name(got));
	d->accel_why = why ? why : pv_xstrdup("");
	pv_info("accelerator", "accel=%s why=%s", d->accel, d->accel_why);
	if (cri_handlers_init(d, d->accel, err) < 0)
		return -1;
	for (int i = 0; i < CRI_ARCH_COUNT; i++) {
		const struct cri_guest *g = &d->handlers->guests[i];
		pv_info("guest architecture", "arch=%s accel=%s default=%s missing=%s", sandbox_arch_name(g->arch),
			g->accel, d->handlers->def == g->arch ? "yes" : "no", g->missing ? g->missing : "");
	}

	cleanup_free char *path = pv_xasprintf("%s/%s", cfg->root_dir, RUNTIME_CONFIG_FILE);
	json_error_t jerr;
	json_t *saved = json_load_file(path, 0, &jerr);
	if (saved) {
		const char *cidr = json_string_value(json_object_get(saved, "pod_cidr"));
		if (cidr)
			d->pod_cidr = pv_xstrdup(cidr);
		json_decref(saved);
	} else if (access(path, F_OK) == 0) {
		return pv_err_set(err, PV_DATA_LOSS, EINVAL, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
	}
	return 0;
}

void cri_runtime_info_fini(struct pv_daemon *d)
{
	free(d->qemu_path);
	free(d->kernel_path);
	free(d->initramfs_path);
	free(d->accel);
	free(d->accel_why);
	free(d->pod_cidr);
	cri_handlers_fini(d->handlers);
	d->handlers = NULL;
}

int cri_runtime_version(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp,
			pv_err_t **err)
{
	Runtime__V1__VersionResponse *r = cri_call_new(call, Runtime__V1__VersionResponse);
	runtime__v1__version_response__init(r);
	r->version = cri_call_strdup(call, PV_KUBE_API_VERSION);
	r->runtime_name = cri_call_strdup(call, PV_RUNTIME_NAME);
	r->runtime_version = cri_call_strdup(call, PODVISOR_VERSION);
	r->runtime_api_version = cri_call_strdup(call, PV_RUNTIME_API_VERSION);
	*resp = &r->base;
	return 0;
}

static int file_readable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

static Runtime__V1__RuntimeCondition *condition(struct cri_call *call, const char *type, int ok,
						const char *reason, const char *message)
{
	Runtime__V1__RuntimeCondition *c = cri_call_new(call, Runtime__V1__RuntimeCondition);
	runtime__v1__runtime_condition__init(c);
	c->type = cri_call_strdup(call, type);
	c->status = ok;
	c->reason = cri_call_strdup(call, ok ? "" : reason);
	c->message = cri_call_strdup(call, ok ? "" : message);
	return c;
}

/* RuntimeReady: everything a pod VM needs is present. */
static Runtime__V1__RuntimeCondition *runtime_ready(struct cri_call *call, struct pv_daemon *d)
{
	const char *missing = NULL, *what = NULL;
	if (access(d->qemu_path, X_OK) != 0)
		missing = d->qemu_path, what = "QEMU binary";
	else if (!file_readable(d->kernel_path))
		missing = d->kernel_path, what = "guest kernel";
	else if (!file_readable(d->initramfs_path))
		missing = d->initramfs_path, what = "guest initramfs";
	if (!missing)
		return condition(call, "RuntimeReady", 1, NULL, NULL);
	cleanup_free char *msg = pv_xasprintf("%s not found at %s (build it with `make build`, install it with "
					      "`make install`, or set runtime.* in the config file)", what, missing);
	return condition(call, "RuntimeReady", 0, "VMAssetsMissing", msg);
}

/* NetworkReady: a valid CNI config exists (cri/network.c). */
static Runtime__V1__RuntimeCondition *network_ready(struct cri_call *call, struct pv_daemon *d)
{
	cleanup_free char *reason = NULL, *message = NULL;
	int ok = cri_net_ready(d, &reason, &message);
	return condition(call, "NetworkReady", ok, reason, message);
}

static char *status_info_json(struct pv_daemon *d)
{
	const struct pv_config *cfg = d->cfg;
	pthread_mutex_lock(&d->lock);
	json_t *cidr = d->pod_cidr ? json_string(d->pod_cidr) : json_null();
	pthread_mutex_unlock(&d->lock);
	char started[48];
	pv_format_rfc3339nano(d->started_ns, started, sizeof(started));
	cleanup_free char *handlers = d->handlers ? cri_handlers_json(d->handlers) : NULL;
	json_t *hj = handlers ? json_loads(handlers, 0, NULL) : NULL;
	json_t *info = json_pack("{s:s, s:s, s:{s:s?, s:s, s:s, s:s, s:s, s:i}, s:{s:s, s:s, s:s, s:s}, s:o, s:o}",
				 "version", PODVISOR_VERSION, "started", started, "config", "path",
				 cfg->config_path, "listen", cfg->socket_path, "root", cfg->root_dir, "state_dir",
				 cfg->state_dir, "cgroup_driver", cfg->cgroup_driver, "max_concurrent_calls",
				 cfg->max_concurrent_calls, "vm", "qemu", d->qemu_path, "kernel", d->kernel_path,
				 "initramfs", d->initramfs_path, "accel", d->accel, "pod_cidr", cidr, "runtime_handlers",
				 hj ? hj : json_array());
	char *s = json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(info);
	return s;
}

int cri_runtime_status(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp,
		       pv_err_t **err)
{
	const Runtime__V1__StatusRequest *in = (const Runtime__V1__StatusRequest *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	Runtime__V1__StatusResponse *r = cri_call_new(call, Runtime__V1__StatusResponse);
	runtime__v1__status_response__init(r);
	Runtime__V1__RuntimeStatus *st = cri_call_new(call, Runtime__V1__RuntimeStatus);
	runtime__v1__runtime_status__init(st);
	st->n_conditions = 2;
	st->conditions = cri_call_alloc(call, 2 * sizeof(*st->conditions));
	st->conditions[0] = runtime_ready(call, d);
	st->conditions[1] = network_ready(call, d);
	r->status = st;

	/* The default handler (empty name, as kubelet expects) and each named one whose guest this
	 * node has; the verbose info says per handler which architecture and accelerator it uses. */
	const struct cri_handlers *hs = d->handlers;
	r->runtime_handlers = cri_call_alloc(call, (hs ? hs->n : 1) * sizeof(*r->runtime_handlers));
	for (size_t i = 0; i < (hs ? hs->n : 1); i++) {
		const struct cri_handler *e = hs ? &hs->handlers[i] : NULL;
		if (e && *e->name && hs->guests[e->arch].missing)
			continue;
		Runtime__V1__RuntimeHandler *h = cri_call_new(call, Runtime__V1__RuntimeHandler);
		runtime__v1__runtime_handler__init(h);
		h->name = cri_call_strdup(call, e ? e->name : "");
		Runtime__V1__RuntimeHandlerFeatures *f = cri_call_new(call, Runtime__V1__RuntimeHandlerFeatures);
		runtime__v1__runtime_handler_features__init(f);
		h->features = f;
		r->runtime_handlers[r->n_runtime_handlers++] = h;
	}

	if (in->verbose) {
		Runtime__V1__StatusResponse__InfoEntry *e = cri_call_new(call, Runtime__V1__StatusResponse__InfoEntry);
		runtime__v1__status_response__info_entry__init(e);
		e->key = cri_call_strdup(call, "info");
		char *json = status_info_json(d);
		e->value = cri_call_strdup(call, json);
		free(json);
		r->n_info = 1;
		r->info = cri_call_alloc(call, sizeof(*r->info));
		r->info[0] = e;
	}
	*resp = &r->base;
	return 0;
}

int cri_runtime_config(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp,
		       pv_err_t **err)
{
	struct pv_daemon *d = cri_call_daemon(call);
	Runtime__V1__RuntimeConfigResponse *r = cri_call_new(call, Runtime__V1__RuntimeConfigResponse);
	runtime__v1__runtime_config_response__init(r);
	Runtime__V1__LinuxRuntimeConfiguration *l = cri_call_new(call, Runtime__V1__LinuxRuntimeConfiguration);
	runtime__v1__linux_runtime_configuration__init(l);
	l->cgroup_driver = strcmp(d->cfg->cgroup_driver, "systemd") ? RUNTIME__V1__CGROUP_DRIVER__CGROUPFS
								    : RUNTIME__V1__CGROUP_DRIVER__SYSTEMD;
	r->linux = l;
	*resp = &r->base;
	return 0;
}

/* An IPv4 or IPv6 CIDR: address/prefix with a prefix in range for the family. */
static int cidr_valid(const char *s)
{
	const char *slash = strchr(s, '/');
	if (!slash || slash == s || !slash[1] || strlen(slash + 1) > 3)
		return 0;
	char *end;
	long bits = strtol(slash + 1, &end, 10);
	if (*end)
		return 0;
	cleanup_free char *addr = pv_xstrndup(s, (size_t)(slash - s));
	unsigned char buf[16];
	if (inet_pton(AF_INET, addr, buf) == 1)
		return bits >= 0 && bits <= 32;
	if (inet_pton(AF_INET6, addr, buf) == 1)
		return bits >= 0 && bits <= 128;
	return 0;
}

int cri_runtime_update_config(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp,
			      pv_err_t **err)
{
	const Runtime__V1__UpdateRuntimeConfigRequest *in = (const Runtime__V1__UpdateRuntimeConfigRequest *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	const char *cidr = NULL;
	if (in->runtime_config && in->runtime_config->network_config)
		cidr = in->runtime_config->network_config->pod_cidr;
	if (cidr && *cidr) {
		/* kubelet may send a comma-separated dual-stack pair. */
		cleanup_free char *copy = pv_xstrdup(cidr);
		char *save = NULL;
		for (char *one = strtok_r(copy, ",", &save); one; one = strtok_r(NULL, ",", &save))
			if (!cidr_valid(one))
				return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
						  "runtime_config.network_config.pod_cidr: \"%s\" is not a CIDR", one);
		json_t *doc = json_pack("{s:s}", "pod_cidr", cidr);
		char *text = json_dumps(doc, JSON_INDENT(2));
		json_decref(doc);
		cleanup_free char *path = pv_xasprintf("%s/%s", d->cfg->root_dir, RUNTIME_CONFIG_FILE);
		int r = pv_write_file_atomic(path, text, strlen(text), 0644, err);
		free(text);
		if (r < 0)
			return r;
		pthread_mutex_lock(&d->lock);
		free(d->pod_cidr);
		d->pod_cidr = pv_xstrdup(cidr);
		pthread_mutex_unlock(&d->lock);
		pv_info("pod CIDR updated", "pod_cidr=%s", cidr);
	}
	Runtime__V1__UpdateRuntimeConfigResponse *r = cri_call_new(call, Runtime__V1__UpdateRuntimeConfigResponse);
	runtime__v1__update_runtime_config_response__init(r);
	*resp = &r->base;
	return 0;
}
