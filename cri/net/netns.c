/* Pod network namespaces: create (bind mount), open/enter, run-in, delete. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "net/netns.h"
#include "util.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

struct create_job {
	const char *path;
	int ret;
	pv_err_t *err;
};

/* Runs on its own thread: the new namespace only ever belongs to this thread. */
static void *create_thread(void *p)
{
	struct create_job *job = p;

	if (unshare(CLONE_NEWNET) < 0) {
		job->ret = pv_err_sys(&job->err, PV_INTERNAL, "unshare(CLONE_NEWNET)");
		return NULL;
	}
	/* /proc/self is the thread-group leader; this thread's namespace is at thread-self. */
	if (mount("/proc/thread-self/ns/net", job->path, "none", MS_BIND, NULL) < 0) {
		job->ret = pv_err_sys(&job->err, PV_INTERNAL, "bind mount netns onto %s", job->path);
		return NULL;
	}
	job->ret = 0;
	return NULL;
}

static int valid_name(const char *name)
{
	return name && *name && strlen(name) < 200 && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

int pv_netns_create(const char *dir, const char *name, char **path_out, pv_err_t **err)
{
	struct create_job job = { 0 };
	pthread_t th;
	int fd, r;

	if (!dir)
		dir = PV_NETNS_DEFAULT_DIR;
	if (!valid_name(name))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "invalid netns name '%s'", name ? name : "");
	if (pv_mkdir_p(dir, 0755, err) < 0) {
		pv_err_prefix(err, "netns dir");
		return -1;
	}
	cleanup_free char *path = pv_xasprintf("%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0) {
		if (errno == EEXIST)
			return pv_err_set(err, PV_ALREADY_EXISTS, EEXIST, "netns %s already exists", path);
		return pv_err_sys(err, PV_INTERNAL, "create %s", path);
	}
	close(fd);

	job.path = path;
	job.ret = -1;
	r = pthread_create(&th, NULL, create_thread, &job);
	if (r != 0) {
		unlink(path);
		return pv_err_set(err, PV_RESOURCE_EXHAUSTED, r, "pthread_create: %s", strerror(r));
	}
	pthread_join(th, NULL);
	if (job.ret < 0) {
		unlink(path);
		pv_err_move(err, job.err);
		return job.ret;
	}
	*path_out = steal_pointer(&path);
	return 0;
}

int pv_netns_open(const char *path, pv_err_t **err)
{
	struct statfs sfs;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return pv_err_sys(err, errno == ENOENT ? PV_NOT_FOUND : PV_INTERNAL, "open netns %s", path);
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != NSFS_MAGIC) {
		close(fd);
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "%s is not a mounted network namespace", path);
	}
	return fd;
}

int pv_netns_enter(const char *path, pv_err_t **err)
{
	cleanup_close int fd = pv_netns_open(path, err);

	if (fd < 0)
		return fd;
	if (setns(fd, CLONE_NEWNET) < 0)
		return pv_err_sys(err, PV_INTERNAL, "setns %s", path);
	return 0;
}

struct run_job {
	const char *path;
	int (*fn)(void *, pv_err_t **);
	void *arg;
	int ret;
	pv_err_t *err;
};

static void *run_thread(void *p)
{
	struct run_job *job = p;

	/* The thread dies afterwards, so it never has to switch back. */
	job->ret = pv_netns_enter(job->path, &job->err);
	if (job->ret == 0)
		job->ret = job->fn(job->arg, &job->err);
	return NULL;
}

int pv_netns_run(const char *path, int (*fn)(void *arg, pv_err_t **err), void *arg, pv_err_t **err)
{
	struct run_job job = { .path = path, .fn = fn, .arg = arg, .ret = -1 };
	pthread_t th;
	int r = pthread_create(&th, NULL, run_thread, &job);

	if (r != 0)
		return pv_err_set(err, PV_RESOURCE_EXHAUSTED, r, "pthread_create: %s", strerror(r));
	pthread_join(th, NULL);
	pv_err_move(err, job.err);
	return job.ret;
}

int pv_netns_delete(const char *path, pv_err_t **err)
{
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		return pv_err_sys(err, PV_INTERNAL, "unmount netns %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return pv_err_sys(err, PV_INTERNAL, "remove netns %s", path);
	return 0;
}

int pv_netns_exists(const char *path)
{
	int fd = pv_netns_open(path, NULL);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}
