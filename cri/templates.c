/*
 * VM templates, podvisord's side (docs/sandbox.md, "Templates"): one template per VM
 * shape, built by a podvisor-shim in template mode, cloned by every pod of that shape.
 *
 * A template lives in <state_dir>/templates/<key>/ (a tmpfs: its `mem` file is the
 * guest RAM every clone maps), where <key> is a content hash of what the guest is made
 * of (kernel, initramfs, the QEMU binary) and of its shape (vCPUs, memory, accelerator,
 * NIC or not). A new kernel or initramfs gives a new key, so the next pod builds a new
 * template; the old one is removed (clones running from it keep its pages mapped).
 * Templates are built on the first pod of a shape (that pod waits for it) and, for the
 * default shape, in the background at start-up; they are all removed when podvisord
 * stops.
 */
#include "templates.h"
#include "cleanup.h"
#include "config.h"
#include "daemon.h"
#include "image/digest.h"
#include "log.h"
#include "util.h"
#include "vmm.h"

#include "../shim/client.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

#define TEMPLATES_DIR "templates"
/* Templates kept at once (each holds the RAM its guest touched, ~45 MiB): the least
 * recently cloned goes first. */
#define TEMPLATES_MAX 8
/* A template whose build failed is not tried again for this long (pods boot meanwhile). */
#define RETRY_AFTER_NS (30LL * 1000000000)

enum tpl_state { TPL_BUILDING, TPL_READY, TPL_FAILED };

struct tpl {
	char key[IMAGE_DIGEST_LEN + 1];   /* "sha256:<hex>" of contents + shape */
	char shape[96];                   /* the shape alone: a newer key replaces an older one */
	char state_digest[IMAGE_DIGEST_LEN + 1];
	char *dir;
	enum tpl_state state;
	int64_t failed_ns;
	int64_t used_ns;                  /* last handed to a pod (monotonic) */
	struct tpl *next;
};

/* A file's content digest, recomputed only when the file changes. */
struct file_digest {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	char digest[IMAGE_DIGEST_LEN + 1];
};

struct cri_templates {
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* a build finished */
	char *root;
	bool mounted;             /* root is a tmpfs we mounted */
	bool stopping;
	int threads;              /* background builds running */
	struct tpl *list;
	struct file_digest kernel, initramfs;
};

bool cri_templates_enabled(const struct pv_config *cfg)
{
	json_t *v = cfg->runtime ? json_object_get(cfg->runtime, "templates") : NULL;
	return !v || json_is_true(v);
}

static void tpl_free(struct tpl *t)
{
	free(t->dir);
	free(t);
}

/* The digest of a file's contents, cached by identity (dev, inode, size, mtime). */
static int file_digest(struct file_digest *c, const char *path, pv_err_t **err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return pv_err_sys(err, PV_FAILED_PRECONDITION, "%s", path);
	if (c->digest[0] && c->dev == st.st_dev && c->ino == st.st_ino && c->size == st.st_size &&
	    c->mtime.tv_sec == st.st_mtim.tv_sec && c->mtime.tv_nsec == st.st_mtim.tv_nsec)
		return 0;
	if (image_digest_file(path, c->digest, err) < 0) {
		c->digest[0] = '\0';
		return -1;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->size = st.st_size;
	c->mtime = st.st_mtim;
	return 0;
}

/* Key = hash(kernel contents, initramfs contents, QEMU binary identity, shape). Locked. */
static int template_key(struct pv_daemon *d, const struct shim_spawn_opts *o, const char *shape, char *key,
			pv_err_t **err)
{
	struct cri_templates *t = d->templates;
	if (file_digest(&t->kernel, o->kernel, err) < 0 || file_digest(&t->initramfs, o->initramfs, err) < 0)
		return -1;
	struct stat qs = { 0 };
	stat(o->qemu, &qs); /* a QEMU upgrade may change its device state format */
	cleanup_free char *all = pv_xasprintf("kernel=%s\ninitramfs=%s\nqemu=%s:%lld:%lld\nshape=%s\n", t->kernel.digest,
					      t->initramfs.digest, o->qemu, (long long)qs.st_size,
					      (long long)qs.st_mtim.tv_sec, shape);
	image_digest_buf(all, strlen(all), key);
	return 0;
}

static struct tpl *find(struct cri_templates *t, const char *key)
{
	for (struct tpl *p = t->list; p; p = p->next)
		if (!strcmp(p->key, key))
			return p;
	return NULL;
}

static void unlink_tpl(struct cri_templates *t, struct tpl *x)
{
	for (struct tpl **pp = &t->list; *pp; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			return;
		}
	}
}

