/* The VMM handle: backend dispatch, and the VMM process once spawned (pid, pidfd, reaping). */
#include "vmm_impl.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char *dup_or_null(const char *s)
{
	return s ? pv_xstrdup(s) : NULL;
}

static const struct vmm_ops *const backends[] = { &sandbox_qemu_ops, &sandbox_host_ops };

static const struct vmm_ops *backend_ops(const char *backend, pv_err_t **err)
{
	for (size_t i = 0; i < PV_ARRAY_SIZE(backends); i++)
		if (!backend || !strcmp(backend, backends[i]->name))
			return backends[i];
	pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "unknown VMM backend %s (qemu, host)", backend);
	return NULL;
}

int sandbox_vmm_backend_flags(const char *backend, unsigned *flags, pv_err_t **err)
{
	const struct vmm_ops *ops = backend_ops(backend, err);
	if (!ops)
		return -1;
	*flags = ops->flags;
	return 0;
}


int sandbox_vmm_new(const char *backend, const struct vmm_config *cfg, struct vmm **out, pv_err_t **err)
{
	const struct vmm_ops *ops = backend_ops(backend, err);
	if (!ops)
		return -1;
	if (cfg->accel == VMM_ACCEL_AUTO)
		return pv_err_set(err, PV_INTERNAL, EINVAL, "accelerator not resolved (sandbox_accel_detect)");
	struct vmm *vm = pv_xcalloc(1, sizeof(*vm));
	vm->ops = ops;
	vm->pidfd = -1;
	vm->cfg = *cfg;
	vm->cfg.name = dup_or_null(cfg->name);
	vm->cfg.qemu_binary = dup_or_null(cfg->qemu_binary);
	vm->cfg.kernel = dup_or_null(cfg->kernel);
	vm->cfg.initramfs = dup_or_null(cfg->initramfs);
	vm->cfg.kernel_args = dup_or_null(cfg->kernel_args);
	vm->cfg.machine = dup_or_null(cfg->machine);
	vm->cfg.agent_socket = dup_or_null(cfg->agent_socket);
	vm->cfg.qmp_socket = dup_or_null(cfg->qmp_socket);
	vm->cfg.log_path = dup_or_null(cfg->log_path);
	vm->cfg.tap = dup_or_null(cfg->tap);
	vm->cfg.mac = dup_or_null(cfg->mac);
	vm->cfg.share_dir = dup_or_null(cfg->share_dir);
	vm->cfg.qemu_img = dup_or_null(cfg->qemu_img);
	vm->cfg.state_dir = dup_or_null(cfg->state_dir);
	vm->cfg.agent_binary = dup_or_null(cfg->agent_binary);
	vm->cfg.oci_runtime = dup_or_null(cfg->oci_runtime);
	vm->cfg.namespaces = dup_or_null(cfg->namespaces);
	vm->cfg.netns = dup_or_null(cfg->netns);
	vm->cfg.cgroup_parent = dup_or_null(cfg->cgroup_parent);
	vm->cfg.template_out = dup_or_null(cfg->template_out);
	vm->cfg.template_dir = dup_or_null(cfg->template_dir);
	vm->cfg.agent_listen_fd = -1;
	vm->cfg.qmp_listen_fd = -1;
	vm->cfg.tap_fd = cfg->tap_fd; /* borrowed: the caller closes it once start() returned */
	*out = vm;
	return 0;
}

