/* Containers: rootfs disk, cgroup, processes in their own mount/PID/UTS/IPC namespaces. */
#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>


/* ---- rootfs device ------------------------------------------------------------------ */

static char *read_line(const char *path)
{
	char *s = NULL;
	size_t len;
	if (pv_read_file(path, 4096, &s, &len, NULL) < 0)
		return NULL;
	s[strcspn(s, "\n")] = 0;
	return s;
}

static char *device_by_scsi(const char *addr)
{
	char path[256];
	snprintf(path, sizeof(path), "/sys/bus/scsi/devices/%s/block", addr);
	DIR *d = opendir(path);
	if (!d)
		return NULL;
	char *dev = NULL;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			dev = pv_xasprintf("/dev/%s", de->d_name);
			break;
		}
	closedir(d);
	return dev;
}

static char *device_by_serial(const char *serial)
{
	DIR *d = opendir("/sys/block");
	if (!d)
		return NULL;
	char *dev = NULL;
	struct dirent *de;
	while (!dev && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[512];
		snprintf(path, sizeof(path), "/sys/block/%s/serial", de->d_name);
		cleanup_free char *s = read_line(path);
		if (!s) {
			snprintf(path, sizeof(path), "/sys/block/%s/device/serial", de->d_name);
			s = read_line(path);
		}
		if (s && !strcmp(s, serial))
			dev = pv_xasprintf("/dev/%s", de->d_name);
	}
	closedir(d);
	return dev;
}

/* The rootfs as a /dev node, or NULL if that disk is not there (yet). */
static char *find_device(const Podvisor__Agent__Rootfs *fs)
{
	char *dev = NULL;
	if (*fs->device_path)
		dev = pv_xstrdup(fs->device_path);
	else if (*fs->scsi_address)
		dev = device_by_scsi(fs->scsi_address);
	else
		dev = device_by_serial(fs->serial);
	struct stat st;
	if (dev && stat(dev, &st) == 0 && S_ISBLK(st.st_mode))
		return dev;
	free(dev);
	return NULL;
}

/* ---- create / start ------------------------------------------------------------------ */

void container_free(struct container *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->dir);
	free(c->rootfs);
	free(c->cgroup);
	if (c->spec)
		podvisor__agent__create_container_request__free_unpacked(c->spec, NULL);
	seccomp_prog_free(&c->seccomp);
	free(c);
}

/*
 * The pod's volume share, mounted the first time a container binds something from
 * it (a pod without volumes never touches 9p). cache=none: the host and the guest
 * both write these files, so nothing may be cached in the guest.
 */
static int volumes_ensure(const Podvisor__Agent__CreateContainerRequest *req, pv_err_t **err)
{
	static bool mounted;
	bool wanted = false;
	for (size_t i = 0; i < req->n_mounts; i++) {
		const char *src = req->mounts[i]->source;
		if (src && !strncmp(src, AGENT_VOL_DIR "/", strlen(AGENT_VOL_DIR) + 1))
			wanted = true;
	}
	if (!wanted || mounted)
		return 0;
	if (pv_mkdir_p(AGENT_VOL_DIR, 0755, err) < 0)
		return -1;
	if (mount(AGENT_VOL_TAG, AGENT_VOL_DIR, "9p", MS_NOSUID | MS_NODEV,
		  "trans=virtio,version=9p2000.L,cache=none,msize=262144") < 0 && errno != EBUSY)
		return pv_err_sys(err, PV_FAILED_PRECONDITION, "mount the pod's volume share (9p %s) on %s",
				  AGENT_VOL_TAG, AGENT_VOL_DIR);
	mounted = true;
	pv_info("volume share mounted", "tag=%s dir=%s", AGENT_VOL_TAG, AGENT_VOL_DIR);
	return 0;
}

