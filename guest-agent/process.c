/*
 * The forked child of a container process: namespaces' filesystem view,
 * credentials, limits, then execve. Runs between fork and exec only: it
 * reports a setup failure through errfd and _exits; it never returns.
 */
#include "agent.h"
#include "validate.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int g_errfd = -1;

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	char buf[512];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(saved));
	if (g_errfd >= 0 && write(g_errfd, buf, (size_t)(n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1)) < 0) {
		/* nothing more we can do */
	}
	_exit(127);
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	close(fd);
	return n < 0 ? -1 : 0;
}

/*
 * Open (creating as needed) `path` below rootfd without following any
 * symlink, so a hostile image cannot redirect a mount outside its root.
 * file=true creates the last component as a regular file (bind-mounting a file).
 */
static int open_in_root(int rootfd, const char *path, bool file)
{
	int dirfd = dup(rootfd);
	char *copy = strdup(path);
	char *save = NULL;
	if (dirfd < 0 || !copy)
		return -1;
	char *comp = strtok_r(copy, "/", &save);
	while (comp) {
		char *next = strtok_r(NULL, "/", &save);
		int fd;
		if (!next && file) {
			fd = openat(dirfd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0 && errno == ENOENT) {
				int c = openat(dirfd, comp, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
				if (c >= 0)
					close(c);
				fd = openat(dirfd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			}
		} else {
			fd = openat(dirfd, comp, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0 && errno == ENOENT) {
				if (mkdirat(dirfd, comp, 0755) < 0 && errno != EEXIST) {
					close(dirfd);
					free(copy);
					return -1;
				}
				fd = openat(dirfd, comp, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
			}
		}
		close(dirfd);
		if (fd < 0) {
			free(copy);
			return -1;
		}
		dirfd = fd;
		comp = next;
	}
	free(copy);
	return dirfd;
}

struct mnt_opt {
	const char *name;
	unsigned long set, clear;
};
static const struct mnt_opt mnt_opts[] = {
	{ "ro", MS_RDONLY, 0 },	      { "rw", 0, MS_RDONLY },	    { "nosuid", MS_NOSUID, 0 },
	{ "suid", 0, MS_NOSUID },     { "nodev", MS_NODEV, 0 },	    { "dev", 0, MS_NODEV },
	{ "noexec", MS_NOEXEC, 0 },   { "exec", 0, MS_NOEXEC },	    { "bind", MS_BIND, 0 },
	{ "rbind", MS_BIND | MS_REC, 0 }, { "relatime", MS_RELATIME, 0 }, { "noatime", MS_NOATIME, 0 },
	{ "strictatime", MS_STRICTATIME, 0 }, { "nodiratime", MS_NODIRATIME, 0 },
	{ "private", 0, 0 },	      { "rprivate", 0, 0 },	    { "slave", 0, 0 },
	{ "rslave", 0, 0 },	      { "shared", 0, 0 },	    { "rshared", 0, 0 },
};

static void parse_options(char **opts, size_t n, unsigned long *flags, char *data, size_t datalen)
{
	data[0] = 0;
	for (size_t i = 0; i < n; i++) {
		bool known = false;
		for (size_t k = 0; k < sizeof(mnt_opts) / sizeof(mnt_opts[0]); k++) {
			if (!strcmp(opts[i], mnt_opts[k].name)) {
				*flags = (*flags | mnt_opts[k].set) & ~mnt_opts[k].clear;
				known = true;
			}
		}
		if (!known && strlen(data) + strlen(opts[i]) + 2 < datalen) {
			if (data[0])
				strcat(data, ",");
			strcat(data, opts[i]);
		}
	}
}

static void do_mount(int rootfd, const char *src, const char *dest, const char *type, unsigned long flags,
		     const char *data)
{
	bool bind = flags & MS_BIND;
	struct stat st;
	bool file = bind && src && stat(src, &st) == 0 && !S_ISDIR(st.st_mode);
	int fd = open_in_root(rootfd, dest, file);
	if (fd < 0)
		fail("mount destination %s", dest);
	char target[64];
	snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
	if (mount(src, target, bind ? NULL : type, flags & ~(unsigned long)MS_RDONLY, data && *data ? data : NULL) < 0)
		fail("mount %s on %s", type ? type : "bind", dest);
	/* Read-only bind mounts need a remount; do it for all, to be uniform. */
	if (flags & MS_RDONLY) {
		int fd2 = open_in_root(rootfd, dest, file);
		snprintf(target, sizeof(target), "/proc/self/fd/%d", fd2);
		if (mount(NULL, target, NULL, MS_REMOUNT | (bind ? MS_BIND : 0) | flags, bind ? NULL : data) < 0)
			fail("remount %s read-only", dest);
		close(fd2);
	}
	close(fd);
}

static bool has_mount(const Podvisor__Agent__CreateContainerRequest *spec, const char *dest)
{
	for (size_t i = 0; i < spec->n_mounts; i++)
		if (!strcmp(spec->mounts[i]->destination, dest))
			return true;
	return false;
}

/* A privileged container gets every device node of the VM; others the usual six. */
static void default_dev(int rootfd, bool privileged)
{
	static const char *const nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
	do_mount(rootfd, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
	for (size_t i = 0; !privileged && i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		char src[64], dst[64];
		snprintf(src, sizeof(src), "/dev/%s", nodes[i]);
		snprintf(dst, sizeof(dst), "/dev/%s", nodes[i]);
		do_mount(rootfd, src, dst, NULL, MS_BIND, NULL);
	}
	if (privileged) {
		char msg[300];
		int devfd = open_in_root(rootfd, "/dev", false);
		if (devfd < 0 || mounts_all_devices(devfd, msg, sizeof(msg)) < 0)
			fail("%s", devfd < 0 ? "open /dev" : msg);
		close(devfd);
	}
	do_mount(rootfd, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		 "newinstance,ptmxmode=0666,mode=0620");
	do_mount(rootfd, "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
	int devfd = open_in_root(rootfd, "/dev", false);
	if (devfd >= 0) {
		symlinkat("pts/ptmx", devfd, "ptmx");
		symlinkat("/proc/self/fd", devfd, "fd");
		symlinkat("/proc/self/fd/0", devfd, "stdin");
		symlinkat("/proc/self/fd/1", devfd, "stdout");
		symlinkat("/proc/self/fd/2", devfd, "stderr");
		close(devfd);
	}
}

/* The container's filesystem: mounts inside the rootfs, then pivot_root into it. */
static void setup_rootfs(const struct container *c)
{
	const Podvisor__Agent__CreateContainerRequest *spec = c->spec;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail("make / private");
	/* Bind the rootfs onto itself so it is a mount of this namespace we can pivot to. */
	if (mount(c->rootfs, c->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		fail("bind rootfs");
	int rootfd = open(c->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		fail("open rootfs");
	if (!has_mount(spec, "/proc"))
		do_mount(rootfd, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (!has_mount(spec, "/dev"))
		default_dev(rootfd, spec->privileged);
	if (!has_mount(spec, "/sys"))
		do_mount(rootfd, "sysfs", "/sys", "sysfs",
			 MS_NOSUID | MS_NODEV | MS_NOEXEC | (spec->privileged ? 0 : MS_RDONLY), NULL);
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const Podvisor__Agent__Mount *m = spec->mounts[i];
		unsigned long flags = 0;
		char data[1024];
		parse_options(m->options, m->n_options, &flags, data, sizeof(data));
		const char *type = m->type && *m->type ? m->type : NULL;
		if (type && !strcmp(type, "bind")) {
			type = NULL;
			flags |= MS_BIND;
		}
		if (!type && !(flags & MS_BIND))
			flags |= MS_BIND;
		do_mount(rootfd, m->source && *m->source ? m->source : type, m->destination, type, flags, data);
	}
	if (fchdir(rootfd) < 0)
		fail("chdir rootfs");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		fail("pivot_root");
	/* The old root now sits on top of the new one at "/": detach it. */
	if (umount2(".", MNT_DETACH) < 0)
		fail("detach old root");
	if (chdir("/") < 0)
		fail("chdir /");
	char msg[300];
	if (mounts_mask_paths(spec->masked_paths, spec->n_masked_paths, msg, sizeof(msg)) < 0 ||
	    mounts_readonly_paths(spec->readonly_paths, spec->n_readonly_paths, msg, sizeof(msg)) < 0)
		fail("%s", msg);
	if (spec->readonly_rootfs && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
		fail("remount rootfs read-only");
	close(rootfd);
}

static uint64_t cap_mask(char **names, size_t n)
{
	uint64_t m = 0;
	for (size_t i = 0; i < n; i++) {
		int c = validate_cap_name(names[i]);
		if (c >= 0)
			m |= 1ull << c;
	}
	return m;
}

/* The OCI default set (what runc/containerd give a container without explicit caps). */
static const char *const default_caps[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
};

static void set_user_and_caps(const Podvisor__Agent__Process *p)
{
	const Podvisor__Agent__Capabilities *c = p->capabilities;
	uint64_t bounding, effective, permitted, inheritable, ambient;
	if (c) {
		bounding = cap_mask(c->bounding, c->n_bounding);
		effective = cap_mask(c->effective, c->n_effective);
		permitted = cap_mask(c->permitted, c->n_permitted);
		inheritable = cap_mask(c->inheritable, c->n_inheritable);
		ambient = cap_mask(c->ambient, c->n_ambient);
	} else {
		bounding = cap_mask((char **)default_caps, sizeof(default_caps) / sizeof(default_caps[0]));
		effective = permitted = bounding;
		inheritable = ambient = 0;
	}
	int last = 40;
	for (int i = 0; i <= 63; i++) {
		if (prctl(PR_CAPBSET_READ, i, 0, 0, 0) < 0) {
			last = i - 1;
			break;
		}
	}
	for (int i = 0; i <= last; i++)
		if (!(bounding & (1ull << i)) && prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0)
			fail("drop bounding capability %d", i);
	uint32_t uid = p->user ? p->user->uid : 0, gid = p->user ? p->user->gid : 0;
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail("PR_SET_KEEPCAPS");
	gid_t *groups = NULL;
	size_t ngroups = p->user ? p->user->n_additional_gids : 0;
	if (ngroups) {
		groups = calloc(ngroups, sizeof(gid_t));
		if (!groups)
			fail("calloc");
		for (size_t i = 0; i < ngroups; i++)
			groups[i] = p->user->additional_gids[i];
	}
	if (setgroups(ngroups, groups) < 0)
		fail("setgroups");
	free(groups);
	if (setresgid(gid, gid, gid) < 0)
		fail("setgid %u", gid);
	if (setresuid(uid, uid, uid) < 0)
		fail("setuid %u", uid);
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	for (int i = 0; i < 2; i++) {
		data[i].effective = (uint32_t)(effective >> (32 * i));
		data[i].permitted = (uint32_t)(permitted >> (32 * i));
		data[i].inheritable = (uint32_t)(inheritable >> (32 * i));
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail("capset");
	for (int i = 0; i <= last; i++)
		if ((ambient & (1ull << i)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0) < 0)
			fail("raise ambient capability %d", i);
}

static void set_rlimits(const Podvisor__Agent__Process *p)
{
	for (size_t i = 0; i < p->n_rlimits; i++) {
		int res = validate_rlimit_name(p->rlimits[i]->type);
		struct rlimit rl = { .rlim_cur = p->rlimits[i]->soft, .rlim_max = p->rlimits[i]->hard };
		if (res >= 0 && setrlimit(res, &rl) < 0)
			fail("setrlimit %s", p->rlimits[i]->type);
	}
}

static void setup_stdio(const struct child_args *a)
{
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int i = 0; i < 3; i++) {
		int fd = a->stdio[i] >= 0 ? a->stdio[i] : devnull;
		if (fd < 0 || dup2(fd, i) < 0)
			fail("stdio %d", i);
	}
	if (a->tty_slave >= 0 && ioctl(a->tty_slave, TIOCSCTTY, 0) < 0)
		fail("TIOCSCTTY");
}

static void enter_container(const struct child_args *a)
{
	static const int types[3] = { CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC };
	for (int i = 0; i < 3; i++)
		if (a->ns_fds[i] >= 0 && setns(a->ns_fds[i], types[i]) < 0)
			fail("setns");
	if (fchdir(a->root_fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
		fail("enter container root");
}

void process_child(const struct child_args *a)
{
	const Podvisor__Agent__Process *p = a->proc;
	g_errfd = a->errfd;
	sigset_t all;
	sigfillset(&all);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigprocmask(SIG_UNBLOCK, &all, NULL);

	char procs[512];
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", a->c->cgroup);
	if (write_str(procs, "0") < 0)
		fail("join cgroup %s", a->c->cgroup);
	if (setsid() < 0)
		fail("setsid");
	setup_stdio(a);
	if (p->has_oom_score_adj) {
		char v[32];
		snprintf(v, sizeof(v), "%d", p->oom_score_adj);
		write_str("/proc/self/oom_score_adj", v);
	}
	if (a->is_init) {
		const char *h = a->c->spec->hostname && *a->c->spec->hostname ? a->c->spec->hostname
									: g_agent.sandbox_hostname;
		if (h && *h && sethostname(h, strlen(h)) < 0)
			fail("sethostname");
		setup_rootfs(a->c);
	} else {
		enter_container(a);
	}
	const char *cwd = p->cwd && *p->cwd ? p->cwd : "/";
	if (chdir(cwd) < 0)
		fail("chdir %s", cwd);
	set_rlimits(p);
	umask(p->user && (p->user->umask || p->user->has_umask) ? p->user->umask : 022);
	/* Without no_new_privs installing a filter needs CAP_SYS_ADMIN: do it before the
	 * capabilities go (the filter then has to allow the set-up calls, as in runc). */
	const struct seccomp_prog *filter = a->c->seccomp.insns ? &a->c->seccomp : NULL;
	if (filter && !p->no_new_privileges && seccomp_install(filter) < 0)
		fail("install the seccomp filter");
	set_user_and_caps(p);
	if (p->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail("no_new_privs");
	if (filter && p->no_new_privileges && seccomp_install(filter) < 0)
		fail("install the seccomp filter");

	char **env = calloc(p->n_env + 2, sizeof(char *));
	if (!env)
		fail("calloc");
	bool has_path = false;
	for (size_t i = 0; i < p->n_env; i++) {
		env[i] = p->env[i];
		has_path |= !strncmp(p->env[i], "PATH=", 5);
	}
	if (!has_path)
		env[p->n_env] = (char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	char **argv = calloc(p->n_args + 1, sizeof(char *));
	if (!argv)
		fail("calloc");
	for (size_t i = 0; i < p->n_args; i++)
		argv[i] = p->args[i];
	/* execvp searches the PATH of environ: use the container's. */
	environ = env;
	execvp(argv[0], argv);
	fail("exec %s", argv[0]);
}
