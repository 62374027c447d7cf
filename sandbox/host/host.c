/*
 * The host backend of struct vmm_ops: a host pod, whose "VM" is podvisor-hostagent, a
 * process on the node that speaks the agent protocol on the agent socket and runs the
 * pod's containers through an OCI runtime (host-agent/). No guest kernel: the containers
 * share the node's kernel, isolated by namespaces and cgroups only.
 *
 * A container's disk is a directory, its "layer" (common/guest_abi.h): the image's
 * read-only ext4 mounted through a loop device on <layer>/lower, an overlayfs over it on
 * <layer>/rootfs with <layer>/upper as its writable part; the agent gets <layer>/rootfs.
 * Removing the disk unmounts both (the loop device goes with its mount: autoclear) and
 * deletes the layer; so does stopping the pod for the disks still there.
 */
#include "vmm_impl.h"
#include "cleanup.h"
#include "guest_abi.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_LISTEN_FD 3

struct host_disk {
	char *id, *path;
	struct host_disk *next;
};

struct host_priv {
	pthread_mutex_t lock; /* disks: added on the shim's worker, released on its loop */
	struct host_disk *disks;
};

static struct host_priv *priv_of(const struct vmm *vm)
{
	return vm->priv;
}

/* ---- the agent process ------------------------------------------------------------------ */

/* podvisor-hostagent beside the running binary (the shim), else on $PATH. */
static char *agent_binary(const struct vmm_config *c)
{
	if (c->agent_binary)
		return pv_xstrdup(c->agent_binary);
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			char *cand = pv_xasprintf("%s/podvisor-hostagent", self);
			if (access(cand, X_OK) == 0)
				return cand;
			free(cand);
		}
	}
	return pv_xstrdup("podvisor-hostagent");
}

