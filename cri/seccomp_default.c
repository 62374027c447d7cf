/*
 * podvisor's RuntimeDefault seccomp profile: the same policy as the default profiles
 * containerd and CRI-O ship (Docker's lineage), written down here as data. Everything not
 * listed fails with EPERM. The list allows what ordinary programs use; the calls that
 * manage the system are allowed only when the container holds the capability that would
 * let it use them anyway (checked against its bounding set). Namespaces may not be made
 * without CAP_SYS_ADMIN (clone with CLONE_NEW* flags fails, clone3 answers ENOSYS so
 * libcs fall back to clone). io_uring is left out, as in current containerd and Docker.
 */
#include "spec.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define ALLOW "SCMP_ACT_ALLOW"

struct cond {
	unsigned index;
	unsigned long long value, value_two;
	const char *op;
};

struct group {
	const char *names;     /* space-separated */
	const char *cap;       /* NULL: always; else only with (or, if without, only without) it */
	bool without;
	const char *action;    /* ALLOW or "SCMP_ACT_ERRNO" with errnum */
	unsigned errnum;
	struct cond cond;      /* .op NULL: unconditional */
};

/* CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: no namespaces without CAP_SYS_ADMIN. */
#define CLONE_NS_FLAGS 0x7e020000ULL

static const struct group groups[] = {
	/* files, directories, links and metadata */
	{ "access faccessat faccessat2 chdir fchdir getcwd chmod fchmod fchmodat chown fchown fchownat lchown "
	  "chown32 fchown32 lchown32 creat open openat openat2 close close_range dup dup2 dup3 fcntl fcntl64 flock "
	  "link linkat symlink symlinkat unlink unlinkat rename renameat renameat2 mkdir mkdirat rmdir mknod "
	  "mknodat readlink readlinkat stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs "
	  "statfs64 fstatfs fstatfs64 truncate truncate64 ftruncate ftruncate64 getdents getdents64 umask utime "
	  "utimes utimensat utimensat_time64 futimesat name_to_handle_at",
	  NULL, false, ALLOW, 0, { 0 } },
	/* extended attributes */
	{ "getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr listxattr llistxattr flistxattr removexattr "
	  "lremovexattr fremovexattr",
	  NULL, false, ALLOW, 0, { 0 } },
	/* reading and writing, moving data between descriptors, syncing */
	{ "read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 lseek _llseek ioctl fallocate "
	  "fadvise64 fadvise64_64 readahead sync syncfs fsync fdatasync sync_file_range copy_file_range sendfile "
	  "sendfile64 splice tee vmsplice",
	  NULL, false, ALLOW, 0, { 0 } },
	/* waiting for events */
	{ "select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64 epoll_create epoll_create1 epoll_ctl "
	  "epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait epoll_pwait2 eventfd eventfd2 signalfd signalfd4 "
	  "timerfd_create timerfd_settime timerfd_settime64 timerfd_gettime timerfd_gettime64 inotify_init "
	  "inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark io_setup io_destroy io_submit io_cancel "
	  "io_getevents io_pgetevents io_pgetevents_time64",
	  NULL, false, ALLOW, 0, { 0 } },
	/* memory */
	{ "brk mmap mmap2 munmap mremap mprotect madvise mincore msync mlock mlock2 mlockall munlock munlockall "
	  "remap_file_pages memfd_create memfd_secret membarrier pkey_alloc pkey_free pkey_mprotect",
	  NULL, false, ALLOW, 0, { 0 } },
	/* processes, threads, scheduling, limits */
	{ "fork vfork execve execveat exit exit_group wait4 waitid waitpid kill tkill tgkill getpid getppid gettid "
	  "getpgid setpgid getpgrp getsid setsid getpriority setpriority getrusage prctl set_tid_address "
	  "set_robust_list get_robust_list set_thread_area get_thread_area rseq restart_syscall pidfd_open "
	  "pidfd_send_signal process_mrelease capget capset sched_getaffinity sched_setaffinity sched_getattr "
	  "sched_setattr sched_getparam sched_setparam sched_getscheduler sched_setscheduler sched_get_priority_max "
	  "sched_get_priority_min sched_rr_get_interval sched_rr_get_interval_time64 sched_yield getcpu ioprio_get "
	  "ioprio_set getrlimit setrlimit ugetrlimit prlimit64 times sysinfo uname seccomp getrandom "
	  "landlock_create_ruleset landlock_add_rule landlock_restrict_self",
	  NULL, false, ALLOW, 0, { 0 } },
	/* tracing the container's own processes (the kernel has checked ptrace access since 4.8) */
	{ "ptrace process_vm_readv process_vm_writev", NULL, false, ALLOW, 0, { 0 } },
	/* user and group ids */
	{ "getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid getresuid32 getresgid "
	  "getresgid32 getgroups getgroups32 setuid setuid32 setgid setgid32 setreuid setreuid32 setregid "
	  "setregid32 setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid setfsgid32 "
	  "setgroups setgroups32",
	  NULL, false, ALLOW, 0, { 0 } },
	/* signals */
	{ "rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigsuspend rt_sigtimedwait "
	  "rt_sigtimedwait_time64 rt_sigqueueinfo rt_tgsigqueueinfo sigaltstack sigprocmask sigreturn pause alarm",
	  NULL, false, ALLOW, 0, { 0 } },
	/* clocks and timers (setting the clock needs CAP_SYS_TIME below; adjtimex reads without it) */
	{ "time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64 clock_nanosleep "
	  "clock_nanosleep_time64 nanosleep getitimer setitimer timer_create timer_delete timer_settime "
	  "timer_settime64 timer_gettime timer_gettime64 timer_getoverrun adjtimex clock_adjtime clock_adjtime64 "
	  "futex futex_time64 futex_waitv",
	  NULL, false, ALLOW, 0, { 0 } },
	/* sockets (socket(2) itself below: not AF_VSOCK) */
	{ "socketpair socketcall bind connect listen accept accept4 getsockname getpeername getsockopt setsockopt "
	  "shutdown send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg recvmmsg_time64",
	  NULL, false, ALLOW, 0, { 0 } },
	{ "socket", NULL, false, ALLOW, 0, { 0, 40 /* AF_VSOCK */, 0, "SCMP_CMP_NE" } },
	/* System V and POSIX IPC */
	{ "ipc shmget shmat shmdt shmctl semget semop semtimedop semtimedop_time64 semctl msgget msgsnd msgrcv "
	  "msgctl mq_open mq_unlink mq_timedsend mq_timedsend_time64 mq_timedreceive mq_timedreceive_time64 "
	  "mq_notify mq_getsetattr",
	  NULL, false, ALLOW, 0, { 0 } },
	/* personality: only the plain Linux personalities and the query */
	{ "personality", NULL, false, ALLOW, 0, { 0, 0x0, 0, "SCMP_CMP_EQ" } },
	{ "personality", NULL, false, ALLOW, 0, { 0, 0x8, 0, "SCMP_CMP_EQ" } },
	{ "personality", NULL, false, ALLOW, 0, { 0, 0x20000, 0, "SCMP_CMP_EQ" } },
	{ "personality", NULL, false, ALLOW, 0, { 0, 0x20008, 0, "SCMP_CMP_EQ" } },
	{ "personality", NULL, false, ALLOW, 0, { 0, 0xffffffff, 0, "SCMP_CMP_EQ" } },
	/* x86 and 32-bit ARM only: the agent skips names its architecture does not have */
	{ "arch_prctl modify_ldt", NULL, false, ALLOW, 0, { 0 } },
	{ "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls", NULL, false, ALLOW,
	  0, { 0 } },
	/* what a capability already grants */
	{ "open_by_handle_at", "CAP_DAC_READ_SEARCH", false, ALLOW, 0, { 0 } },
	{ "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr "
	  "move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog umount "
	  "umount2 unshare",
	  "CAP_SYS_ADMIN", false, ALLOW, 0, { 0 } },
	{ "clone", "CAP_SYS_ADMIN", true, ALLOW, 0, { 0, CLONE_NS_FLAGS, 0, "SCMP_CMP_MASKED_EQ" } },
	{ "clone3", "CAP_SYS_ADMIN", true, "SCMP_ACT_ERRNO", ENOSYS, { 0 } },
	{ "reboot", "CAP_SYS_BOOT", false, ALLOW, 0, { 0 } },
	{ "chroot", "CAP_SYS_CHROOT", false, ALLOW, 0, { 0 } },
	{ "init_module finit_module delete_module", "CAP_SYS_MODULE", false, ALLOW, 0, { 0 } },
	{ "acct", "CAP_SYS_PACCT", false, ALLOW, 0, { 0 } },
	{ "kcmp pidfd_getfd process_madvise", "CAP_SYS_PTRACE", false, ALLOW, 0, { 0 } },
	{ "iopl ioperm", "CAP_SYS_RAWIO", false, ALLOW, 0, { 0 } },
	{ "settimeofday stime clock_settime clock_settime64", "CAP_SYS_TIME", false, ALLOW, 0, { 0 } },
	{ "vhangup", "CAP_SYS_TTY_CONFIG", false, ALLOW, 0, { 0 } },
	{ "get_mempolicy set_mempolicy set_mempolicy_home_node mbind", "CAP_SYS_NICE", false, ALLOW, 0, { 0 } },
	{ "syslog", "CAP_SYSLOG", false, ALLOW, 0, { 0 } },
	{ "bpf", "CAP_BPF", false, ALLOW, 0, { 0 } },
	{ "perf_event_open", "CAP_PERFMON", false, ALLOW, 0, { 0 } },
};

