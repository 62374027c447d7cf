/*
 * Processes of containers, as both agents keep them: their stdio (pipes or a pty, relayed as
 * channel streams), their registration, and the Wait answers once they have exited and their
 * output is drained. How a process is started and reaped is each agent's own
 * (guest-agent/container.c: fork into namespaces; host-agent/ctr.c: the OCI runtime).
 */
#include "agent.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

struct container *container_find(const char *id)
{
	for (struct container *c = g_agent.containers; c; c = c->next)
		if (!strcmp(c->id, id))
			return c;
	return NULL;
}

struct proc *proc_find(struct container *c, const char *exec_id)
{
	for (struct proc *p = c->procs; p; p = p->next)
		if (!strcmp(p->exec_id, exec_id ? exec_id : ""))
			return p;
	return NULL;
}

int proc_lookup(const char *cid, const char *exec_id, struct container **cout, struct proc **pout,
		pv_err_t **err)
{
	struct container *c = container_find(cid);
	if (!c)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "container %s not found", cid);
	struct proc *p = proc_find(c, exec_id);
	if (!p)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "process '%s' of container %s not found",
				  exec_id ? exec_id : "", cid);
	if (cout)
		*cout = c;
	*pout = p;
	return 0;
}

void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

int make_stdio(const Podvisor__Agent__Process *p, struct stdio_fds *s, pv_err_t **err)
{
	for (int i = 0; i < 3; i++)
		s->parent[i] = s->child[i] = -1;
	s->pty_master = s->tty_slave = -1;
	uint32_t ids[3] = { p->stdin_stream, p->stdout_stream, p->stderr_stream };
	for (int i = 0; i < 3; i++)
		if (ids[i] && (stdio_find(ids[i]) || portfwd_stream_in_use(ids[i])))
			return pv_err_set(err, PV_ALREADY_EXISTS, EEXIST, "stream %u is in use", ids[i]);
	if (p->terminal) {
		int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
			return pv_err_sys(err, PV_INTERNAL, "open pty");
		char *name = ptsname(m);
		int sl = name ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
		if (sl < 0) {
			close(m);
			return pv_err_sys(err, PV_INTERNAL, "open pty slave");
		}
		if (p->console_size && p->console_size->rows) {
			struct winsize ws = { .ws_row = (unsigned short)p->console_size->rows,
					      .ws_col = (unsigned short)p->console_size->cols };
			ioctl(m, TIOCSWINSZ, &ws);
		}
		s->pty_master = m;
		s->tty_slave = sl;
		for (int i = 0; i < 3; i++)
			s->child[i] = sl;
		if (p->stdin_stream)
			s->parent[0] = fcntl(m, F_DUPFD_CLOEXEC, 3);
		if (p->stdout_stream)
			s->parent[1] = fcntl(m, F_DUPFD_CLOEXEC, 3);
		return 0;
	}
	for (int i = 0; i < 3; i++) {
		if (!ids[i])
			continue;
		int fds[2];
		if (pipe2(fds, O_CLOEXEC) < 0) {
			close_fds(s->parent, 3);
			close_fds(s->child, 3);
			return pv_err_sys(err, PV_INTERNAL, "pipe");
		}
		s->parent[i] = i == 0 ? fds[1] : fds[0];
		s->child[i] = i == 0 ? fds[0] : fds[1];
	}
	return 0;
}

void release_child_fds(struct stdio_fds *s)
{
	if (s->tty_slave >= 0) {
		close(s->tty_slave);
		s->tty_slave = -1;
		for (int i = 0; i < 3; i++)
			s->child[i] = -1;
	}
	close_fds(s->child, 3);
}

struct proc *proc_register(struct container *c, const char *exec_id, pid_t pid, struct stdio_fds *s,
				  const Podvisor__Agent__Process *p)
{
	struct proc *pr = pv_xcalloc(1, sizeof(*pr));
	pr->c = c;
	pr->exec_id = pv_xstrdup(exec_id);
	pr->pid = pid;
	pr->started_ns = pv_now_realtime_ns();
	pr->oom_kills_at_start = cgroup_oom_kills(c->cgroup);
	pr->pty_master = s->pty_master;
	if (s->parent[0] >= 0)
		pr->sin = stdio_new(p->stdin_stream, s->parent[0], true, pr);
	if (s->parent[1] >= 0)
		pr->sout = stdio_new(p->stdout_stream, s->parent[1], false, pr);
	if (s->parent[2] >= 0)
		pr->serr = stdio_new(p->stderr_stream, s->parent[2], false, pr);
	/* Append: init stays first. */
	struct proc **pp = &c->procs;
	while (*pp)
		pp = &(*pp)->next;
	*pp = pr;
	return pr;
}

