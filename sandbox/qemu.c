/* The QEMU backend of struct vmm_ops: spawn, QMP, disk hot-plug, stop. */
#include "vmm.h"
#include "qmp.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define QMP_CONNECT_TIMEOUT_MS 20000
/* Fixed fd numbers the listening sockets get in the QEMU process. */
#define CHILD_AGENT_FD 3
#define CHILD_QMP_FD 4
#define CHILD_TAP_FD 5

static int listen_unix(const char *path, pv_err_t **err)
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

static void child_exec(char **argv, int logfd, int agentfd, int qmpfd, int tapfd)
{
	/* Die with the shim: a VM nobody owns is a leaked VM. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int l = fcntl(logfd, F_DUPFD_CLOEXEC, 100);
	int a = fcntl(agentfd, F_DUPFD_CLOEXEC, 100);
	int q = fcntl(qmpfd, F_DUPFD_CLOEXEC, 100);
	if (devnull < 0 || l < 0 || a < 0 || q < 0)
		_exit(126);
	int t = tapfd >= 0 ? fcntl(tapfd, F_DUPFD_CLOEXEC, 100) : -1;
	if (dup2(devnull, 0) < 0 || dup2(l, 1) < 0 || dup2(l, 2) < 0 || dup2(a, CHILD_AGENT_FD) < 0 ||
	    dup2(q, CHILD_QMP_FD) < 0 || (tapfd >= 0 && dup2(t, CHILD_TAP_FD) < 0))
		_exit(126);
	syscall(SYS_close_range, CHILD_TAP_FD + 1, ~0U, 0);
	if (tapfd < 0)
		close(CHILD_TAP_FD);
	execvp(argv[0], argv);
	dprintf(2, "podvisor: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int qemu_start(struct vmm *vm, pv_err_t **err)
{
	struct vmm_config c = vm->cfg;
	if (c.accel == VMM_ACCEL_AUTO)
		c.accel = sandbox_accel_detect(VMM_ACCEL_AUTO, "/dev/kvm", NULL);
	vm->cfg.accel = c.accel;
	c.agent_listen_fd = CHILD_AGENT_FD;
	c.qmp_listen_fd = CHILD_QMP_FD;
	int tapfd = c.tap_fd;
	if (tapfd >= 0)
		c.tap_fd = CHILD_TAP_FD;
	char **argv = NULL;
	if (sandbox_qemu_argv(&c, &argv, err) < 0)
		return -1;

	int r = -1;
	cleanup_close int logfd = open(c.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	cleanup_close int agentfd = -1, qmpfd = -1;
	if (logfd < 0) {
		r = pv_err_sys(err, errno == ENOSPC ? PV_RESOURCE_EXHAUSTED : PV_INTERNAL, "open VM log %s",
			       c.log_path);
		goto out;
	}
	if ((agentfd = listen_unix(c.agent_socket, err)) < 0 || (qmpfd = listen_unix(c.qmp_socket, err)) < 0)
		goto out;
	pid_t pid = fork();
	if (pid < 0) {
		r = pv_err_sys(err, PV_INTERNAL, "fork");
		goto out;
	}
	if (pid == 0)
		child_exec(argv, logfd, agentfd, qmpfd, tapfd);
	/* Only QEMU holds the listeners now: if it dies, connections fail at once. */
	close(steal_fd(&agentfd));
	close(steal_fd(&qmpfd));
	vm->pid = pid;
	vm->started_ns = pv_now_realtime_ns();
	vm->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct qmp *q = NULL;
	if (sandbox_qmp_connect(c.qmp_socket, QMP_CONNECT_TIMEOUT_MS, &q, err) < 0) {
		cleanup_free char *tail = sandbox_file_tail(c.log_path, 2048);
		pv_err_prefix(err, "QEMU did not start (log %s: %s)", c.log_path, tail);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		vm->pid = 0;
		if (vm->pidfd >= 0)
			close(vm->pidfd);
		vm->pidfd = -1;
		goto out;
	}
	vm->qmp = q;
	r = 0;
out:
	sandbox_argv_free(argv);
	return r;
}

/* Wait up to timeout_ms for the process to exit; 1 if it did (and was reaped). */
static int wait_exit(struct vmm *vm, int timeout_ms)
{
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		pid_t r = waitpid(vm->pid, NULL, WNOHANG);
		if (r == vm->pid || (r < 0 && errno == ECHILD))
			return 1;
		int64_t left = (deadline - pv_now_monotonic_ns()) / 1000000;
		if (left <= 0)
			return 0;
		if (vm->pidfd >= 0) {
			struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };
			poll(&p, 1, (int)(left > 50 ? 50 : left));
		} else {
			usleep(10000);
		}
	}
}

static int qemu_stop(struct vmm *vm, int timeout_ms, pv_err_t **err)
{
	if (vm->pid > 0) {
		if (vm->qmp)
			sandbox_qmp_execute(vm->qmp, "quit", NULL, timeout_ms, NULL, NULL);
		if (!wait_exit(vm, timeout_ms)) {
			kill(vm->pid, SIGKILL);
			wait_exit(vm, 5000);
		}
		vm->pid = 0;
	}
	sandbox_qmp_close(vm->qmp);
	vm->qmp = NULL;
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	vm->pidfd = -1;
	if (vm->cfg.qmp_socket)
		unlink(vm->cfg.qmp_socket);
	if (vm->cfg.agent_socket)
		unlink(vm->cfg.agent_socket);
	return 0;
}