/* Mount the disk, make the cgroup, register the container (which then owns req). */
static int do_create(Podvisor__Agent__CreateContainerRequest *req, const char *dev, pv_err_t **err)
{
	struct container *c = pv_xcalloc(1, sizeof(*c));
	c->id = pv_xstrdup(req->container_id);
	c->dir = pv_xasprintf(AGENT_RUN_DIR "/c/%s", c->id);
	c->rootfs = pv_xasprintf("%s/rootfs", c->dir);
	c->cgroup = pv_xasprintf(AGENT_CGROUP_PARENT "/%s", c->id);
	if (req->seccomp && seccomp_compile(req->seccomp, &c->seccomp, err) < 0)
		goto fail;
	if (volumes_ensure(req, err) < 0 || pv_mkdir_p(c->rootfs, 0755, err) < 0)
		goto fail;
	unsigned long flags = MS_NOATIME;
	char data[1024] = "";
	for (size_t i = 0; i < req->rootfs->n_options; i++) {
		const char *o = req->rootfs->options[i];
		if (!strcmp(o, "ro"))
			flags |= MS_RDONLY;
		else if (!strcmp(o, "noatime"))
			flags |= MS_NOATIME;
		else if (strlen(data) + strlen(o) + 2 < sizeof(data)) {
			if (data[0])
				strcat(data, ",");
			strcat(data, o);
		}
	}
	const char *fstype = *req->rootfs->fstype ? req->rootfs->fstype : "ext4";
	if (mount(dev, c->rootfs, fstype, flags, data[0] ? data : NULL) < 0) {
		pv_err_sys(err, PV_FAILED_PRECONDITION, "mount %s (%s) on %s", dev, fstype, c->rootfs);
		goto fail_dir;
	}
	/* Room to write: a disk the host made larger than the image. Not fatal: a container
	 * that writes little does not need it. */
	pv_err_t *gerr = NULL;
	if (!(flags & MS_RDONLY) && rootfs_grow(dev, c->rootfs, &gerr) < 0) {
		pv_warn("rootfs not grown", "container=%s error=%s", c->id, gerr->msg);
		pv_err_free(gerr);
	}
	if (cgroup_create(c->cgroup, req->resources, err) < 0) {
		umount2(c->rootfs, MNT_DETACH);
		goto fail_dir;
	}
	stats_rootfs_baseline(c);
	c->spec = req;
	c->next = g_agent.containers;
	g_agent.containers = c;
	pv_info("container created", "id=%s dev=%s", c->id, dev);
	return 0;
fail_dir:
	pv_rm_rf(c->dir, NULL);
fail:
	pv_err_prefix(err, "create container %s", req->container_id);
	container_free(c);
	return -1;
}

/* Creates waiting for their (hot-added) disk; retried from a timer, not blocking the loop. */
struct pending_create {
	uint32_t request_id;
	Podvisor__Agent__CreateContainerRequest *req;
	int64_t deadline_ns;
	struct pending_create *next;
};
static struct pending_create *g_pending;

static bool create_pending(const char *id)
{
	for (struct pending_create *p = g_pending; p; p = p->next)
		if (!strcmp(p->req->container_id, id))
			return true;
	return false;
}

static void reply_created(uint32_t id)
{
	Podvisor__Agent__Response r = PODVISOR__AGENT__RESPONSE__INIT;
	Podvisor__Agent__Empty e = PODVISOR__AGENT__EMPTY__INIT;
	r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_EMPTY;
	r.empty = &e;
	channel_send_response(id, &r);
}

static void arm_retry(bool on)
{
	struct itimerspec its = { 0 };
	if (on)
		its.it_interval.tv_nsec = its.it_value.tv_nsec = 10 * 1000 * 1000;
	timerfd_settime(g_agent.retry_fd, 0, &its, NULL);
}

/* A disk hot-added moments ago can show in sysfs before it can be opened: mount then
 * fails with ENXIO while the guest's SCSI scan settles. Such a create is retried, like a
 * disk that is not there yet, until its deadline. */
