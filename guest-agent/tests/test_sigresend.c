/*
 * Unit tests: the stop signal that PID 1 of a PID namespace had no handler for, sent again
 * once it has one (guest-agent/sigresend.c), with a real PID namespace on the host (root).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "util.h"

struct agent g_agent = { .epfd = -1 };

static void test_parse_status(void **state)
{
	const char *st = "\nName:\tsleep\nNSpid:\t4321\t1\nSigBlk:\t0000000000000000\n"
			 "SigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\n";
	bool init = false, caught = false;
	assert_int_equal(sigresend_parse_status(st, SIGTERM, &init, &caught), 0);
	assert_true(init);
	assert_true(caught); /* bit 14 = signal 15 */
	assert_int_equal(sigresend_parse_status(st, SIGUSR1, &init, &caught), 0);
	assert_false(caught);
	st = "\nNSpid:\t4321\t17\nSigCgt:\t0000000000000000\n";
	assert_int_equal(sigresend_parse_status(st, SIGTERM, &init, &caught), 0);
	assert_false(init);
	assert_true(sigresend_parse_status("\nName:\tx\n", SIGTERM, &init, &caught) < 0);
	assert_true(sigresend_ends_by_default(SIGTERM));
	assert_true(sigresend_ends_by_default(SIGQUIT));
	assert_true(sigresend_ends_by_default(SIGRTMIN + 2));
	assert_false(sigresend_ends_by_default(SIGKILL));
	assert_false(sigresend_ends_by_default(SIGWINCH));
	assert_false(sigresend_ends_by_default(SIGCHLD));
	assert_false(sigresend_ends_by_default(SIGTSTP));
}

static void on_term(int sig)
{
	_exit(42);
}

/* PID 1 of a new PID namespace that installs its SIGTERM handler only after a while. */
static pid_t late_handler_init(int delay_ms)
{
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid == 0) {
		struct timespec ts = { .tv_sec = delay_ms / 1000, .tv_nsec = (delay_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		signal(SIGTERM, on_term);
		for (;;)
			pause();
	}
	return pid;
}

static int wait_exit(pid_t pid, int timeout_ms, bool pump)
{
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	while (pv_now_monotonic_ns() < deadline) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		struct epoll_event ev;
		if (epoll_wait(g_agent.epfd, &ev, 1, 10) == 1 && pump)
			sigresend_on_timer();
	}
	return -1;
}

static void test_resend_to_late_handler(void **state)
{
	if (geteuid() != 0) {
		skip(); /* a PID namespace needs root */
		return;
	}
	g_agent.epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_int_equal(sigresend_init(), 0);
	/* Sent before the handler exists: the kernel drops it; the watch sends it again. */
	pid_t pid = late_handler_init(300);
	assert_true(pid > 0);
	usleep(50000);
	assert_int_equal(sigresend_kill(pid, SIGTERM), 0);
	assert_int_equal(wait_exit(pid, 5000, true), 42);
	/* The same without the watch's timer: the first SIGTERM was lost for good. */
	pid = late_handler_init(300);
	usleep(50000);
	assert_int_equal(sigresend_kill(pid, SIGTERM), 0);
	assert_int_equal(wait_exit(pid, 1500, false), -1);
	kill(pid, SIGKILL);
	assert_int_equal(wait_exit(pid, 5000, false), 128 + SIGKILL);
	sigresend_forget(pid);
	close(g_agent.epfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_status),
		cmocka_unit_test(test_resend_to_late_handler),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