/* QMP node and device names from a disk id (node names are limited to 31 chars). */
static void disk_names(const char *id, char *node, char *dev, size_t len)
{
	snprintf(node, len, "pvn-%.26s", id);
	snprintf(dev, len, "pvd-%.26s", id);
}

static int qemu_disk_add(struct vmm *vm, const struct vmm_disk *d, int timeout_ms, pv_err_t **err)
{
	if (!vm->qmp)
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTCONN, "VM is not running");
	if (d->scsi_id > 255)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "scsi id %u out of range", d->scsi_id);
	char node[40], dev[40];
	disk_names(d->id, node, dev, sizeof(node));
	const char *fmt = d->format ? d->format : "qcow2";
	json_t *args = json_pack("{s:s,s:s,s:b,s:{s:s,s:s}}", "driver", fmt, "node-name", node, "read-only",
				 d->read_only, "file", "driver", "file", "filename", d->path);
	if (sandbox_qmp_execute(vm->qmp, "blockdev-add", args, timeout_ms, NULL, err) < 0) {
		pv_err_prefix(err, "add disk %s (%s)", d->id, d->path);
		return -1;
	}
	json_t *dargs = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i}", "driver", "scsi-hd", "id", dev, "drive",
				  node, "bus", "scsi0.0", "channel", 0, "scsi-id", (int)d->scsi_id, "lun", 0);
	if (d->serial)
		json_object_set_new(dargs, "serial", json_string(d->serial));
	if (sandbox_qmp_execute(vm->qmp, "device_add", dargs, timeout_ms, NULL, err) < 0) {
		pv_err_prefix(err, "attach disk %s", d->id);
		sandbox_qmp_execute(vm->qmp, "blockdev-del", json_pack("{s:s}", "node-name", node), timeout_ms,
				    NULL, NULL);
		return -1;
	}
	return 0;
}

static int qemu_disk_remove(struct vmm *vm, const char *id, int timeout_ms, pv_err_t **err)
{
	if (!vm->qmp)
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTCONN, "VM is not running");
	char node[40], dev[40];
	disk_names(id, node, dev, sizeof(node));
	pv_err_t *e = NULL;
	if (sandbox_qmp_execute(vm->qmp, "device_del", json_pack("{s:s}", "id", dev), timeout_ms, NULL, &e) < 0) {
		/* Already gone (an earlier removal timed out): just drop the node. */
		if (e->status != PV_NOT_FOUND) {
			pv_err_move(err, e);
			pv_err_prefix(err, "remove disk %s", id);
			return -1;
		}
		pv_err_free(e);
	} else if (sandbox_qmp_wait_event(vm->qmp, "DEVICE_DELETED", "device", dev, timeout_ms, NULL, err) < 0) {
		pv_err_prefix(err, "remove disk %s: guest did not release it", id);
		return -1;
	}
	e = NULL;
	if (sandbox_qmp_execute(vm->qmp, "blockdev-del", json_pack("{s:s}", "node-name", node), timeout_ms, NULL,
				&e) < 0) {
		if (e->status != PV_NOT_FOUND && !strstr(e->msg, "not found") && !strstr(e->msg, "Cannot find")) {
			pv_err_move(err, e);
			pv_err_prefix(err, "remove disk %s", id);
			return -1;
		}
		pv_err_free(e);
	}
	return 0;
}

static void qemu_free(struct vmm *vm)
{
	(void)vm;
}

static const struct vmm_ops qemu_ops = {
	.name = "qemu",
	.start = qemu_start,
	.stop = qemu_stop,
	.disk_add = qemu_disk_add,
	.disk_remove = qemu_disk_remove,
	.free = qemu_free,
};

static char *dup_or_null(const char *s)
{
	return s ? pv_xstrdup(s) : NULL;
}

int sandbox_vmm_new(const char *backend, const struct vmm_config *cfg, struct vmm **out, pv_err_t **err)
{
	if (backend && strcmp(backend, "qemu"))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "unknown VMM backend %s", backend);
	struct vmm *vm = pv_xcalloc(1, sizeof(*vm));
	vm->ops = &qemu_ops;
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
	if (vm->ops && vm->ops->free)
		vm->ops->free(vm);
	sandbox_qmp_close(vm->qmp);
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
	free(vm);
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

int sandbox_overlay_create(const char *qemu_img, const char *base, const char *overlay, pv_err_t **err)
{
	if (access(base, R_OK) < 0)
		return pv_err_sys(err, errno == ENOENT ? PV_NOT_FOUND : PV_INTERNAL, "image disk %s", base);
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return pv_err_sys(err, PV_INTERNAL, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return pv_err_sys(err, PV_INTERNAL, "fork");
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		dup2(devnull, 0);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		const char *prog = qemu_img ? qemu_img : "qemu-img";
		execlp(prog, prog, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, overlay, (char *)NULL);
		dprintf(2, "exec %s: %s", prog, strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	char out[1024];
	ssize_t n = pv_read_full(pipefd[0], out, sizeof(out) - 1);
	close(pipefd[0]);
	out[n > 0 ? n : 0] = '\0';
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		size_t l = strlen(out);
		while (l && (out[l - 1] == '\n' || out[l - 1] == '\r'))
			out[--l] = '\0';
		return pv_err_set(err, strstr(out, "No space") ? PV_RESOURCE_EXHAUSTED : PV_INTERNAL, EIO,
				  "qemu-img create %s: %s", overlay, out);
	}
	return 0;
}