bool proc_done(const struct proc *p)
{
	return p->exited && !(p->sout && p->sout->fd >= 0) && !(p->serr && p->serr->fd >= 0);
}

static void reply_wait(struct proc *p, uint32_t id)
{
	Podvisor__Agent__Response r = PODVISOR__AGENT__RESPONSE__INIT;
	Podvisor__Agent__WaitProcessResponse w = PODVISOR__AGENT__WAIT_PROCESS_RESPONSE__INIT;
	if (WIFSIGNALED(p->status)) {
		w.signal = WTERMSIG(p->status);
		w.exit_code = 128 + w.signal;
	} else {
		w.exit_code = WEXITSTATUS(p->status);
	}
	w.oom_killed = cgroup_oom_kills(p->c->cgroup) > p->oom_kills_at_start;
	w.started_at_ns = p->started_ns;
	w.finished_at_ns = p->finished_ns;
	w.pid = (uint32_t)p->pid;
	r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_WAIT_PROCESS;
	r.wait_process = &w;
	channel_send_response(id, &r);
}

void proc_maybe_finish(struct proc *p)
{
	/* Streams being closed right now are unlinked later: proc_done looks at their fds. */
	if (!proc_done(p))
		return;
	while (p->waiters) {
		struct waiter *w = p->waiters;
		p->waiters = w->next;
		reply_wait(p, w->request_id);
		free(w);
	}
}

int container_wait(const char *cid, const char *exec_id, uint32_t request_id, pv_err_t **err)
{
	struct proc *p;
	if (proc_lookup(cid, exec_id, NULL, &p, err) < 0)
		return -1;
	if (proc_done(p)) {
		reply_wait(p, request_id);
		return 0;
	}
	struct waiter *w = pv_xcalloc(1, sizeof(*w));
	w->request_id = request_id;
	w->next = p->waiters;
	p->waiters = w;
	proc_maybe_finish(p);
	return 0;
}

struct proc *proc_by_pid(pid_t pid)
{
	for (struct container *c = g_agent.containers; c; c = c->next)
		for (struct proc *p = c->procs; p; p = p->next)
			if (p->pid == pid && !p->exited)
				return p;
	return NULL;
}

int container_close_stdin(const char *cid, const char *exec_id, pv_err_t **err)
{
	struct proc *p;
	if (proc_lookup(cid, exec_id, NULL, &p, err) < 0)
		return -1;
	if (p->sin)
		stdio_on_close(p->sin->id);
	return 0;
}

int container_resize(const Podvisor__Agent__ResizeTtyRequest *req, pv_err_t **err)
{
	struct proc *p;
	if (proc_lookup(req->container_id, req->exec_id, NULL, &p, err) < 0)
		return -1;
	if (p->pty_master < 0)
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTTY, "process has no terminal");
	struct winsize ws = { .ws_row = (unsigned short)req->rows, .ws_col = (unsigned short)req->cols };
	if (ioctl(p->pty_master, TIOCSWINSZ, &ws) < 0)
		return pv_err_sys(err, PV_INTERNAL, "TIOCSWINSZ");
	return 0;
}

void container_forget(struct container *c)
{
	while (c->procs) {
		struct proc *p = c->procs;
		c->procs = p->next;
		proc_free(p);
	}
	for (struct container **cp = &g_agent.containers; *cp; cp = &(*cp)->next) {
		if (*cp == c) {
			*cp = c->next;
			break;
		}
	}
	pv_info("container removed", "id=%s", c->id);
	container_free(c);
}

void proc_free(struct proc *p)
{
	struct stdio_stream *ss[3] = { p->sin, p->sout, p->serr };
	for (int i = 0; i < 3; i++) {
		if (ss[i]) {
			stdio_close(ss[i], true);
			ss[i]->proc = NULL;
		}
	}
	/* Waiters of a process that never finished: answer with what we know. */
	while (p->waiters) {
		struct waiter *w = p->waiters;
		p->waiters = w->next;
		reply_wait(p, w->request_id);
		free(w);
	}
	if (p->pty_master >= 0)
		close(p->pty_master);
	free(p->exec_id);
	free(p);
}
