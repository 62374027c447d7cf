/*
 * Running the OCI runtime (runc, crun): one synchronous call per operation, with
 * `--root <state>/runc` so the pod's containers live in a state directory of its own, and
 * `--log <file> --log-format json` so a failure is reported with the runtime's own words
 * (its stderr is the container's for create and exec, and must not carry them).
 */
#include "hostagent.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 48
#define MAX_OUT (4u << 20)
/* A runtime call that takes longer is killed: a stuck runtime must not hang the pod's agent. */
#define RUNC_TIMEOUT_MS 60000

/* The last message the runtime logged at level error (its --log file), or NULL. */
static char *last_error(const char *log)
{
	cleanup_free char *text = NULL;
	size_t len;
	if (!log || pv_read_file(log, 1 << 20, &text, &len, NULL) < 0)
		return NULL;
	char *found = NULL;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		json_t *j = json_loads(line, 0, NULL);
		const char *lvl = json_string_value(json_object_get(j, "level"));
		const char *msg = json_string_value(json_object_get(j, "msg"));
		if (lvl && msg && (!strcmp(lvl, "error") || !strcmp(lvl, "fatal"))) {
			free(found);
			found = pv_xstrdup(msg);
		}
		json_decref(j);
	}
	return found;
}

static void child(const struct hostagent_runc *r, char **argv, int in_fd, int out_fd)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int fds[3] = { in_fd >= 0 ? in_fd : r->stdio[0], out_fd >= 0 ? out_fd : r->stdio[1], r->stdio[2] };
	/* Out of the way of 0..2 first, then into place (an fd may be wanted twice). */
	for (int i = 0; i < 3; i++)
		fds[i] = fcntl(fds[i] >= 0 ? fds[i] : devnull, F_DUPFD_CLOEXEC, 10);
	for (int i = 0; i < 3; i++)
		if (fds[i] < 0 || dup2(fds[i], i) < 0)
			_exit(126);
	syscall(SYS_close_range, 3, ~0U, 0);
	if (chdir(r->cwd ? r->cwd : g_pod.state_dir) < 0)
		_exit(126);
	execv(argv[0], argv);
	dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int ms_until(int64_t deadline)
{
	int64_t left = (deadline - pv_now_monotonic_ns()) / 1000000;
	return left < 0 ? 0 : (int)left;
}

/* Feed its stdin, collect its stdout (until EOF or the deadline). */
static void feed_and_collect(const struct hostagent_runc *r, int in_w, int out_r, int64_t deadline)
{
	if (in_w >= 0) {
		pv_write_full(in_w, r->input, strlen(r->input));
		close(in_w);
	}
	if (out_r < 0)
		return;
	size_t cap = 4096, len = 0;
	char *buf = pv_xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			if (cap >= MAX_OUT)
				break;
			cap *= 2;
			buf = pv_xrealloc(buf, cap);
		}
		struct pollfd pf = { .fd = out_r, .events = POLLIN };
		if (poll(&pf, 1, ms_until(deadline)) <= 0)
			break;
		ssize_t n = read(out_r, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(out_r);
	*r->out = buf;
}

/* Wait for the runtime's exit; past the deadline, kill it. */
static int wait_runtime(pid_t pid, int64_t deadline, bool *timed_out)
{
	int st = 0;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			return st;
		if (w < 0 && errno != EINTR)
			return st;
		if (!*timed_out && pv_now_monotonic_ns() >= deadline) {
			*timed_out = true;
			kill(pid, SIGKILL);
		}
		usleep(2000);
	}
}

int hostagent_runc(const struct hostagent_runc *r, pv_err_t **err)
{
	char *argv[MAX_ARGS];
	int n = 0;
	cleanup_free char *root = pv_xasprintf("%s/runc", g_pod.state_dir);
	argv[n++] = g_pod.runtime;
	argv[n++] = (char *)"--root";
	argv[n++] = root;
	if (r->log) {
		unlink(r->log);
		argv[n++] = (char *)"--log";
		argv[n++] = (char *)r->log;
		argv[n++] = (char *)"--log-format";
		argv[n++] = (char *)"json";
	}
	for (size_t i = 0; r->args[i] && n < MAX_ARGS - 1; i++)
		argv[n++] = (char *)r->args[i];
	argv[n] = NULL;
	int inp[2] = { -1, -1 }, outp[2] = { -1, -1 };
	if ((r->input && pipe2(inp, O_CLOEXEC) < 0) || (r->out && pipe2(outp, O_CLOEXEC) < 0))
		return pv_err_sys(err, PV_INTERNAL, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close_fds(inp, 2);
		close_fds(outp, 2);
		return pv_err_sys(err, PV_INTERNAL, "fork");
	}
	if (pid == 0)
		child(r, argv, inp[0], outp[1]);
	if (inp[0] >= 0)
		close(inp[0]);
	if (outp[1] >= 0)
		close(outp[1]);
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)RUNC_TIMEOUT_MS * 1000000;
	feed_and_collect(r, inp[1], outp[0], deadline);
	bool timed_out = false;
	int st = wait_runtime(pid, deadline, &timed_out);
	if (timed_out) {
		if (r->out) {
			free(*r->out);
			*r->out = NULL;
		}
		return pv_err_set(err, PV_DEADLINE_EXCEEDED, ETIMEDOUT, "%s %s: no answer within %d s (killed)",
				  g_pod.runtime, r->args[0], RUNC_TIMEOUT_MS / 1000);
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (r->out) {
		free(*r->out);
		*r->out = NULL;
	}
	cleanup_free char *why = last_error(r->log);
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (!why)
		why = code == 127 ? pv_xstrdup("cannot run it") : pv_xasprintf("exit status %d", code);
	return pv_err_set(err, PV_FAILED_PRECONDITION, EIO, "%s %s: %s", g_pod.runtime, r->args[0], why);
}