void sandbox_vmm_free(struct vmm *vm)
{
	if (!vm)
		return;
	if (vm->pid > 0) { /* the owner forgot to stop it: a VM nobody owns is a leaked VM */
		kill(vm->pid, SIGKILL);
		while (waitpid(vm->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (vm->ops->free)
		vm->ops->free(vm);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	free((char *)vm->cfg.name);
	free((char *)vm->cfg.qemu_binary);
	free((char *)vm->cfg.kernel);
	free((char *)vm->cfg.initramfs);
	free((char *)vm->cfg.kernel_args);
	free((char *)vm->cfg.machine);
	free((char *)vm->cfg.agent_socket);
	free((char *)vm->cfg.qmp_socket);
	free((char *)vm->cfg.log_path);
	free((char *)vm->cfg.tap);
	free((char *)vm->cfg.mac);
	free((char *)vm->cfg.share_dir);
	free((char *)vm->cfg.qemu_img);
	free((char *)vm->cfg.state_dir);
	free((char *)vm->cfg.agent_binary);
	free((char *)vm->cfg.oci_runtime);
	free((char *)vm->cfg.namespaces);
	free((char *)vm->cfg.netns);
	free((char *)vm->cfg.cgroup_parent);
	free((char *)vm->cfg.template_out);
	free((char *)vm->cfg.template_dir);
	free(vm);
}

int sandbox_vmm_start(struct vmm *vm, pv_err_t **err)
{
	if (vm->pid > 0)
		return pv_err_set(err, PV_FAILED_PRECONDITION, EBUSY, "VM already started");
	if (vm->ops->start(vm, err) < 0)
		return -1;
	vm->started_ns = pv_now_realtime_ns();
	vm->pidfd = (int)syscall(SYS_pidfd_open, vm->pid, 0);
	if (vm->pidfd >= 0)
		fcntl(vm->pidfd, F_SETFD, FD_CLOEXEC);
	return 0;
}

int sandbox_vmm_wait_fd(const struct vmm *vm)
{
	return vm->pid > 0 ? vm->pidfd : -1;
}

bool sandbox_vmm_running(const struct vmm *vm)
{
	return vm->pid > 0;
}

int sandbox_vmm_reap(struct vmm *vm, char **why)
{
	if (vm->pid <= 0)
		return 1;
	int status = 0;
	pid_t r = waitpid(vm->pid, &status, WNOHANG);
	if (r == 0 || (r < 0 && errno == EINTR))
		return 0;
	if (why) {
		if (r < 0)
			*why = pv_xstrdup("VM process gone");
		else if (WIFSIGNALED(status))
			*why = pv_xasprintf("VM process killed by signal %d", WTERMSIG(status));
		else
			*why = pv_xasprintf("VM process exited with status %d", WEXITSTATUS(status));
	}
	vm->pid = 0;
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	vm->pidfd = -1;
	return 1;
}

int sandbox_vmm_reap_wait(struct vmm *vm, int timeout_ms, char **why)
{
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		if (sandbox_vmm_reap(vm, why))
			return 1;
		int64_t left = (deadline - pv_now_monotonic_ns()) / 1000000;
		if (left <= 0 || vm->pidfd < 0)
			return 0;
		struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };
		poll(&p, 1, (int)left);
	}
}

void sandbox_vmm_kill(struct vmm *vm)
{
	if (vm->pid > 0)
		kill(vm->pid, SIGKILL);
}

/* Wait until the VMM process is gone or the monotonic deadline passes; 1 if gone. */
static int wait_gone(struct vmm *vm, int64_t deadline_ns)
{
	for (;;) {
		if (sandbox_vmm_reap(vm, NULL))
			return 1;
		int64_t left = (deadline_ns - pv_now_monotonic_ns()) / 1000000;
		if (left <= 0)
			return 0;
		if (vm->pidfd >= 0) {
			struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };
			poll(&p, 1, (int)(left > 100 ? 100 : left));
		} else {
			usleep(10000);
		}
	}
}

void sandbox_vmm_stop(struct vmm *vm, int grace_ms, int timeout_ms)
{
	int64_t now = pv_now_monotonic_ns();
	int64_t deadline = now + (int64_t)(timeout_ms > 0 ? timeout_ms : 100) * 1000000;
	if (vm->pid > 0 && grace_ms > 0)
		wait_gone(vm, now + (int64_t)grace_ms * 1000000);
	if (vm->pid > 0 && vm->ops->request_quit(vm) < 0)
		kill(vm->pid, SIGTERM);
	if (vm->pid > 0 && !wait_gone(vm, deadline)) {
		kill(vm->pid, SIGKILL);
		wait_gone(vm, pv_now_monotonic_ns() + 5000LL * 1000000);
	}
	if (vm->pid <= 0 && vm->ops->stopped)
		vm->ops->stopped(vm);
	if (vm->cfg.qmp_socket)
		unlink(vm->cfg.qmp_socket);
	if (vm->cfg.agent_socket)
		unlink(vm->cfg.agent_socket);
}

int sandbox_vmm_disk_add(struct vmm *vm, const struct vmm_disk *disk, int timeout_ms, pv_err_t **err)
{
	return vm->ops->disk_add(vm, disk, timeout_ms, err);
}

int sandbox_vmm_disk_remove(struct vmm *vm, const char *id, int timeout_ms, pv_err_t **err)
{
	return vm->ops->disk_remove(vm, id, timeout_ms, err);
}

char *sandbox_vmm_next_event(struct vmm *vm)
{
	return vm->ops->next_event ? vm->ops->next_event(vm) : NULL;
}

char *sandbox_vmm_disk_rootfs(const struct vmm *vm, const char *path)
{
	return vm->ops->disk_rootfs ? vm->ops->disk_rootfs(vm, path) : NULL;
}

void sandbox_vmm_disk_discard(struct vmm *vm, const char *path)
{
	/* A file (QEMU's qcow2) or a directory the backend emptied of mounts (host). */
	if (unlink(path) < 0 && errno == EISDIR)
		pv_rm_rf(path, NULL);
}

void sandbox_vmm_info(const struct vmm *vm, struct vmm_info *out)
{
	out->backend = vm->ops->name;
	out->layer_suffix = vm->ops->layer_suffix ? vm->ops->layer_suffix : "";
	out->pid = vm->pid;
	out->accel = vm->cfg.accel;
	out->vcpus = vm->cfg.vcpus;
	out->memory_mib = vm->cfg.memory_mib;
}

char *sandbox_file_tail(const char *path, size_t max)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pv_xasprintf("(cannot open: %s)", strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return pv_xstrdup("(cannot stat)");
	off_t off = st.st_size > (off_t)max ? st.st_size - (off_t)max : 0;
	char *buf = pv_xmalloc(max + 1);
	ssize_t n = pread(fd, buf, max, off);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	/* Keep it printable on one log line. */
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	return buf;
}

int sandbox_listen_unix(const char *path, pv_err_t **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "socket");
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return pv_err_sys(err, PV_INTERNAL, "bind %s", path);
	if (listen(fd, 4) < 0)
		return pv_err_sys(err, PV_INTERNAL, "listen %s", path);
	return steal_fd(&fd);
}