static void __attribute__((noreturn)) child_exec(char **argv, int logfd, int listenfd)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int l = fcntl(logfd, F_DUPFD_CLOEXEC, 100);
	int s = fcntl(listenfd, F_DUPFD_CLOEXEC, 100);
	if (devnull < 0 || l < 0 || s < 0 || dup2(devnull, 0) < 0 || dup2(l, 1) < 0 || dup2(l, 2) < 0 ||
	    dup2(s, CHILD_LISTEN_FD) < 0)
		_exit(126);
	syscall(SYS_close_range, CHILD_LISTEN_FD + 1, ~0U, 0);
	execvp(argv[0], argv);
	dprintf(2, "podvisor: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int host_start(struct vmm *vm, pv_err_t **err)
{
	const struct vmm_config *c = &vm->cfg;
	if (!c->state_dir || !c->agent_socket || !c->name)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "a host pod needs a name, a state dir and an agent socket");
	cleanup_free char *bin = agent_binary(c);
	cleanup_free char *fdarg = pv_xasprintf("%d", CHILD_LISTEN_FD);
	char *argv[24];
	int n = 0;
	argv[n++] = bin;
	argv[n++] = (char *)"--listen-fd";
	argv[n++] = fdarg;
	argv[n++] = (char *)"--state-dir";
	argv[n++] = (char *)c->state_dir;
	argv[n++] = (char *)"--pod-id";
	argv[n++] = (char *)c->name;
	const char *opt[][2] = { { "--runtime", c->oci_runtime }, { "--namespaces", c->namespaces },
				 { "--netns", c->netns }, { "--share-dir", c->share_dir },
				 { "--cgroup-parent", c->cgroup_parent } };
	for (size_t i = 0; i < PV_ARRAY_SIZE(opt); i++) {
		if (!opt[i][1])
			continue;
		argv[n++] = (char *)opt[i][0];
		argv[n++] = (char *)opt[i][1];
	}
	argv[n] = NULL;
	cleanup_close int logfd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (logfd < 0)
		return pv_err_sys(err, PV_INTERNAL, "open the agent log %s", c->log_path);
	cleanup_close int lfd = sandbox_listen_unix(c->agent_socket, err);
	if (lfd < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return pv_err_sys(err, PV_INTERNAL, "fork");
	if (pid == 0)
		child_exec(argv, logfd, lfd);
	struct host_priv *p = pv_xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	vm->priv = p;
	vm->pid = pid;
	return 0;
}

/* The agent cleans up (its containers, the pod's namespaces and cgroups) on SIGTERM. */
static int host_request_quit(struct vmm *vm)
{
	return kill(vm->pid, SIGTERM);
}

/* ---- disks: loop + overlayfs layers ------------------------------------------------------- */

static char *layer_dir(const char *layer, const char *part)
{
	return pv_xasprintf("%s/%s", layer, part);
}

/* A free loop device bound read-only to `image`, detached again when its mount goes. */
static int loop_attach(const char *image, char *dev, size_t len, pv_err_t **err)
{
	cleanup_close int img = open(image, O_RDONLY | O_CLOEXEC);
	if (img < 0)
		return pv_err_sys(err, errno == ENOENT ? PV_NOT_FOUND : PV_INTERNAL, "image disk %s", image);
	cleanup_close int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return pv_err_sys(err, PV_FAILED_PRECONDITION, "open /dev/loop-control");
	for (int tries = 0; tries < 16; tries++) {
		int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (nr < 0)
			return pv_err_sys(err, PV_RESOURCE_EXHAUSTED, "no free loop device");
		snprintf(dev, len, "/dev/loop%d", nr);
		int fd = open(dev, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return pv_err_sys(err, PV_INTERNAL, "open %s", dev);
		struct loop_config lc = { .fd = (unsigned)img,
					  .info = { .lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR } };
		snprintf((char *)lc.info.lo_file_name, sizeof(lc.info.lo_file_name), "%s", image);
		if (ioctl(fd, LOOP_CONFIGURE, &lc) == 0)
			return fd; /* held until mounted: autoclear would detach an unused device */
		int e = errno;
		close(fd);
		if (e != EBUSY) /* EBUSY: another process took it first */
			return errno = e, pv_err_sys(err, PV_INTERNAL, "configure %s for %s", dev, image);
	}
	return pv_err_set(err, PV_RESOURCE_EXHAUSTED, EBUSY, "no loop device for %s", image);
}

/* Private: mounts runc makes in the container's copy must not come back here. */
static int mount_private(const char *src, const char *target, const char *type, unsigned long flags,
			 const char *data, pv_err_t **err)
{
	if (mount(src, target, type, flags, data) < 0)
		return pv_err_sys(err, PV_INTERNAL, "mount %s (%s) on %s", src, type, target);
	mount(NULL, target, NULL, MS_PRIVATE, NULL);
	return 0;
}

/* Unmount whatever is on the layer's mount points; 0 once none is left. */
static int layer_unmount(const char *layer)
{
	int r = 0;
	const char *parts[] = { PV_HOST_LAYER_ROOTFS, PV_HOST_LAYER_LOWER };
	for (size_t i = 0; i < PV_ARRAY_SIZE(parts); i++) {
		cleanup_free char *p = layer_dir(layer, parts[i]);
		/* Detached: a process still inside (a leftover exec) does not keep the layer. */
		while (umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
			;
		if (errno != EINVAL && errno != ENOENT)
			r = -1;
	}
	return r;
}

static int layer_make(const struct vmm_disk *d, pv_err_t **err)
{
	const char *parts[] = { PV_HOST_LAYER_LOWER, PV_HOST_LAYER_UPPER, PV_HOST_LAYER_WORK, PV_HOST_LAYER_ROOTFS };
	if (mkdir(d->path, 0700) < 0)
		return pv_err_sys(err, errno == EEXIST ? PV_ALREADY_EXISTS : PV_INTERNAL, "layer %s", d->path);
	for (size_t i = 0; i < PV_ARRAY_SIZE(parts); i++) {
		cleanup_free char *p = layer_dir(d->path, parts[i]);
		if (mkdir(p, 0755) < 0)
			return pv_err_sys(err, PV_INTERNAL, "mkdir %s", p);
	}
	char dev[64];
	cleanup_free char *lower = layer_dir(d->path, PV_HOST_LAYER_LOWER);
	cleanup_close int loopfd = loop_attach(d->base, dev, sizeof(dev), err);
	if (loopfd < 0 || mount_private(dev, lower, "ext4", MS_RDONLY | MS_NODEV, NULL, err) < 0)
		return -1;
	cleanup_free char *upper = layer_dir(d->path, PV_HOST_LAYER_UPPER);
	cleanup_free char *work = layer_dir(d->path, PV_HOST_LAYER_WORK);
	cleanup_free char *rootfs = layer_dir(d->path, PV_HOST_LAYER_ROOTFS);
	cleanup_free char *opts = pv_xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
	return mount_private("overlay", rootfs, "overlay", 0, opts, err);
}

static int host_disk_add(struct vmm *vm, const struct vmm_disk *d, int timeout_ms, pv_err_t **err)
{
	struct host_priv *p = priv_of(vm);
	if (!p)
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTCONN, "the host pod is not running");
	if (!d->base)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "a host pod's disk is a layer over an image (base)");
	if (layer_make(d, err) < 0) {
		pv_err_prefix(err, "rootfs of %s", d->id);
		layer_unmount(d->path);
		pv_rm_rf(d->path, NULL);
		return -1;
	}
	struct host_disk *hd = pv_xcalloc(1, sizeof(*hd));
	hd->id = pv_xstrdup(d->id);
	hd->path = pv_xstrdup(d->path);
	pthread_mutex_lock(&p->lock);
	hd->next = p->disks;
	p->disks = hd;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* Unmount and delete a layer; the layer is kept (and the error says so) if a mount stays. */
static int layer_release(const char *id, const char *path, pv_err_t **err)
{
	if (layer_unmount(path) < 0)
		return pv_err_sys(err, PV_INTERNAL, "unmount the rootfs of %s (%s)", id, path);
	return pv_rm_rf(path, err);
}

static int host_disk_remove(struct vmm *vm, const char *id, int timeout_ms, pv_err_t **err)
{
	struct host_priv *p = priv_of(vm);
	struct host_disk *hd = NULL;
	if (p) {
		pthread_mutex_lock(&p->lock);
		for (struct host_disk **pp = &p->disks; *pp; pp = &(*pp)->next) {
			if (!strcmp((*pp)->id, id)) {
				hd = *pp;
				*pp = hd->next;
				break;
			}
		}
		pthread_mutex_unlock(&p->lock);
	}
	if (!hd)
		return 0; /* gone already (the pod stopped) */
	int r = layer_release(hd->id, hd->path, err);
	free(hd->id);
	free(hd->path);
	free(hd);
	return r;
}

static char *host_disk_rootfs(const struct vmm *vm, const char *path)
{
	return layer_dir(path, PV_HOST_LAYER_ROOTFS);
}

/* `<runtime> --root <state>/runc delete --force <id>`, waited for. */
static void runtime_delete(const struct vmm_config *c, const char *root, const char *id)
{
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		const char *rt = c->oci_runtime ? c->oci_runtime : "runc";
		execlp(rt, rt, "--root", root, "delete", "--force", id, (char *)NULL);
		_exit(127);
	}
	while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/*
 * What a host agent that did not end cleanly (killed) left: its containers, still running
 * under the runtime's state, and the pod's cgroup parent. Normally there is nothing: the agent
 * deletes its containers when it stops, or when its shim dies.
 */
static void agent_leftovers(const struct vmm_config *c)
{
	cleanup_free char *root = pv_xasprintf("%s/runc", c->state_dir);
	DIR *d = opendir(root);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			runtime_delete(c, root, de->d_name);
	if (d)
		closedir(d);
	cleanup_free char *parent = c->cgroup_parent ? pv_xstrdup(c->cgroup_parent) : pv_xasprintf("/podvisor/%s", c->name);
	cleanup_free char *v2 = pv_xasprintf("/sys/fs/cgroup%s", parent);
	rmdir(v2);
	d = opendir("/sys/fs/cgroup");
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		cleanup_free char *v1 = pv_xasprintf("/sys/fs/cgroup/%s%s", de->d_name, parent);
		rmdir(v1);
	}
	if (d)
		closedir(d);
}

/* The agent is gone: none of its containers, and no layer, outlives the pod. */
static void host_stopped(struct vmm *vm)
{
	struct host_priv *p = priv_of(vm);
	if (!p)
		return;
	agent_leftovers(&vm->cfg);
	pthread_mutex_lock(&p->lock);
	struct host_disk *list = p->disks;
	p->disks = NULL;
	pthread_mutex_unlock(&p->lock);
	while (list) {
		struct host_disk *hd = list;
		list = hd->next;
		layer_release(hd->id, hd->path, NULL);
		free(hd->id);
		free(hd->path);
		free(hd);
	}
}

static void host_free(struct vmm *vm)
{
	struct host_priv *p = priv_of(vm);
	if (!p)
		return;
	host_stopped(vm);
	pthread_mutex_destroy(&p->lock);
	free(p);
	vm->priv = NULL;
}

const struct vmm_ops sandbox_host_ops = {
	.name = "host",
	.flags = 0,
	.layer_suffix = "",
	.start = host_start,
	.request_quit = host_request_quit,
	.disk_add = host_disk_add,
	.disk_remove = host_disk_remove,
	.disk_rootfs = host_disk_rootfs,
	.stopped = host_stopped,
	.free = host_free,
};
