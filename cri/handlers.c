#include "handlers.h"

#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "config.h"
#include "daemon.h"
#include "../shim/client.h"
#include "image/store.h"
#include "runtime_info.h"
#include "store.h"
#include "util.h"

static void add(struct cri_handlers *h, const char *name, enum vmm_arch arch, bool x86_binfmt)
{
	struct cri_handler *e = &h->handlers[h->n++];
	*e = (struct cri_handler){ .name = name, .arch = arch, .x86_binfmt = x86_binfmt };
	image_platform_set(&e->platforms[e->n_platforms++], "linux", sandbox_arch_name(arch), NULL);
	if (x86_binfmt)
		image_platform_set(&e->platforms[e->n_platforms++], "linux", "amd64", NULL);
}

int cri_handlers_build(const char *arch_cfg, const char *host_machine, struct cri_handlers *out, pv_err_t **err)
{
	struct cri_handlers h = { 0 };
	if (sandbox_arch_parse(host_machine, &h.host) < 0)
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTSUP,
				  "host architecture \"%s\" has no podvisor guest (x86_64 and arm64 do)", host_machine);
	h.def = h.host;
	if (arch_cfg && strcmp(arch_cfg, "host") && sandbox_arch_parse(arch_cfg, &h.def) < 0)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "runtime.arch: \"%s\" is not one of host, x86_64, arm64", arch_cfg);
	add(&h, "", h.def, false);
	add(&h, PV_RUNTIME_NAME, h.def, false);
	add(&h, "x86_64", VMM_ARCH_X86_64, false);
	add(&h, "arm64", VMM_ARCH_ARM64, false);
	add(&h, "arm64-x86", VMM_ARCH_ARM64, true);
	*out = h;
	return 0;
}

const struct cri_handler *cri_handler_find(const struct cri_handlers *h, const char *name, pv_err_t **err)
{
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->handlers[i].name, name ? name : ""))
			return &h->handlers[i];
	pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
		   "runtime_handler \"%s\" is not configured (podvisor serves \"\", \"%s\", \"x86_64\", \"arm64\" "
		   "and \"arm64-x86\")",
		   name, PV_RUNTIME_NAME);
	return NULL;
}

size_t cri_handlers_any_platforms(const struct cri_handlers *h, struct image_platform *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < h->n; i++) {
		const struct cri_handler *e = &h->handlers[i];
		bool def = !*e->name, runs = !h->guests[e->arch].missing;
		if (!def && !runs)
			continue;
		for (size_t k = 0; k < e->n_platforms && n < max; k++)
			if (image_platform_find(out, n, &e->platforms[k]) < 0)
				out[n++] = e->platforms[k];
	}
	return n;
}

/* A runtime.<key> string, else the default. */
static char *asset(const struct pv_config *cfg, const char *key, const char *def_rel, const char *installed)
{
	const char *v = pv_config_runtime_str(cfg, key);
	return v ? pv_xstrdup(v) : cri_default_asset(def_rel, installed);
}

static char *find_qemu(const struct pv_config *cfg, const char *key, const char *name)
{
	const char *v = pv_config_runtime_str(cfg, key);
	if (v)
		return pv_xstrdup(v);
	const char *path = getenv("PATH");
	char *p = pv_find_executable(path && *path ? path : "/usr/bin:/bin", name);
	return p ? p : pv_xstrdup(name);
}

static int readable(const char *p)
{
	return access(p, R_OK) == 0;
}

static void check_guest(struct cri_guest *g)
{
	const char *what = NULL, *path = NULL;
	if (access(g->qemu, X_OK) != 0)
		what = "QEMU binary", path = g->qemu;
	else if (!readable(g->kernel))
		what = "guest kernel", path = g->kernel;
	else if (!readable(g->initramfs))
		what = "guest initramfs", path = g->initramfs;
	g->missing = what ? pv_xasprintf("%s not found at %s", what, path) : NULL;
}

