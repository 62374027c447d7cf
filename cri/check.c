/*
 * podvisord --check: is this machine ready to run pods? One line per requirement,
 * resolved exactly as the daemon resolves it (same config, same search paths).
 */
#include "check.h"
#include "cleanup.h"
#include "config.h"
#include "handlers.h"
#include "daemon.h"
#include "network.h"
#include "net/cni.h"
#include "runtime_info.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define CMD_TIMEOUT_MS 5000
#define MIN_FREE_BYTES (1ULL << 30)
#define DEFAULT_OCI_RUNTIME "runc"

struct check {
	FILE *out;
	int failed;
};

enum verdict { CHECK_OK, CHECK_FAIL, CHECK_NOTE };

static void report(struct check *c, enum verdict v, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void report(struct check *c, enum verdict v, const char *what, const char *fmt, ...)
{
	static const char *const tag[] = { "ok", "FAIL", "note" };
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *msg = pv_xvasprintf(fmt, ap);
	va_end(ap);
	fprintf(c->out, "%-5s %s: %s\n", tag[v], what, msg);
	fflush(c->out);
	if (v == CHECK_FAIL)
		c->failed++;
}

/* Wait for pid at most until deadline_ns (monotonic), then kill it; its exit status or -1. */
static int reap_by(pid_t pid, int64_t deadline_ns)
{
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		if (pv_now_monotonic_ns() > deadline_ns) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return -1;
		}
		usleep(10000);
	}
}

/* First line a program prints (stdout and stderr) when run with one argument; heap, or NULL. */
static char *first_line(const char *prog, const char *arg)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return NULL;
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return NULL;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execl(prog, prog, arg, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	int64_t deadline = pv_now_monotonic_ns() + CMD_TIMEOUT_MS * 1000000LL;
	char buf[1024];
	size_t len = 0;
	for (;;) {
		int left = (int)((deadline - pv_now_monotonic_ns()) / 1000000);
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		if (left <= 0 || poll(&p, 1, left) <= 0 || len == sizeof(buf) - 1)
			break;
		ssize_t n = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(pfd[0]);
	int status = reap_by(pid, deadline);
	buf[len] = '\0';
	if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return NULL;
	buf[strcspn(buf, "\r\n")] = '\0';
	return pv_xstrdup(buf);
}

/* An executable: an absolute path as is, a bare name on dirs (PATH when NULL). Heap, or NULL. */
static char *resolve_exe(const char *name, const char *dirs)
{
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? pv_xstrdup(name) : NULL;
	const char *path = getenv("PATH");
	return pv_find_executable(dirs ? dirs : (path && *path ? path : "/usr/sbin:/usr/bin:/sbin:/bin"), name);
}

/* A program that must exist and answer its version flag. */
static void check_program(struct check *c, const char *what, const char *name, const char *dirs,
			  const char *version_flag, const char *hint)
{
	cleanup_free char *path = resolve_exe(name, dirs);
	if (!path) {
		report(c, CHECK_FAIL, what, "%s not found (%s)", name, hint);
		return;
	}
	cleanup_free char *ver = first_line(path, version_flag);
	if (!ver)
		report(c, CHECK_FAIL, what, "%s does not run (`%s %s` failed)", path, path, version_flag);
	else
		report(c, CHECK_OK, what, "%s (%s)", path, ver);
}

static void check_file(struct check *c, const char *what, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		report(c, CHECK_FAIL, what, "%s: %s (build it with `make build`, install it with `make install`, "
					    "or set it in the config's runtime section)", path, strerror(errno));
	else if (!S_ISREG(st.st_mode) || access(path, R_OK) < 0)
		report(c, CHECK_FAIL, what, "%s is not a readable file", path);
	else
		report(c, CHECK_OK, what, "%s (%.1f MiB)", path, (double)st.st_size / (1 << 20));
}

static void check_accel(struct check *c, const struct pv_daemon *d)
{
	if (!strcmp(d->accel, "tcg"))
		report(c, CHECK_NOTE, "accelerator", "tcg: %s; pods run, slower than with KVM", d->accel_why);
	else
		report(c, CHECK_OK, "accelerator", "%s: %s", d->accel, d->accel_why);
}

/* The plugin types a conflist runs, IPAM plugins included, each once. */
static size_t plugin_types(json_t *conf, const char **types, size_t max)
{
	size_t n = 0, i;
	json_t *p;
	json_array_foreach(json_object_get(conf, "plugins"), i, p) {
		const char *ts[2] = { json_string_value(json_object_get(p, "type")),
				      json_string_value(json_object_get(json_object_get(p, "ipam"), "type")) };
		for (int k = 0; k < 2; k++) {
			if (!ts[k] || n == max)
				continue;
			size_t j;
			for (j = 0; j < n && strcmp(types[j], ts[k]); j++)
				;
			if (j == n)
				types[n++] = ts[k];
		}
	}
	return n;
}

static void check_cni(struct check *c)
{
	const char *conf_dir, *bin_dirs;
	int enabled;
	cri_net_paths(&conf_dir, &bin_dirs, &enabled);
	if (!enabled) {
		report(c, CHECK_NOTE, "CNI", "networking disabled by the config (network.enabled=false)");
		return;
	}
	struct pv_cni_net *net = NULL;
	cleanup_err pv_err_t *err = NULL;
	if (pv_cni_net_load(conf_dir, &net, &err) < 0) {
		report(c, CHECK_FAIL, "CNI config", "%s (install the sample: `make install`, or copy "
						    "manifests/cni/10-podvisor.conflist there)", err->msg);
		return;
	}
	report(c, CHECK_OK, "CNI config", "%s (network \"%s\")", net->source, net->name);
	const char *types[32];
	size_t n = plugin_types(net->conf, types, PV_ARRAY_SIZE(types));
	char found[1024] = "", missing[1024] = "";
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *path = pv_find_executable(bin_dirs, types[i]);
		char *dst = path ? found : missing;
		size_t used = strlen(dst);
		snprintf(dst + used, sizeof(found) - used, "%s%s", used ? ", " : "", types[i]);
	}
	if (missing[0])
		report(c, CHECK_FAIL, "CNI plugins", "%s not found in %s (Debian: containernetworking-plugins)",
		       missing, bin_dirs);
	else
		report(c, CHECK_OK, "CNI plugins", "%s in %s", found, bin_dirs);
	pv_cni_net_free(net);
}