/* Forget a template and remove its files; clones running from it keep their mappings. */
static void drop(struct cri_templates *t, struct tpl *x, const char *why)
{
	pv_info("template removed", "key=%s shape=%s why=%s", image_digest_hex(x->key), x->shape, why);
	unlink_tpl(t, x);
	pv_rm_rf(x->dir, NULL);
	tpl_free(x);
}

/* Boot a template VM of the shape in a template shim, which saves it and exits. Unlocked. */
static int build(struct pv_daemon *d, const struct shim_spawn_opts *pod, const char *build_dir, bool net,
		 pv_err_t **err)
{
	pv_rm_rf(build_dir, NULL);
	if (pv_mkdir_p(build_dir, 0700, err) < 0)
		return -1;
	cleanup_free char *vol = pv_xasprintf("%s/vol", build_dir);
	/* The pod's VM (guest, QEMU, accelerator, size), without anything of the pod's own. */
	struct shim_spawn_opts o = {
		.state_dir = build_dir,
		.kernel = pod->kernel,
		.initramfs = pod->initramfs,
		.qemu = pod->qemu,
		.arch = pod->arch,
		.machine = pod->machine,
		.name = "template",
		.accel = pod->accel,
		.log_level = pod->log_level,
		.vcpus = pod->vcpus,
		.memory_mib = pod->memory_mib,
		.boot_timeout_ms = pod->boot_timeout_ms,
		.heartbeat_ms = -1,
		.share_dir = vol,
		.make_template = build_dir,
		.template_net = net,
	};
	pid_t pid = 0;
	int r = shim_client_spawn(&o, &pid, err);
	/* The template shim reports once the VM is saved and stopped; it exits right after. */
	for (int i = 0; r == 0 && i < 100 && shim_client_alive(pid); i++)
		usleep(20000);
	return r;
}

