/*
 * The pod's shared PID namespace (CRI NamespaceOption.pid = POD, shareProcessNamespace in
 * Kubernetes). Its PID 1 is a small reaper forked from the agent: it owns no container, so
 * a container's exit does not end the namespace, and it reaps what gets orphaned into it,
 * as the pause container does for containerd. Containers of such a pod are forked by the
 * agent into this namespace (setns on pid_for_children), so the agent stays their parent.
 * Made on first use; if it ever dies, the next container makes a new one.
 */
#include "agent.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t g_reaper = -1;
static int g_ns_fd = -1;

static void __attribute__((noreturn)) reaper_main(void)
{
	sigset_t all, chld;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	prctl(PR_SET_NAME, "pod-init", 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	/* Nothing of the agent's (channel, epoll, stdio pipes) may stay open in here. */
	syscall(SYS_close_range, 3, ~0U, 0);
	int null = open("/dev/null", O_RDWR);
	for (int i = 0; null >= 0 && i < 3; i++)
		dup2(null, i);
	if (chdir("/") < 0) {
		/* keep going: the reaper needs no directory */
	}
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		siginfo_t si;
		sigwaitinfo(&chld, &si);
	}
}

int podpid_ns_fd(pv_err_t **err)
{
	if (g_ns_fd >= 0)
		return g_ns_fd;
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0)
		return pv_err_sys(err, PV_INTERNAL, "clone the pod's PID namespace");
	if (pid == 0)
		reaper_main();
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		pv_err_sys(err, PV_INTERNAL, "open %s", path);
		kill(pid, SIGKILL);
		return -1;
	}
	g_reaper = pid;
	g_ns_fd = fd;
	pv_info("pod PID namespace made", "reaper_pid=%d", pid);
	return fd;
}

bool podpid_on_exit(pid_t pid, int status)
{
	if (pid != g_reaper)
		return false;
	pv_warn("pod PID namespace reaper exited", "pid=%d status=%d", pid, status);
	close(g_ns_fd);
	g_ns_fd = -1;
	g_reaper = -1;
	return true;
}
