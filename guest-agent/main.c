/* podvisor-agent: PID 1 of the pod VM. Boots the guest userspace and serves the host. */
#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"
#include "version.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef RAMFS_MAGIC
#define RAMFS_MAGIC 0x858458f6
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

struct agent g_agent = { .epfd = -1, .chan_fd = -1, .sig_fd = -1, .timer_fd = -1, .retry_fd = -1,
			  .self_pidns_fd = -1 };


static int64_t boottime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
	pv_error("fatal, powering off", "what=%s errno=%s", what, strerror(errno));
	sync();
	/* Without ACPI there is no power-off: the host boots with reboot=t and -no-reboot. */
	if (getpid() == 1)
		reboot(RB_AUTOBOOT);
	_exit(1);
}

static int copy_file(const char *src, const char *dst, mode_t mode)
{
	cleanup_close int in = open(src, O_RDONLY | O_CLOEXEC);
	cleanup_close int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (in < 0 || out < 0)
		return -errno;
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (pv_write_full(out, buf, (size_t)n) < 0)
			return -EIO;
	}
}

/*
 * pivot_root(2) refuses to work when the current root is the initramfs
 * (rootfs), and containers need it. So PID 1 first moves itself onto a tmpfs
 * root (what switch_root does) and re-executes from there.
 */
static void reroot_onto_tmpfs(char **argv)
{
	struct statfs sf;
	if (statfs("/", &sf) < 0 || (sf.f_type != RAMFS_MAGIC && sf.f_type != TMPFS_MAGIC))
		return;
	if (getenv("PODVISOR_REROOTED"))
		return;
	if (mkdir("/newroot", 0755) < 0 && errno != EEXIST)
		die("mkdir /newroot");
	if (mount("rootfs", "/newroot", "tmpfs", 0, "mode=0755") < 0)
		die("mount tmpfs root");
	if (copy_file("/proc/self/exe", "/newroot/init", 0755) < 0 && copy_file("/init", "/newroot/init", 0755) < 0)
		die("copy /init");
	unlink("/init");
	if (chdir("/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0)
		die("move root");
	setenv("PODVISOR_REROOTED", "1", 1);
	execv("/init", argv);
	die("re-exec /init");
}

static void mount_one(const char *src, const char *dst, const char *type, unsigned long flags, const char *data)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY)
		pv_warn("mount failed", "target=%s type=%s error=%s", dst, type, strerror(errno));
}

static void setup_filesystems(void)
{
	/* /proc first: re-rooting reads /proc/self/exe. */
	mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
	mount_one("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_one("run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	mount_one("tmp", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_one("cgroup2", AGENT_CGROUP_ROOT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate");
	mkdir(AGENT_RUN_DIR, 0755);
	mkdir(AGENT_RUN_DIR "/c", 0700);
}

static void setup_console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		fd = open("/dev/ttyS0", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		dup2(fd, i);
	if (fd > 2)
		close(fd);
}

/*
 * Our kernel has every driver built in. A stock distribution kernel (the
 * benchmark's comparison) needs virtio modules: load those listed, in order,
 * in /lib/modules/load.list if the initramfs carries one.
 */
static void load_modules(void)
{
	FILE *f = fopen("/lib/modules/load.list", "re");
	if (!f)
		return;
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!line[0] || line[0] == '#')
			continue;
		char path[300];
		snprintf(path, sizeof(path), "/lib/modules/%s", line);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) < 0)
			pv_warn("module not loaded", "module=%s error=%s", line, strerror(errno));
		else
			pv_info("module loaded", "module=%s", line);
		if (fd >= 0)
			close(fd);
	}
	fclose(f);
}

