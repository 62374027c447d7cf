/*
 * A host pod's containers through the OCI runtime. The container's process is created by
 * `runc create` with our pipes (or, with a terminal, a pty whose master runc hands back on
 * a console socket) as its stdio, so it is registered at create and its output flows from
 * `runc start` on. Execs are `runc exec --detach`. runc's processes exit once the
 * container's are started; being a child subreaper, the agent inherits those and reaps
 * them like the guest agent reaps its own.
 */
#include "hostagent.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONSOLE_SOCKET "console.sock"

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
	free(c);
}

static char *bundle_file(const struct container *c, const char *name)
{
	return pv_xasprintf("%s/%s", c->dir, name);
}

static pid_t read_pid(const char *path, pv_err_t **err)
{
	cleanup_free char *s = NULL;
	size_t len;
	if (pv_read_file(path, 64, &s, &len, err) < 0)
		return -1;
	long pid = strtol(s, NULL, 10);
	if (pid <= 0)
		return pv_err_set(err, PV_INTERNAL, EINVAL, "%s: no pid in it", path);
	return (pid_t)pid;
}

/* ---- the console socket: runc sends the pty master of a terminal process here ------- */

static int console_listen(const struct container *c, pv_err_t **err)
{
	/* Relative to the bundle (runc's working directory too): the full path would not fit
	 * in a socket address. */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", CONSOLE_SOCKET);
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "socket");
	if (chdir(c->dir) < 0)
		return pv_err_sys(err, PV_INTERNAL, "chdir %s", c->dir);
	unlink(CONSOLE_SOCKET);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0 ? -errno : 0;
	if (chdir(g_pod.state_dir) < 0) {
		/* the runtime's calls set their own directory */
	}
	if (r < 0) {
		errno = -r;
		return pv_err_sys(err, PV_INTERNAL, "console socket in %s", c->dir);
	}
	return steal_fd(&fd);
}