int cri_handlers_init(struct pv_daemon *d, const char *host_accel, pv_err_t **err)
{
	struct utsname u;
	uname(&u);
	struct cri_handlers *h = pv_xcalloc(1, sizeof(*h));
	if (cri_handlers_build(pv_config_runtime_str(d->cfg, "arch"), u.machine, h, err) < 0) {
		free(h);
		return -1;
	}
	struct cri_guest *x = &h->guests[VMM_ARCH_X86_64], *a = &h->guests[VMM_ARCH_ARM64];
	*x = (struct cri_guest){ .arch = VMM_ARCH_X86_64, .qemu = pv_xstrdup(d->qemu_path),
				 .kernel = pv_xstrdup(d->kernel_path), .initramfs = pv_xstrdup(d->initramfs_path) };
	*a = (struct cri_guest){ .arch = VMM_ARCH_ARM64,
				 .qemu = find_qemu(d->cfg, "arm64_qemu", "qemu-system-aarch64"),
				 .kernel = asset(d->cfg, "arm64_kernel", "kernel/arm64/Image", "arm64/Image"),
				 .initramfs = asset(d->cfg, "arm64_initramfs", "guest/arm64/initramfs.cpio", "arm64/initramfs.cpio"),
				 .initramfs_x86 = asset(d->cfg, "arm64_initramfs_x86", "guest/arm64/initramfs-x86.cpio",
						       "arm64/initramfs-x86.cpio") };
	for (int i = 0; i < CRI_ARCH_COUNT; i++) {
		struct cri_guest *g = &h->guests[i];
		/* Only the host's own architecture can be accelerated (KVM, HVF); another is TCG. */
		g->accel = (enum vmm_arch)i == h->host ? host_accel : "tcg";
		g->emulated = !strcmp(g->accel, "tcg");
		check_guest(g);
	}
	d->handlers = h;
	return 0;
}

void cri_handlers_fini(struct cri_handlers *h)
{
	if (!h)
		return;
	for (int i = 0; i < CRI_ARCH_COUNT; i++) {
		struct cri_guest *g = &h->guests[i];
		free(g->qemu);
		free(g->kernel);
		free(g->initramfs);
		free(g->initramfs_x86);
		free(g->missing);
	}
	free(h);
}

char *cri_handlers_json(const struct cri_handlers *h)
{
	json_t *list = json_array();
	for (size_t i = 0; i < h->n; i++) {
		const struct cri_handler *e = &h->handlers[i];
		const struct cri_guest *g = &h->guests[e->arch];
		const char *missing = g->missing;
		if (!missing && e->x86_binfmt && !readable(g->initramfs_x86))
			missing = "guest initramfs with qemu-x86_64 not found";
		json_t *plats = json_array();
		for (size_t k = 0; k < e->n_platforms; k++) {
			char b[IMAGE_PLATFORM_STR];
			json_array_append_new(plats, json_string(image_platform_format(&e->platforms[k], b)));
		}
		json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:s, s:b, s:b, s:s?}", "name", e->name, "arch",
						      sandbox_arch_name(e->arch), "platforms", plats, "accel",
						      g->accel, "emulated", g->emulated, "available", !missing,
						      "missing", missing));
	}
	char *s = json_dumps(list, JSON_COMPACT);
	json_decref(list);
	return s;
}


const struct cri_handler *cri_handler_for_pod(const struct pv_daemon *d, const char *name, pv_err_t **err)
{
	if (!d->handlers) {
		pv_err_set(err, PV_FAILED_PRECONDITION, EINVAL, "no runtime handlers (podvisord is starting)");
		return NULL;
	}
	const struct cri_handler *h = cri_handler_find(d->handlers, name, err);
	if (!h)
		return NULL;
	const struct cri_guest *g = &d->handlers->guests[h->arch];
	if (g->missing) {
		pv_err_set(err, PV_FAILED_PRECONDITION, ENOENT, "runtime_handler \"%s\" (%s guest): %s (make build)",
			   name, sandbox_arch_name(h->arch), g->missing);
		return NULL;
	}
	if (h->x86_binfmt && !readable(g->initramfs_x86)) {
		pv_err_set(err, PV_FAILED_PRECONDITION, ENOENT,
			   "runtime_handler \"%s\": the initramfs with qemu-x86_64 is not at %s (make build)", name,
			   g->initramfs_x86);
		return NULL;
	}
	return h;
}