static void setup_loop(void)
{
	struct agent *a = &g_agent;
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (a->epfd < 0)
		die("epoll_create1");
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		die("sigprocmask");
	signal(SIGPIPE, SIG_IGN);
	a->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	a->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	a->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (a->sig_fd < 0 || a->timer_fd < 0 || a->retry_fd < 0)
		die("signalfd/timerfd");
	a->sig_ev.kind = EV_SIGNAL;
	a->timer_ev.kind = EV_TIMER;
	a->retry_ev.kind = EV_RETRY;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &a->sig_ev };
	epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->sig_fd, &ev);
	ev.data.ptr = &a->timer_ev;
	epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->timer_fd, &ev);
	ev.data.ptr = &a->retry_ev;
	epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->retry_fd, &ev);
	a->self_pidns_fd = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (sigresend_init() < 0)
		die("signal re-send timer");
	pv_frame_reader_init(&a->rd, PV_FRAME_MAX_PAYLOAD);
	pv_frame_writer_init(&a->wr);
}

static void on_signal(void)
{
	struct signalfd_siginfo si;
	bool chld = false;
	while (read(g_agent.sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			chld = true;
		else
			pv_info("signal ignored", "signo=%u", si.ssi_signo);
	}
	/* Reap even if the signal was coalesced away. */
	(void)chld;
	container_on_sigchld();
}

static void run_loop(void)
{
	struct epoll_event evs[32];
	for (;;) {
		int n = epoll_wait(g_agent.epfd, evs, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			struct ev *e = evs[i].data.ptr;
			switch (e->kind) {
			case EV_CHANNEL:
				channel_on_event(evs[i].events);
				break;
			case EV_SIGNAL:
				on_signal();
				break;
			case EV_TIMER:
				channel_on_timer();
				break;
			case EV_RETRY:
				container_retry_pending();
				break;
			case EV_STDIO:
				stdio_on_event(e->ptr, evs[i].events);
				break;
			case EV_PORTFWD:
				portfwd_on_event(e->ptr, evs[i].events);
				break;
			case EV_SIGRESEND:
				sigresend_on_timer();
				break;
			case EV_ACCEPT: /* the host agent's listener; the port needs none */
				break;
			}
		}
		stdio_free_closed();
		portfwd_free_closed();
		if (g_agent.shutting_down) {
			channel_flush_blocking(2000);
			container_kill_all();
			sync();
			pv_info("powering off", NULL);
			/* microvm without ACPI cannot power off: reset, which the host (reboot=t,
			 * -no-reboot) turns into QEMU exiting. */
			reboot(RB_AUTOBOOT);
			die("reboot");
		}
	}
}

int main(int argc, char **argv)
{
	(void)argc;
	if (getpid() == 1) {
		mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
		/* Modules live in the initramfs, which re-rooting leaves behind. */
		if (!getenv("PODVISOR_REROOTED")) {
			load_modules();
			/* The emulator lives in the initramfs, which re-rooting leaves behind. */
			int br = binfmt_register_from_initramfs();
			if (br < 0)
				setenv("PODVISOR_BINFMT_ERROR", strerror(-br), 1);
		}
		reroot_onto_tmpfs(argv);
		umount2("/proc", MNT_DETACH);
	}
	int64_t t_start = boottime_ns();
	setup_filesystems();
	setup_console();
	pv_log_init("podvisor-agent", PV_LOG_INFO);
	pv_info("agent starting", "uptime_ms=%lld", (long long)(t_start / 1000000));
	umask(022);
	if (sethostname("podvisor", 8) < 0)
		pv_warn("sethostname failed", "error=%s", strerror(errno));
	binfmt_report();

	cleanup_err pv_err_t *err = NULL;
	if (cgroup_init(&err) < 0) {
		pv_warn("cgroup setup incomplete", "error=%s", err->msg);
		pv_err_free(err);
		err = NULL;
	}
	if (net_loopback_up(&err) < 0) {
		pv_warn("lo not up", "error=%s", err->msg);
		pv_err_free(err);
		err = NULL;
	}
	setup_loop();
	if (channel_open(&err) < 0) {
		pv_error("no host channel", "error=%s", err->msg);
		die("channel");
	}
	pv_info("agent ready", "version=%s uptime_ms=%lld", PODVISOR_VERSION, (long long)(boottime_ns() / 1000000));
	run_loop();
	return 0;
}