/* The pty master runc sent (SCM_RIGHTS) on the console socket; it queued it before exiting. */
static int console_receive(int lfd, pv_err_t **err)
{
	cleanup_close int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (conn < 0)
		return pv_err_sys(err, PV_INTERNAL, "accept the runtime's console connection");
	char data[256];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { data, sizeof(data) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	if (recvmsg(conn, &mh, MSG_CMSG_CLOEXEC) < 0)
		return pv_err_sys(err, PV_INTERNAL, "receive the terminal from the runtime");
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return pv_err_set(err, PV_INTERNAL, EPROTO, "the runtime sent no terminal");
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	return fd;
}

/* ---- one process through the runtime (create or exec) ---------------------------------- */

/*
 * Run `runc <verb> ... <id>` for process p: its stdio are pipes (or a pty) whose agent ends
 * come back in *s; *pid gets the process (from its pid file).
 */
static int runc_process(struct container *c, const char *const *args, const char *pidfile,
			const Podvisor__Agent__Process *p, struct stdio_fds *s, pid_t *pid, pv_err_t **err)
{
	if (make_stdio(p, s, err) < 0)
		return -1;
	cleanup_close int console = -1;
	int stdio[3] = { -1, -1, -1 };
	if (p->terminal) {
		/* runc makes the pty itself; ours from make_stdio is not used. */
		close(s->tty_slave);
		close_fds(s->parent, 3);
		close(s->pty_master);
		s->tty_slave = s->pty_master = -1;
		for (int i = 0; i < 3; i++)
			s->child[i] = -1;
		if ((console = console_listen(c, err)) < 0)
			return -1;
	} else {
		memcpy(stdio, s->child, sizeof(stdio));
	}
	cleanup_free char *log = bundle_file(c, "runtime.log");
	struct hostagent_runc r = { .args = args, .cwd = c->dir, .stdio = { stdio[0], stdio[1], stdio[2] }, .log = log };
	unlink(pidfile);
	int rc = hostagent_runc(&r, err);
	release_child_fds(s);
	if (rc == 0 && (*pid = read_pid(pidfile, err)) < 0)
		rc = -1;
	if (rc == 0 && p->terminal) {
		int m = console_receive(console, err);
		if (m < 0)
			rc = -1;
		s->pty_master = m;
		if (m >= 0 && p->stdin_stream)
			s->parent[0] = fcntl(m, F_DUPFD_CLOEXEC, 3);
		if (m >= 0 && p->stdout_stream)
			s->parent[1] = fcntl(m, F_DUPFD_CLOEXEC, 3);
	}
	if (p->terminal) {
		cleanup_free char *sock = bundle_file(c, CONSOLE_SOCKET);
		unlink(sock);
	}
	if (rc < 0) {
		close_fds(s->parent, 3);
		if (s->pty_master >= 0)
			close(s->pty_master);
		s->pty_master = -1;
	}
	return rc;
}

static void runc_simple(const struct container *c, const char *const *args, pv_err_t **err)
{
	cleanup_free char *log = bundle_file(c, "runtime.log");
	struct hostagent_runc r = { .args = args, .cwd = c->dir, .stdio = { -1, -1, -1 }, .log = log };
	hostagent_runc(&r, err);
}

static int write_json(const char *path, json_t *j, pv_err_t **err)
{
	char *text = json_dumps(j, JSON_COMPACT);
	int r = pv_write_file_atomic(path, text, strlen(text), 0600, err);
	free(text);
	return r;
}

/* ---- create / start / exec --------------------------------------------------------------- */

static int create_in_runtime(struct container *c, pv_err_t **err)
{
	json_t *cfg = hostagent_oci_config(&g_pod, c->rootfs, c->cgroup, c->spec, err);
	if (!cfg)
		return -1;
	cleanup_free char *cfg_path = bundle_file(c, "config.json");
	int r = write_json(cfg_path, cfg, err);
	json_decref(cfg);
	if (r < 0)
		return -1;
	cleanup_free char *pidfile = bundle_file(c, "init.pid");
	const Podvisor__Agent__Process *p = c->spec->process;
	const char *args[10] = { "create", "--bundle", c->dir, "--pid-file", pidfile };
	size_t n = 5;
	if (p->terminal) {
		args[n++] = "--console-socket";
		args[n++] = CONSOLE_SOCKET;
	}
	args[n++] = c->id;
	struct stdio_fds s;
	pid_t pid;
	if (runc_process(c, args, pidfile, p, &s, &pid, err) < 0)
		return -1;
	proc_register(c, "", pid, &s, p);
	return 0;
}

int container_create(Podvisor__Agent__CreateContainerRequest *req, uint32_t request_id, pv_err_t **err)
{
	if (container_find(req->container_id))
		return pv_err_set(err, PV_ALREADY_EXISTS, EEXIST, "container %s already exists", req->container_id);
	if (!*req->rootfs->path)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "create container %s: a host pod's rootfs is a directory (rootfs.path)", req->container_id);
	if (hostagent_pod_holder(err) < 0)
		return -1;
	struct container *c = pv_xcalloc(1, sizeof(*c));
	c->id = pv_xstrdup(req->container_id);
	c->dir = pv_xasprintf("%s/bundles/%s", g_pod.state_dir, c->id);
	c->rootfs = pv_xstrdup(req->rootfs->path);
	c->cgroup = hostagent_oci_cgroup(&g_pod, c->id);
	c->spec = req;
	if (pv_mkdir_p(c->dir, 0700, err) < 0 || create_in_runtime(c, err) < 0) {
		const char *del[] = { "delete", "--force", c->id, NULL };
		runc_simple(c, del, NULL);
		pv_rm_rf(c->dir, NULL);
		c->spec = NULL; /* the caller still owns req */
		while (c->procs) {
			struct proc *p = c->procs;
			c->procs = p->next;
			proc_free(p);
		}
		container_free(c);
		pv_err_prefix(err, "create container %s", req->container_id);
		return -1;
	}
	c->next = g_agent.containers;
	g_agent.containers = c;
	pv_info("container created", "id=%s pid=%d rootfs=%s", c->id, c->procs->pid, c->rootfs);
	return 0;
}

int container_start(const char *id, pid_t *pid_out, pv_err_t **err)
{
	struct container *c = container_find(id);
	if (!c)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "container %s not found", id);
	if (c->started)
		return pv_err_set(err, PV_FAILED_PRECONDITION, EBUSY, "container %s already started", id);
	const char *args[] = { "start", c->id, NULL };
	cleanup_free char *log = bundle_file(c, "runtime.log");
	struct hostagent_runc r = { .args = args, .cwd = c->dir, .stdio = { -1, -1, -1 }, .log = log };
	if (hostagent_runc(&r, err) < 0) {
		pv_err_prefix(err, "start container %s", id);
		return -1;
	}
	c->started = true;
	c->procs->started_ns = pv_now_realtime_ns();
	c->procs->oom_kills_at_start = cgroup_oom_kills(c->cgroup);
	pv_info("container started", "id=%s pid=%d", id, c->procs->pid);
	*pid_out = c->procs->pid;
	return 0;
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
	json_t *pj = hostagent_oci_process(&g_pod, req->process, err);
	if (!pj)
		return -1;
	cleanup_free char *name = pv_xasprintf("exec-%s.json", req->exec_id);
	cleanup_free char *pidname = pv_xasprintf("exec-%s.pid", req->exec_id);
	cleanup_free char *path = bundle_file(c, name);
	cleanup_free char *pidfile = bundle_file(c, pidname);
	int r = write_json(path, pj, err);
	json_decref(pj);
	if (r < 0)
		return -1;
	bool tty = req->process->terminal;
	const char *args[10] = { "exec", "--detach", "--pid-file", pidfile, "--process", path };
	size_t n = 6;
	if (tty) {
		args[n++] = "--console-socket";
		args[n++] = CONSOLE_SOCKET;
	}
	args[n++] = c->id;
	struct stdio_fds s;
	pid_t pid;
	r = runc_process(c, args, pidfile, req->process, &s, &pid, err);
	unlink(path);
	unlink(pidfile);
	if (r < 0) {
		pv_err_prefix(err, "exec in %s", c->id);
		return -1;
	}
	proc_register(c, req->exec_id, pid, &s, req->process);
	pv_info("exec started", "id=%s exec=%s pid=%d", c->id, req->exec_id, pid);
	*pid_out = pid;
	return 0;
}