void cri_handler_spawn_opts(const struct pv_daemon *d, const struct cri_handler *h, struct shim_spawn_opts *o)
{
	const struct cri_guest *g = &d->handlers->guests[h->arch];
	o->kernel = g->kernel;
	o->initramfs = h->x86_binfmt ? g->initramfs_x86 : g->initramfs;
	o->qemu = g->qemu;
	o->accel = g->accel;
	o->arch = sandbox_arch_name(h->arch);
}

static bool meta_eq(const Runtime__V1__PodSandboxMetadata *a, const Runtime__V1__PodSandboxMetadata *b)
{
	return a && b && a->uid && b->uid && *a->uid && !strcmp(a->uid, b->uid) && a->name && b->name &&
	       !strcmp(a->name, b->name) && a->namespace_ && b->namespace_ && !strcmp(a->namespace_, b->namespace_);
}

/* The runtime handler of the pod whose metadata sc carries, or NULL (copied: caller frees). */
static char *handler_of_pod(struct pv_daemon *d, const Runtime__V1__PodSandboxConfig *sc)
{
	if (!sc || !sc->metadata || !d->store)
		return NULL;
	size_t n = 0;
	struct pv_pod **pods = pv_store_pod_list(d->store, &n);
	char *found = NULL;
	for (size_t i = 0; i < n && !found; i++)
		if (pods[i]->config && meta_eq(pods[i]->config->metadata, sc->metadata))
			found = pv_xstrdup(pods[i]->st.runtime_handler ? pods[i]->st.runtime_handler : "");
	pv_pod_list_free(pods, n);
	return found;
}

int cri_pull_platforms(struct pv_daemon *d, const char *handler, const void *sandbox_config,
		       struct image_platform *out, size_t max, pv_err_t **err)
{
	const struct cri_handlers *hs = d->handlers;
	cleanup_free char *pod_handler = NULL;
	if (!hs)
		return 0; /* no table (a test's daemon): the store's configured platform */
	if (!handler || !*handler)
		handler = pod_handler = handler_of_pod(d, sandbox_config);
	if (!handler) {
		/* An explicit image.platform keeps deciding handler-less pulls, as it always has. */
		if (d->cfg && d->cfg->image && json_object_get(d->cfg->image, "platform"))
			return 0;
		return (int)cri_handlers_any_platforms(hs, out, max);
	}
	const struct cri_handler *h = cri_handler_find(hs, handler, err);
	if (!h)
		return -1;
	size_t n = h->n_platforms < max ? h->n_platforms : max;
	memcpy(out, h->platforms, n * sizeof(*out));
	return (int)n;
}

int cri_handler_check_image(const struct pv_daemon *d, const char *handler, const struct image_info *info,
			    pv_err_t **err)
{
	if (!d->handlers)
		return 0;
	const struct cri_handler *h = cri_handler_find(d->handlers, handler ? handler : "", err);
	struct image_platform have;
	if (!h)
		return -1;
	if (!info->platform || image_platform_parse(info->platform, &have, NULL) < 0 ||
	    image_platform_find(h->platforms, h->n_platforms, &have) >= 0)
		return 0;
	cleanup_free char *runs = image_platforms_describe(h->platforms, h->n_platforms);
	return pv_err_set(err, PV_FAILED_PRECONDITION, ENOEXEC,
			  "image %s is %s; this pod's runtime handler \"%s\" runs %s (pull the image for this "
			  "handler, or use a handler that runs %s)",
			  info->id, info->platform, h->name, runs, info->platform);
}