/* dir is writable, or (when it does not exist yet) its nearest existing parent is. */
static void check_dir(struct check *c, const char *what, const char *dir)
{
	cleanup_free char *probe = pv_xstrdup(dir);
	int exists = 1;
	struct stat st;
	while (stat(probe, &st) < 0 && strcmp(probe, "/")) {
		exists = 0;
		char *parent = pv_xstrdup(dirname(probe));
		free(probe);
		probe = parent;
	}
	if (!S_ISDIR(st.st_mode))
		report(c, CHECK_FAIL, what, "%s: %s is not a directory", dir, probe);
	else if (access(probe, W_OK | X_OK) < 0)
		report(c, CHECK_FAIL, what, "%s: %s is not writable: %s", dir, probe, strerror(errno));
	else if (!exists)
		report(c, CHECK_OK, what, "%s (will be created in %s)", dir, probe);
	else
		report(c, CHECK_OK, what, "%s is writable", dir);
}

static void check_space(struct check *c, const char *dir)
{
	cleanup_free char *probe = pv_xstrdup(dir);
	struct statvfs sv;
	while (statvfs(probe, &sv) < 0 && strcmp(probe, "/")) {
		char *parent = pv_xstrdup(dirname(probe));
		free(probe);
		probe = parent;
	}
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (avail < MIN_FREE_BYTES)
		report(c, CHECK_FAIL, "disk space", "%.1f GiB free under %s, want at least 1 GiB for images and "
						    "container disks", (double)avail / (1ULL << 30), probe);
	else
		report(c, CHECK_OK, "disk space", "%.1f GiB free under %s", (double)avail / (1ULL << 30), probe);
}

/* The directories podvisord's own binary lives in, then PATH: where the shim is looked up. */
static char *shim_dirs(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *path = getenv("PATH");
	if (n <= 0)
		return pv_xstrdup(path ? path : "");
	exe[n] = '\0';
	return pv_xasprintf("%s:%s", dirname(exe), path ? path : "");
}

/* The arm64 guest is optional: its absence is a note (arm64 pods unavailable), not a failure. */
static void check_arm64(struct check *c, const struct pv_daemon *d)
{
	if (!d->handlers)
		return;
	const struct cri_guest *g = &d->handlers->guests[VMM_ARCH_ARM64];
	if (g->missing)
		report(c, CHECK_NOTE, "arm64 guest", "%s: arm64 pods (handlers arm64, arm64-x86) unavailable", g->missing);
	else
		report(c, CHECK_OK, "arm64 guest", "%s, %s (%s)", g->kernel, g->initramfs,
		       g->emulated ? "tcg: emulated" : g->accel);
}

int cri_check_run(struct pv_daemon *d, FILE *out)
{
	struct check c = { .out = out };
	const struct pv_config *cfg = d->cfg;
	if (geteuid() != 0)
		report(&c, CHECK_FAIL, "privileges", "not root: pods need network namespaces, taps and mounts");
	else
		report(&c, CHECK_OK, "privileges", "root");
	check_program(&c, "QEMU", d->qemu_path, NULL, "-version", "Debian: qemu-system-x86, or set runtime.qemu");
	check_program(&c, "qemu-img", "qemu-img", NULL, "--version", "Debian: qemu-utils");
	cleanup_free char *dirs = shim_dirs();
	check_program(&c, "shim", "podvisor-shim", dirs, "--version", "install it beside podvisord");
	check_file(&c, "guest kernel", d->kernel_path);
	check_file(&c, "guest initramfs", d->initramfs_path);
	check_arm64(&c, d);
	check_accel(&c, d);
	check_cni(&c);
	const char *oci = pv_config_runtime_str(cfg, "oci_runtime");
	check_program(&c, "OCI runtime (host pods)", oci ? oci : DEFAULT_OCI_RUNTIME, NULL, "--version",
		      "Debian: runc, or set runtime.oci_runtime");
	check_dir(&c, "root dir", cfg->root_dir);
	check_dir(&c, "state dir", cfg->state_dir);
	check_space(&c, cfg->root_dir);
	if (c.failed)
		fprintf(out, "podvisord --check: %d requirement%s missing\n", c.failed, c.failed == 1 ? "" : "s");
	else
		fprintf(out, "podvisord --check: ready to run pods\n");
	return c.failed ? -1 : 0;
}