/* Build the template for x (BUILDING, in the list) and publish it. Called unlocked. */
static void build_and_publish(struct pv_daemon *d, struct tpl *x, const struct shim_spawn_opts *o, bool net)
{
	struct cri_templates *t = d->templates;
	int64_t t0 = pv_now_monotonic_ns();
	cleanup_free char *build_dir = pv_xasprintf("%s.build", x->dir);
	cleanup_free char *state = pv_xasprintf("%s/%s", x->dir, SANDBOX_TEMPLATE_STATE);
	cleanup_err pv_err_t *err = NULL;
	int r = build(d, o, build_dir, net, &err);
	if (r == 0) {
		pv_rm_rf(x->dir, NULL);
		if (rename(build_dir, x->dir) < 0)
			r = pv_err_sys(&err, PV_INTERNAL, "rename %s", build_dir);
	}
	if (r == 0)
		r = image_digest_file(state, x->state_digest, &err);
	if (r == 0)
		r = sandbox_template_check(x->dir, o->memory_mib ? o->memory_mib : 256, &err);
	pthread_mutex_lock(&t->lock);
	if (r == 0) {
		x->state = TPL_READY;
		pv_info("template ready", "key=%s shape=%s dir=%s ms=%lld", image_digest_hex(x->key), x->shape, x->dir,
			(long long)((pv_now_monotonic_ns() - t0) / 1000000));
		x->used_ns = pv_now_monotonic_ns();
		/* An older template of the same shape (the kernel or initramfs changed) is done. */
		for (struct tpl *p = t->list, *n; p; p = n) {
			n = p->next;
			if (p != x && p->state != TPL_BUILDING && !strcmp(p->shape, x->shape))
				drop(t, p, "replaced by a newer template");
		}
		for (;;) {
			struct tpl *lru = NULL;
			int ready = 0;
			for (struct tpl *p = t->list; p; p = p->next) {
				if (p->state != TPL_READY)
					continue;
				ready++;
				if (p != x && (!lru || p->used_ns < lru->used_ns))
					lru = p;
			}
			if (ready <= TEMPLATES_MAX || !lru)
				break;
			drop(t, lru, "too many templates: least recently used");
		}
	} else {
		x->state = TPL_FAILED;
		x->failed_ns = pv_now_monotonic_ns();
		pv_warn("template build failed, pods of this shape boot", "shape=%s error=%s", x->shape, err->msg);
		pv_rm_rf(build_dir, NULL);
		pv_rm_rf(x->dir, NULL);
	}
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

/* 0 if the template's state file is still what was built (checked before each clone). */
static int verify(struct tpl *x, pv_err_t **err)
{
	cleanup_free char *state = pv_xasprintf("%s/%s", x->dir, SANDBOX_TEMPLATE_STATE);
	char now[IMAGE_DIGEST_LEN + 1];
	if (image_digest_file(state, now, err) < 0)
		return -1;
	if (strcmp(now, x->state_digest))
		return pv_err_set(err, PV_DATA_LOSS, EIO, "template state %s changed since it was built", state);
	return 0;
}

char *cri_template_for(struct pv_daemon *d, const struct shim_spawn_opts *o, bool net)
{
	struct cri_templates *t = d->templates;
	/* Only the x86_64 guest's templates are built and measured (docs/sandbox.md). */
	if (!t || (o->arch && strcmp(o->arch, "x86_64")))
		return NULL;
	char shape[96], key[IMAGE_DIGEST_LEN + 1];
	snprintf(shape, sizeof(shape), "vcpus=%u,memory=%llu,accel=%s,machine=%s,net=%d", o->vcpus,
		 (unsigned long long)o->memory_mib, o->accel ? o->accel : "", o->machine ? o->machine : "", net);
	cleanup_err pv_err_t *err = NULL;
	char *out = NULL;
	pthread_mutex_lock(&t->lock);
	if (template_key(d, o, shape, key, &err) < 0) {
		pv_warn("no template: cannot hash the guest", "error=%s", err->msg);
		goto out;
	}
	for (;;) {
		struct tpl *x = find(t, key);
		if (t->stopping)
			goto out;
		if (x && x->state == TPL_BUILDING) {
			pthread_cond_wait(&t->cond, &t->lock);
			continue;
		}
		if (x && x->state == TPL_READY) {
			pv_err_t *e = NULL;
			if (verify(x, &e) == 0) {
				x->used_ns = pv_now_monotonic_ns();
				out = pv_xstrdup(x->dir);
				goto out;
			}
			pv_warn("template damaged: this pod boots, the next one rebuilds it", "key=%s error=%s",
				image_digest_hex(key), e->msg);
			pv_err_free(e);
			drop(t, x, "damaged");
			goto out;
		}
		if (x && x->state == TPL_FAILED) {
			if (pv_now_monotonic_ns() - x->failed_ns < RETRY_AFTER_NS)
				goto out;
			drop(t, x, "retrying a failed build");
		}
		break;
	}
	/* None yet: build it now; this pod (the first of its shape) waits for it. */
	struct tpl *x = pv_xcalloc(1, sizeof(*x));
	snprintf(x->key, sizeof(x->key), "%s", key);
	snprintf(x->shape, sizeof(x->shape), "%s", shape);
	x->dir = pv_xasprintf("%s/%.16s", t->root, image_digest_hex(key));
	x->state = TPL_BUILDING;
	x->next = t->list;
	t->list = x;
	pthread_mutex_unlock(&t->lock);
	build_and_publish(d, x, o, net);
	pthread_mutex_lock(&t->lock);
	x = find(t, key); /* another thread may have dropped it meanwhile */
	if (x && x->state == TPL_READY && !t->stopping)
		out = pv_xstrdup(x->dir);
out:
	pthread_mutex_unlock(&t->lock);
	return out;
}

void cri_template_failed(struct pv_daemon *d, const char *dir, const char *why)
{
	struct cri_templates *t = d->templates;
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	for (struct tpl *p = t->list; p; p = p->next) {
		if (p->state == TPL_READY && !strcmp(p->dir, dir)) {
			pv_warn("a clone of the template failed: it is rebuilt for the next pod", "dir=%s error=%s", dir,
				why);
			drop(t, p, "a clone failed");
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

/* ---- the templates directory: a tmpfs, empty at start and gone at stop ------------- */

static bool is_tmpfs(const char *path)
{
	struct statfs sf;
	return statfs(path, &sf) == 0 && (sf.f_type == TMPFS_MAGIC);
}

/* A mount point (of a tmpfs we mounted before a crash) differs in st_dev from its parent. */
static bool is_mount_point(const char *path, const char *parent)
{
	struct stat a, b;
	return stat(path, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* Kill the template shim building in <dir> (its QEMU dies with it), if any. */
static void kill_builder(const char *build_dir)
{
	cleanup_free char *pidfile = pv_xasprintf("%s/shim.pid", build_dir);
	cleanup_free char *txt = NULL;
	size_t len;
	if (pv_read_file(pidfile, 64, &txt, &len, NULL) == 0 && shim_client_alive(atoi(txt)))
		kill(atoi(txt), SIGKILL);
}

static void remove_root(const char *root, const char *parent)
{
	/* Builds of a podvisord that was killed may still run: they would only waste a boot. */
	DIR *dir = opendir(root);
	struct dirent *de;
	while (dir && (de = readdir(dir))) {
		size_t n = strlen(de->d_name);
		if (n > 6 && !strcmp(de->d_name + n - 6, ".build")) {
			cleanup_free char *b = pv_xasprintf("%s/%s", root, de->d_name);
			kill_builder(b);
		}
	}
	if (dir)
		closedir(dir);
	pv_rm_rf(root, NULL); /* contents; a mount point itself stays */
	if (is_mount_point(root, parent))
		umount2(root, MNT_DETACH); /* clones may still map files in it: detach */
	rmdir(root);
}

static int make_root(struct cri_templates *t, const char *state_dir, pv_err_t **err)
{
	remove_root(t->root, state_dir); /* left by a podvisord that did not stop cleanly */
	if (mkdir(t->root, 0700) < 0)
		return pv_err_sys(err, PV_INTERNAL, "mkdir %s", t->root);
	if (!is_tmpfs(t->root)) {
		if (mount("podvisor-templates", t->root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") < 0)
			return pv_err_sys(err, PV_INTERNAL, "mount a tmpfs on %s", t->root);
		t->mounted = true;
	}
	return 0;
}

struct default_build {
	struct pv_daemon *d;
	struct shim_spawn_opts o; /* its strings are the daemon's, alive until it stops */
	bool net;
};

static void *default_build_thread(void *arg)
{
	struct default_build *b = arg;
	struct cri_templates *t = b->d->templates;
	free(cri_template_for(b->d, &b->o, b->net));
	pthread_mutex_lock(&t->lock);
	t->threads--;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	free(b);
	return NULL;
}

int cri_templates_init(struct pv_daemon *d, const struct shim_spawn_opts *def, bool net, pv_err_t **err)
{
	const struct pv_config *cfg = d->cfg;
	cleanup_free char *root = pv_xasprintf("%s/%s", cfg->state_dir, TEMPLATES_DIR);
	if (!cri_templates_enabled(cfg)) {
		remove_root(root, cfg->state_dir);
		pv_info("templates off (runtime.templates=false): every pod VM boots", NULL);
		return 0;
	}
	struct cri_templates *t = pv_xcalloc(1, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->root = pv_xstrdup(root);
	d->templates = t;
	if (make_root(t, cfg->state_dir, err) < 0) {
		pv_err_prefix(err, "templates (set runtime.templates=false to run without)");
		cri_templates_fini(d);
		return -1;
	}
	/* The default shape in the background: the first pods need not wait for a boot. */
	struct default_build *b = pv_xcalloc(1, sizeof(*b));
	*b = (struct default_build){ .d = d, .o = *def, .net = net };
	pthread_t th;
	t->threads++;
	if (pthread_create(&th, NULL, default_build_thread, b) != 0) {
		t->threads--;
		free(b);
	} else {
		pthread_detach(th);
	}
	return 0;
}

void cri_templates_fini(struct pv_daemon *d)
{
	struct cri_templates *t = d->templates;
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	/* A build in flight: its shim (and with it its QEMU) goes now; a shim that has not
	 * written its pid file yet is caught on the next round. */
	for (;;) {
		bool building = false;
		for (struct tpl *p = t->list; p; p = p->next) {
			if (p->state == TPL_BUILDING) {
				cleanup_free char *b = pv_xasprintf("%s.build", p->dir);
				kill_builder(b);
				building = true;
			}
		}
		if (!building && t->threads == 0)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	}
	while (t->list) {
		struct tpl *x = t->list;
		t->list = x->next;
		tpl_free(x);
	}
	pthread_mutex_unlock(&t->lock);
	remove_root(t->root, d->cfg->state_dir);
	pv_info("templates removed", "dir=%s", t->root);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t->root);
	free(t);
	d->templates = NULL;
}