static bool create_may_retry(const pv_err_t *err, int64_t deadline_ns)
{
	return err && err->errnum == ENXIO && pv_now_monotonic_ns() < deadline_ns;
}

static void pending_add(Podvisor__Agent__CreateContainerRequest *req, uint32_t request_id, int64_t deadline_ns)
{
	struct pending_create *p = pv_xcalloc(1, sizeof(*p));
	p->request_id = request_id;
	p->req = req;
	p->deadline_ns = deadline_ns;
	p->next = g_pending;
	g_pending = p;
	arm_retry(true);
}

void container_retry_pending(void)
{
	uint64_t ticks;
	if (read(g_agent.retry_fd, &ticks, sizeof(ticks)) < 0) {
		/* spurious */
	}
	struct pending_create **pp = &g_pending;
	while (*pp) {
		struct pending_create *p = *pp;
		cleanup_free char *dev = find_device(p->req->rootfs);
		if (!dev && pv_now_monotonic_ns() < p->deadline_ns) {
			pp = &p->next;
			continue;
		}
		cleanup_err pv_err_t *err = NULL;
		if (!dev) {
			const Podvisor__Agent__Rootfs *fs = p->req->rootfs;
			pv_err_set(&err, PV_NOT_FOUND, ENODEV, "create container %s: rootfs disk %s%s%s not found",
				   p->req->container_id, fs->device_path, fs->scsi_address, fs->serial);
		} else if (container_find(p->req->container_id)) {
			pv_err_set(&err, PV_ALREADY_EXISTS, EEXIST, "container %s already exists", p->req->container_id);
		} else if (do_create(p->req, dev, &err) == 0) {
			reply_created(p->request_id);
			p->req = NULL;
		} else if (create_may_retry(err, p->deadline_ns)) {
			pv_debug("rootfs disk not ready yet, retrying", "container=%s", p->req->container_id);
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		if (err) {
			pv_warn("request failed", "id=%u error=%s", p->request_id, err->msg);
			channel_send_error(p->request_id, err);
		}
		if (p->req)
			podvisor__agent__create_container_request__free_unpacked(p->req, NULL);
		free(p);
	}
	arm_retry(g_pending != NULL);
}

int container_create(Podvisor__Agent__CreateContainerRequest *req, uint32_t request_id, pv_err_t **err)
{
	if (container_find(req->container_id) || create_pending(req->container_id))
		return pv_err_set(err, PV_ALREADY_EXISTS, EEXIST, "container %s already exists", req->container_id);
	if (*req->rootfs->path)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "rootfs.path is for host pods: a pod VM's rootfs is a disk (scsi_address)");
	int wait_ms = req->rootfs->wait_ms ? (int)req->rootfs->wait_ms : 10000;
	if (wait_ms > 60000)
		wait_ms = 60000;
	int64_t deadline_ns = pv_now_monotonic_ns() + (int64_t)wait_ms * 1000000;
	cleanup_free char *dev = find_device(req->rootfs);
	if (dev) {
		pv_err_t *e = NULL;
		if (do_create(req, dev, &e) == 0)
			return 0;
		if (!create_may_retry(e, deadline_ns)) {
			pv_err_move(err, e);
			return -1;
		}
		pv_err_free(e);
	}
	/* Not there (or not openable) yet, the hot-add in flight: answer when it works or
	 * wait_ms passes. */
	pending_add(req, request_id, deadline_ns);
	return 1;
}


/* Wait for the child's verdict: EOF on errfd means execve succeeded. */
static int read_setup_result(int errfd, pid_t pid, pv_err_t **err)
{
	char buf[600];
	ssize_t n;
	do
		n = read(errfd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		buf[n] = 0;
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return pv_err_set(err, PV_FAILED_PRECONDITION, 0, "%s", buf);
	}
	return 0;
}


static int open_ns(pid_t pid, const char *ns);