/* ---- signals, exits ----------------------------------------------------------------------- */

int container_signal(const Podvisor__Agent__SignalProcessRequest *req, pv_err_t **err)
{
	struct container *c;
	struct proc *p;
	if (proc_lookup(req->container_id, req->exec_id, &c, &p, err) < 0)
		return -1;
	if (req->all) {
		cleanup_free char *sig = pv_xasprintf("%u", req->signal);
		const char *args[] = { "kill", "--all", c->id, sig, NULL };
		pv_err_t *e = NULL;
		runc_simple(c, args, &e);
		if (!e)
			return 0;
		/* A container whose processes are all gone has nothing to signal. */
		pv_debug("kill --all failed, signalling the init", "id=%s error=%s", c->id, e->msg);
		pv_err_free(e);
	}
	if (p->exited)
		return pv_err_set(err, PV_NOT_FOUND, ESRCH, "process has exited");
	/* Our child (a subreaper's), not yet reaped: the pid cannot have been reused. */
	if (kill(p->pid, (int)req->signal) < 0)
		return pv_err_sys(err, PV_INTERNAL, "kill %d", p->pid);
	return 0;
}

static void proc_exited(struct proc *p, int status)
{
	p->exited = true;
	p->status = status;
	p->finished_ns = pv_now_realtime_ns();
	if (p->sin)
		stdio_close(p->sin, false);
	pv_info("process exited", "container=%s exec=%s pid=%d status=%d", p->c->id, p->exec_id, p->pid, status);
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
	}
}

/* ---- stats, update, remove ------------------------------------------------------------------ */

int container_stats(const char *id, Podvisor__Agent__StatsContainerResponse *out, pv_err_t **err)
{
	struct container *c = container_find(id);
	if (!c)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "container %s not found", id);
	return hostagent_stats(c, out, err);
}

int container_update(const char *id, const Podvisor__Agent__Resources *res, pv_err_t **err)
{
	struct container *c = container_find(id);
	if (!c)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "container %s not found", id);
	json_t *j = hostagent_oci_resources(&g_pod, res);
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	const char *args[] = { "update", "--resources", "-", c->id, NULL };
	cleanup_free char *log = bundle_file(c, "runtime.log");
	struct hostagent_runc r = { .args = args, .cwd = c->dir, .stdio = { -1, -1, -1 }, .input = text, .log = log };
	int rc = hostagent_runc(&r, err);
	free(text);
	return rc;
}

/* Reap the container's processes once the runtime has killed them, waiting at most timeout_ms. */
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

/* Kill everything of the container and delete it from the runtime. */
static int delete_in_runtime(struct container *c, pv_err_t **err)
{
	const char *args[] = { "delete", "--force", c->id, NULL };
	cleanup_free char *log = bundle_file(c, "runtime.log");
	struct hostagent_runc r = { .args = args, .cwd = c->dir, .stdio = { -1, -1, -1 }, .log = log };
	int rc = hostagent_runc(&r, err);
	reap_container(c, 5000);
	return rc;
}

int container_remove(const char *id, pv_err_t **err)
{
	struct container *c = container_find(id);
	if (!c)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "container %s not found", id);
	if (delete_in_runtime(c, err) < 0)
		return -1;
	for (struct proc *p = c->procs; p; p = p->next)
		if (!p->exited)
			return pv_err_set(err, PV_UNAVAILABLE, EBUSY, "processes of %s did not die", id);
	pv_rm_rf(c->dir, NULL);
	container_forget(c);
	return 0;
}

void container_kill_all(void)
{
	for (struct container *c = g_agent.containers; c; c = c->next) {
		cleanup_err pv_err_t *err = NULL;
		if (delete_in_runtime(c, &err) < 0)
			pv_warn("container not deleted", "id=%s error=%s", c->id, err->msg);
		pv_rm_rf(c->dir, NULL);
	}
}
