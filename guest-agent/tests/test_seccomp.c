/*
 * Unit tests: seccomp profiles compiled with libseccomp (guest-agent/seccomp.c) and run: a
 * forked child installs the filter and the syscalls it tries fail or work as the profile
 * says. Also compiles podvisor's RuntimeDefault profile (cri/seccomp_default.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "arena.h"
#include "cleanup.h"
#include "spec.h"

/* Run fn in a child under the filter; returns what fn returns (0..255), or 300+signal. */
static int run_filtered(const struct seccomp_prog *prog, int (*fn)(void))
{
	pid_t pid = fork();
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_install(prog) < 0)
			_exit(200);
		_exit(fn());
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 300 + WTERMSIG(st);
}

static char *names_mkdir[] = { (char *)"mkdir", (char *)"mkdirat", (char *)"no_such_syscall_at_all" };

static int try_mkdir(void)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/pv-seccomp-test-%d", (int)getpid());
	if (mkdir(dir, 0700) == 0) {
		rmdir(dir);
		return 0;
	}
	return errno;
}

static void test_deny_mkdir(void **state)
{
	Podvisor__Agent__Seccomp sc = PODVISOR__AGENT__SECCOMP__INIT;
	Podvisor__Agent__SeccompRule r = PODVISOR__AGENT__SECCOMP_RULE__INIT, *rp[1] = { &r };
	sc.default_action = (char *)"SCMP_ACT_ALLOW";
	sc.syscalls = rp;
	sc.n_syscalls = 1;
	r.names = names_mkdir;
	r.n_names = 3; /* a name this kernel does not know is skipped */
	r.action = (char *)"SCMP_ACT_ERRNO";
	struct seccomp_prog prog = { 0 };
	assert_int_equal(seccomp_compile(&sc, &prog, NULL), 0);
	assert_non_null(prog.insns);
	assert_int_equal(run_filtered(&prog, try_mkdir), EPERM);
	seccomp_prog_free(&prog);

	r.has_errno_ret = 1;
	r.errno_ret = ENOSPC;
	assert_int_equal(seccomp_compile(&sc, &prog, NULL), 0);
	assert_int_equal(run_filtered(&prog, try_mkdir), ENOSPC);
	seccomp_prog_free(&prog);

	/* Unfiltered, the same call works. */
	assert_int_equal(try_mkdir(), 0);
}

static int try_personality(void)
{
	/* 0xffffffff queries; 0x8 and 0 are allowed by two rules on the same argument (ORed). */
	if (syscall(SYS_personality, 0xffffffffUL) < 0 || syscall(SYS_personality, 0x8UL) < 0 ||
	    syscall(SYS_personality, 0x0UL) < 0)
		return 1;
	return syscall(SYS_personality, 0x40000UL) < 0 && errno == EPERM ? 0 : 2;
}

static void test_repeated_argument(void **state)
{
	Podvisor__Agent__Seccomp sc = PODVISOR__AGENT__SECCOMP__INIT;
	Podvisor__Agent__SeccompRule r = PODVISOR__AGENT__SECCOMP_RULE__INIT, *rp[1] = { &r };
	Podvisor__Agent__SeccompArg a0 = PODVISOR__AGENT__SECCOMP_ARG__INIT, a1 = PODVISOR__AGENT__SECCOMP_ARG__INIT,
				    a2 = PODVISOR__AGENT__SECCOMP_ARG__INIT, *ap[3] = { &a0, &a1, &a2 };
	char *names[1] = { (char *)"personality" };
	sc.default_action = (char *)"SCMP_ACT_ALLOW";
	sc.syscalls = rp;
	sc.n_syscalls = 1;
	r.names = names;
	r.n_names = 1;
	r.action = (char *)"SCMP_ACT_ERRNO";
	/* deny unless arg0 is one of these: expressed as allow rules under an ERRNO default */
	sc.default_action = (char *)"SCMP_ACT_ALLOW";
	r.action = (char *)"SCMP_ACT_ERRNO";
	a0.op = a1.op = a2.op = (char *)"SCMP_CMP_EQ";
	a0.value = 0x40000;
	a1.value = 0x40001;
	a2.value = 0x40002;
	r.args = ap;
	r.n_args = 3;
	struct seccomp_prog prog = { 0 };
	assert_int_equal(seccomp_compile(&sc, &prog, NULL), 0);
	assert_int_equal(run_filtered(&prog, try_personality), 0);
	seccomp_prog_free(&prog);
}