/*
 * The PID namespace a container's init is forked into when it is not a new one of its own:
 * the pod's (pid: POD) or another container's (pid: TARGET). -1 in *fd: its own. *owned: the
 * caller closes the fd.
 */
static int pidns_to_join(const struct container *c, int *fd, bool *owned, pv_err_t **err)
{
	*fd = -1;
	*owned = false;
	switch (c->spec->pid_namespace) {
	case PODVISOR__AGENT__PID_NAMESPACE__PID_POD:
		*fd = podpid_ns_fd(err);
		return *fd < 0 ? -1 : 0;
	case PODVISOR__AGENT__PID_NAMESPACE__PID_TARGET: {
		struct container *t = container_find(c->spec->pid_target);
		struct proc *init = t ? t->procs : NULL;
		if (!init || init->exited)
			return pv_err_set(err, PV_FAILED_PRECONDITION, ESRCH,
					  "pid_target %s is not a running container of this pod", c->spec->pid_target);
		*fd = open_ns(init->pid, "ns/pid");
		*owned = true;
		return *fd < 0 ? pv_err_sys(err, PV_INTERNAL, "open the PID namespace of %s", t->id) : 0;
	}
	default:
		return 0;
	}
}

/*
 * Fork the container's init: PID 1 of a new PID namespace, or a process of the namespace
 * pidns_fd names (the agent stays its parent either way). New mount and UTS namespaces; the
 * IPC namespace is the pod's (the VM's), as Kubernetes shares IPC between a pod's containers.
 */
static pid_t fork_init(const struct container *c, int pidns_fd, struct stdio_fds *s, int errfd)
{
	unsigned long flags = CLONE_NEWNS | CLONE_NEWUTS | SIGCHLD;
	if (pidns_fd < 0)
		flags |= CLONE_NEWPID;
	else if (setns(pidns_fd, CLONE_NEWPID) < 0)
		return -1;
	pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
	if (pid == 0) {
		struct child_args a = { .c = (struct container *)c, .proc = c->spec->process, .is_init = true,
					.tty_slave = s->tty_slave, .errfd = errfd, .ns_fds = { -1, -1, -1 },
					.root_fd = -1 };
		memcpy(a.stdio, s->child, sizeof(a.stdio));
		process_child(&a);
	}
	int saved = errno;
	if (pidns_fd >= 0 && setns(g_agent.self_pidns_fd, CLONE_NEWPID) < 0)
		pv_error("cannot return to the agent's pid namespace", "error=%s", strerror(errno));
	errno = saved;
	return pid;
}

int container_start(const char *id, pid_t *pid_out, pv_err_t **err)
{
	struct container *c = container_find(id);
	if (!c)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "container %s not found", id);
	if (c->started)
		return pv_err_set(err, PV_FAILED_PRECONDITION, EBUSY, "container %s already started", id);
	const Podvisor__Agent__Process *p = c->spec->process;
	int nsfd;
	bool own_nsfd;
	if (pidns_to_join(c, &nsfd, &own_nsfd, err) < 0) {
		pv_err_prefix(err, "start container %s", id);
		return -1;
	}
	struct stdio_fds s;
	int errp[2] = { -1, -1 };
	if (make_stdio(p, &s, err) < 0)
		goto fail_ns;
	if (pipe2(errp, O_CLOEXEC) < 0) {
		pv_err_sys(err, PV_INTERNAL, "pipe");
		close_fds(s.parent, 3);
		release_child_fds(&s);
		goto fail_ns;
	}
	pid_t pid = fork_init(c, nsfd, &s, errp[1]);
	int fork_errno = errno;
	close(errp[1]);
	release_child_fds(&s);
	if (own_nsfd)
		close(nsfd);
	int rc = pid < 0 ? (errno = fork_errno, pv_err_sys(err, PV_INTERNAL, "clone")) : read_setup_result(errp[0], pid, err);
	close(errp[0]);
	if (rc < 0) {
		close_fds(s.parent, 3);
		if (s.pty_master >= 0)
			close(s.pty_master);
		pv_err_prefix(err, "start container %s", id);
		return -1;
	}
	c->started = true;
	proc_register(c, "", pid, &s, p);
	pv_info("container started", "id=%s pid=%d pid_namespace=%d", id, pid, (int)c->spec->pid_namespace);
	*pid_out = pid;
	return 0;
