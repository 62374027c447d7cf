/*
 * A stop signal that PID 1 of a container could not take yet, delivered again once it can.
 *
 * The kernel drops a signal sent to the init of a PID namespace when that process has no
 * handler for it (SIG_DFL), even one whose default action would end any other process: init
 * is protected from signals it did not ask for. So a SIGTERM that reaches a container's init
 * before the program has installed its handler (a busy VM under emulation, StopContainer
 * right after StartContainer) is lost, and the stop waits for its whole grace period.
 *
 * When the agent signals a container's init with a signal whose default action ends a
 * process (terminate or core dump: the ones a normal process could not miss) while that init
 * has no handler for it, it watches /proc/PID/status and sends the signal again as soon as
 * SigCgt shows a handler. Signals whose default is to be ignored, to stop or to continue are
 * not watched: a process that is not an init would not have acted on them either. A process
 * that is not the init of its namespace (pid: POD containers, execs) gets its signal like
 * anywhere else and is not watched. One watch per process; it ends when the signal is sent
 * again, when the process exits, or when another signal replaces it.
 */
#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define POLL_MS 20

struct watch {
	pid_t pid;
	int sig;
	struct watch *next;
};

static struct watch *g_watches;
static int g_timer_fd = -1;
static struct ev g_timer_ev = { .kind = EV_SIGRESEND };

/* Default action terminate or core dump (signal(7)), except SIGKILL, which init cannot block. */
bool sigresend_ends_by_default(int sig)
{
	switch (sig) {
	case SIGKILL:
	case SIGCHLD:
	case SIGCONT:
	case SIGURG:
	case SIGWINCH:
	case SIGSTOP:
	case SIGTSTP:
	case SIGTTIN:
	case SIGTTOU:
		return false;
	default:
		return sig >= 1 && sig < NSIG;
	}
}

/* From the text of /proc/PID/status: is the process its namespace's init, and does it
 * catch sig? Returns -1 if the text lacks the lines. */
int sigresend_parse_status(const char *status, int sig, bool *ns_init, bool *caught)
{
	const char *nspid = strstr(status, "\nNSpid:");
	const char *cgt = strstr(status, "\nSigCgt:");
	if (!nspid || !cgt || sig < 1 || sig > 64)
		return -1;
	/* NSpid lists the pid in each namespace from the outermost in: the last one is its own. */
	const char *eol = strchrnul(nspid + 1, '\n');
	const char *last = eol;
	while (last > nspid && (last[-1] == ' ' || last[-1] == '\t'))
		last--;
	while (last > nspid && last[-1] >= '0' && last[-1] <= '9')
		last--;
	*ns_init = strtol(last, NULL, 10) == 1;
	unsigned long long mask = strtoull(cgt + 8, NULL, 16);
	*caught = (mask >> (sig - 1)) & 1;
	return 0;
}

static int read_status(pid_t pid, int sig, bool *ns_init, bool *caught)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	cleanup_free char *s = NULL;
	size_t len;
	if (pv_read_file(path, 1 << 16, &s, &len, NULL) < 0)
		return -1;
	/* strstr looks for "\n<field>": make the first line findable too. */
	cleanup_free char *text = pv_xasprintf("\n%s", s);
	return sigresend_parse_status(text, sig, ns_init, caught);
}

static void arm(bool on)
{
	struct itimerspec its = { 0 };
	if (on)
		its.it_interval.tv_nsec = its.it_value.tv_nsec = POLL_MS * 1000000L;
	timerfd_settime(g_timer_fd, 0, &its, NULL);
}

static void forget(pid_t pid)
{
	for (struct watch **w = &g_watches; *w;) {
		if ((*w)->pid == pid) {
			struct watch *dead = *w;
			*w = dead->next;
			free(dead);
		} else {
			w = &(*w)->next;
		}
	}
}

int sigresend_init(void)
{
	g_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (g_timer_fd < 0)
		return -errno;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &g_timer_ev };
	return epoll_ctl(g_agent.epfd, EPOLL_CTL_ADD, g_timer_fd, &ev) < 0 ? -errno : 0;
}

int sigresend_kill(pid_t pid, int sig)
{
	forget(pid);
	bool ns_init = false, caught = true;
	bool watch = sigresend_ends_by_default(sig) && read_status(pid, sig, &ns_init, &caught) == 0 && ns_init &&
		     !caught;
	if (kill(pid, sig) < 0)
		return -1;
	if (watch && g_timer_fd >= 0) {
		struct watch *w = pv_xcalloc(1, sizeof(*w));
		w->pid = pid;
		w->sig = sig;
		w->next = g_watches;
		g_watches = w;
		arm(true);
		pv_info("signal sent before its handler was installed: will send it again once there is one",
			"pid=%d signal=%d", pid, sig);
	}
	return 0;
}

void sigresend_forget(pid_t pid)
{
	forget(pid);
	if (!g_watches)
		arm(false);
}

void sigresend_on_timer(void)
{
	uint64_t ticks;
	if (read(g_timer_fd, &ticks, sizeof(ticks)) < 0) {
		/* spurious */
	}
	for (struct watch **w = &g_watches; *w;) {
		struct watch *cur = *w;
		bool ns_init = false, caught = false;
		if (read_status(cur->pid, cur->sig, &ns_init, &caught) < 0) {
			*w = cur->next; /* gone */
			free(cur);
			continue;
		}
		if (!caught) {
			w = &cur->next;
			continue;
		}
		if (kill(cur->pid, cur->sig) == 0)
			pv_info("signal sent again: the handler is there now", "pid=%d signal=%d", cur->pid, cur->sig);
		*w = cur->next;
		free(cur);
	}
	if (!g_watches)
		arm(false);
}