static int try_default_profile_unprivileged(void)
{
	if (getpid() <= 0 || syscall(SYS_getppid) <= 0)
		return 1;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 2;
	close(fd);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return 3;
	close(s);
	if (socket(40 /* AF_VSOCK */, SOCK_STREAM, 0) >= 0 || errno != EPERM)
		return 4;
	if (unshare(CLONE_NEWUTS) == 0 || errno != EPERM)
		return 5;
	if (syscall(SYS_clone3, NULL, 0) >= 0 || errno != ENOSYS)
		return 6;
	if (sethostname("x", 1) == 0 || errno != EPERM)
		return 7;
	if (syscall(SYS_reboot, 0, 0, 0, NULL) == 0 || errno != EPERM)
		return 8;
	/* fork without namespace flags is allowed */
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	int st;
	if (p < 0 || waitpid(p, &st, 0) != p)
		return 9;
	return try_mkdir();
}

static void test_runtime_default(void **state)
{
	struct cri_arena a = { 0 };
	char *caps[] = { (char *)"CAP_CHOWN", (char *)"CAP_KILL", (char *)"CAP_SETUID" };
	Podvisor__Agent__Seccomp *sc = spec_seccomp_default(&a, caps, 3);
	struct seccomp_prog prog = { 0 };
	pv_err_t *err = NULL;
	assert_int_equal(seccomp_compile(sc, &prog, &err), 0);
	assert_true(prog.len > 10);
	assert_int_equal(run_filtered(&prog, try_default_profile_unprivileged), 0);
	seccomp_prog_free(&prog);

	/* With every capability: the groups overlap (bpf, syslog, perf_event_open) and still compile. */
	char *all[] = { (char *)"CAP_SYS_ADMIN", (char *)"CAP_BPF", (char *)"CAP_SYSLOG", (char *)"CAP_PERFMON",
			(char *)"CAP_SYS_PTRACE", (char *)"CAP_SYS_TIME", (char *)"CAP_SYS_BOOT" };
	sc = spec_seccomp_default(&a, all, PV_ARRAY_SIZE(all));
	assert_int_equal(seccomp_compile(sc, &prog, &err), 0);
	seccomp_prog_free(&prog);
	cri_arena_free(&a);
}

/* A rule that does what the default does is dropped, not refused by libseccomp. */
static void test_rule_like_default(void **state)
{
	Podvisor__Agent__Seccomp sc = PODVISOR__AGENT__SECCOMP__INIT;
	Podvisor__Agent__SeccompRule r = PODVISOR__AGENT__SECCOMP_RULE__INIT, *rp[1] = { &r };
	sc.default_action = (char *)"SCMP_ACT_ERRNO";
	sc.syscalls = rp;
	sc.n_syscalls = 1;
	r.names = names_mkdir;
	r.n_names = 2;
	r.action = (char *)"SCMP_ACT_ERRNO";
	r.has_errno_ret = 1;
	r.errno_ret = EPERM;
	struct seccomp_prog prog = { 0 };
	assert_int_equal(seccomp_compile(&sc, &prog, NULL), 0);
	seccomp_prog_free(&prog);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deny_mkdir),
		cmocka_unit_test(test_repeated_argument),
		cmocka_unit_test(test_runtime_default),
		cmocka_unit_test(test_rule_like_default),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