fail_ns:
	if (own_nsfd)
		close(nsfd);
	return -1;
}

static int open_ns(pid_t pid, const char *ns)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, ns);
	return open(path, O_RDONLY | O_CLOEXEC);
}

int container_exec(Podvisor__Agent__ExecProcessRequest *req, pid_t *pid_out, pv_err_t **err)
{
	struct container *c = container_find(req->container_id);
	if (!c)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "container %s not found", req->container_id);
	struct proc *init = c->procs;
	if (!c->started || !init || init->exited)
		return pv_err_set(err, PV_FAILED_PRECONDITION, ESRCH, "container %s is not running", c->id);
	if (proc_find(c, req->exec_id))
		return pv_err_set(err, PV_ALREADY_EXISTS, EEXIST, "exec %s already exists", req->exec_id);
	int fds[5] = { open_ns(init->pid, "ns/mnt"), open_ns(init->pid, "ns/uts"), open_ns(init->pid, "ns/ipc"),
		       open_ns(init->pid, "ns/pid"), open_ns(init->pid, "root") };
	for (int i = 0; i < 5; i++)
		if (fds[i] < 0) {
			pv_err_sys(err, PV_FAILED_PRECONDITION, "open namespaces of %s", c->id);
			close_fds(fds, 5);
			return -1;
		}
	struct stdio_fds s;
	if (make_stdio(req->process, &s, err) < 0) {
		close_fds(fds, 5);
		return -1;
	}
	int errp[2];
	if (pipe2(errp, O_CLOEXEC) < 0) {
		close_fds(fds, 5);
		close_fds(s.parent, 3);
		release_child_fds(&s);
		return pv_err_sys(err, PV_INTERNAL, "pipe");
	}
	/* Children forked now land in the container's PID namespace; the agent stays their parent. */
	if (setns(fds[3], CLONE_NEWPID) < 0) {
		pv_err_sys(err, PV_INTERNAL, "setns pid");
		close_fds(fds, 5);
		close_fds(s.parent, 3);
		release_child_fds(&s);
		close(errp[0]);
		close(errp[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(errp[0]);
		struct child_args a = { .c = c, .proc = req->process, .is_init = false, .tty_slave = s.tty_slave,
					.errfd = errp[1], .ns_fds = { fds[0], fds[1], fds[2] }, .root_fd = fds[4] };
		memcpy(a.stdio, s.child, sizeof(a.stdio));
		process_child(&a);
	}
	if (setns(g_agent.self_pidns_fd, CLONE_NEWPID) < 0)
		pv_error("cannot return to the agent's pid namespace", "error=%s", strerror(errno));
	close(errp[1]);
	close_fds(fds, 5);
	release_child_fds(&s);
	if (pid < 0) {
		close(errp[0]);
		close_fds(s.parent, 3);
		return pv_err_sys(err, PV_INTERNAL, "fork");
	}
	int rc = read_setup_result(errp[0], pid, err);
	close(errp[0]);
	if (rc < 0) {
		close_fds(s.parent, 3);
		if (s.pty_master >= 0)
			close(s.pty_master);
		pv_err_prefix(err, "exec in %s", c->id);
		return -1;
	}
	proc_register(c, req->exec_id, pid, &s, req->process);
	pv_info("exec started", "id=%s exec=%s pid=%d", c->id, req->exec_id, pid);
	*pid_out = pid;
	return 0;
}

/* ---- signals, wait, exit ------------------------------------------------------------------ */

int container_signal(const Podvisor__Agent__SignalProcessRequest *req, pv_err_t **err)
{
	struct container *c;
	struct proc *p;
	if (proc_lookup(req->container_id, req->exec_id, &c, &p, err) < 0)
		return -1;
	int sig = (int)req->signal;
	if (req->all) {
		/* Every pid in the cgroup (the container's processes and its execs). */
		char path[512];
		snprintf(path, sizeof(path), "%s/cgroup.procs", c->cgroup);
		cleanup_free char *s = NULL;
		size_t len;
		if (pv_read_file(path, 1 << 20, &s, &len, err) < 0)
			return -1;
		for (char *tok = strtok(s, "\n"); tok; tok = strtok(NULL, "\n"))
			kill(atoi(tok), sig);
		return 0;
	}
	if (p->exited)
		return pv_err_set(err, PV_NOT_FOUND, ESRCH, "process has exited");
	if (sigresend_kill(p->pid, sig) < 0)
		return pv_err_sys(err, PV_INTERNAL, "kill %d", p->pid);
	return 0;
}


static void proc_exited(struct proc *p, int status)
{
	p->exited = true;
	p->status = status;
	p->finished_ns = pv_now_realtime_ns();
	sigresend_forget(p->pid);
	if (p->sin)
		stdio_close(p->sin, false);
	pv_info("process exited", "container=%s exec=%s pid=%d status=%d", p->c->id, p->exec_id, p->pid, status);
	/* An init that was not PID 1 of its namespace takes nothing with it: end the rest. */
	if (!*p->exec_id && p->c->spec->pid_namespace != PODVISOR__AGENT__PID_NAMESPACE__PID_CONTAINER)
		cgroup_kill(p->c->cgroup);
	proc_maybe_finish(p);
}

void container_on_sigchld(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		struct proc *p = proc_by_pid(pid);
		if (p)
			proc_exited(p, status);
		else
			podpid_on_exit(pid, status);
	}
}