/* Both guest architectures (x86_64 and arm64 pods) and their 32-bit modes: the agent keeps
 * those its kernel can run. */
static const char *const arches[] = {
	"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",
};

static bool has_cap(char *const *caps, size_t n, const char *cap)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(caps[i], cap))
			return true;
	return false;
}

/* "a b c" -> arena strings. */
static char **split(struct cri_arena *a, const char *names, size_t *n)
{
	size_t cnt = 1;
	for (const char *p = names; *p; p++)
		cnt += *p == ' ';
	char **v = cri_arena_alloc(a, cnt * sizeof(char *));
	char *copy = cri_arena_strdup(a, names);
	*n = 0;
	for (char *save = NULL, *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
		v[(*n)++] = t;
	return v;
}

Podvisor__Agent__Seccomp *spec_seccomp_default(struct cri_arena *a, char *const *caps, size_t n_caps)
{
	Podvisor__Agent__Seccomp *s = cri_arena_alloc(a, sizeof(*s));
	podvisor__agent__seccomp__init(s);
	s->default_action = "SCMP_ACT_ERRNO";
	s->default_errno = EPERM;
	s->has_default_errno = 1;
	s->architectures = (char **)arches;
	s->n_architectures = PV_ARRAY_SIZE(arches);
	s->origin = "RuntimeDefault";
	s->syscalls = cri_arena_alloc(a, PV_ARRAY_SIZE(groups) * sizeof(*s->syscalls));
	for (size_t i = 0; i < PV_ARRAY_SIZE(groups); i++) {
		const struct group *g = &groups[i];
		if (g->cap && has_cap(caps, n_caps, g->cap) == g->without)
			continue;
		Podvisor__Agent__SeccompRule *r = cri_arena_alloc(a, sizeof(*r));
		podvisor__agent__seccomp_rule__init(r);
		r->names = split(a, g->names, &r->n_names);
		r->action = (char *)g->action;
		r->errno_ret = g->errnum;
		r->has_errno_ret = g->errnum != 0;
		if (g->cond.op) {
			Podvisor__Agent__SeccompArg *arg = cri_arena_alloc(a, sizeof(*arg));
			podvisor__agent__seccomp_arg__init(arg);
			arg->index = g->cond.index;
			arg->value = g->cond.value;
			arg->value_two = g->cond.value_two;
			arg->op = (char *)g->cond.op;
			r->args = cri_arena_alloc(a, sizeof(*r->args));
			r->args[0] = arg;
			r->n_args = 1;
		}
		s->syscalls[s->n_syscalls++] = r;
	}
	return s;
}