int container_stats(const char *id, Podvisor__Agent__StatsContainerResponse *out, pv_err_t **err)
{
	struct container *c = container_find(id);
	if (!c)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "container %s not found", id);
	if (cgroup_stats(c->cgroup, out, err) < 0)
		return -1;
	stats_rootfs(c, out);
	return 0;
}

int container_update(const char *id, const Podvisor__Agent__Resources *res, pv_err_t **err)
{
	struct container *c = container_find(id);
	if (!c)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "container %s not found", id);
	return cgroup_apply(c->cgroup, res, err);
}

/* Reap the container's processes after a cgroup kill, waiting at most timeout_ms. */
static void reap_container(struct container *c, int timeout_ms)
{
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		bool alive = false;
		for (struct proc *p = c->procs; p; p = p->next) {
			if (p->exited)
				continue;
			int st;
			if (waitpid(p->pid, &st, WNOHANG) == p->pid)
				proc_exited(p, st);
			else
				alive = true;
		}
		if (!alive || pv_now_monotonic_ns() >= deadline)
			return;
		usleep(5000);
	}
}


int container_remove(const char *id, pv_err_t **err)
{
	struct container *c = container_find(id);
	if (!c)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "container %s not found", id);
	cgroup_kill(c->cgroup);
	reap_container(c, 5000);
	for (struct proc *p = c->procs; p; p = p->next)
		if (!p->exited)
			return pv_err_set(err, PV_UNAVAILABLE, EBUSY, "processes of %s did not die", id);
	if (umount2(c->rootfs, MNT_DETACH) < 0 && errno != EINVAL)
		return pv_err_sys(err, PV_INTERNAL, "unmount %s", c->rootfs);
	if (cgroup_remove(c->cgroup, 2000, err) < 0)
		return -1;
	pv_rm_rf(c->dir, NULL);
	container_forget(c);
	return 0;
}

void container_kill_all(void)
{
	for (struct container *c = g_agent.containers; c; c = c->next) {
		cgroup_kill(c->cgroup);
		reap_container(c, 2000);
		umount2(c->rootfs, MNT_DETACH);
	}
}
