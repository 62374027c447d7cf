/* The QEMU backend of struct vmm_ops: spawn, QMP, disk hot-plug. */
#include "vmm_impl.h"
#include "qemu.h"
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
#define CHILD_STATE_FD 6 /* a clone's template state (migrate-incoming fd:6) */
/* Loading a clone's device state (tens of KB) and resuming it. */
#define INCOMING_TIMEOUT_MS 20000

static void child_exec(char **argv, int logfd, int agentfd, int qmpfd, int tapfd, int statefd)
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
	int st = statefd >= 0 ? fcntl(statefd, F_DUPFD_CLOEXEC, 100) : -1;
	if (dup2(devnull, 0) < 0 || dup2(l, 1) < 0 || dup2(l, 2) < 0 || dup2(a, CHILD_AGENT_FD) < 0 ||
	    dup2(q, CHILD_QMP_FD) < 0 || (tapfd >= 0 && dup2(t, CHILD_TAP_FD) < 0) ||
	    (statefd >= 0 && dup2(st, CHILD_STATE_FD) < 0))
		_exit(126);
	syscall(SYS_close_range, CHILD_STATE_FD + 1, ~0U, 0);
	if (tapfd < 0)
		close(CHILD_TAP_FD);
	if (statefd < 0)
		close(CHILD_STATE_FD);
	execvp(argv[0], argv);
	dprintf(2, "podvisor: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static struct qmp *qmp_of(struct vmm *vm)
{
	return vm->priv;
}

static int qemu_start(struct vmm *vm, pv_err_t **err)
{
	if (!vm->cfg.kernel || !vm->cfg.initramfs)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "a pod VM needs a kernel and an initramfs");
	struct vmm_config c = vm->cfg;
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
	cleanup_close int agentfd = -1, qmpfd = -1, statefd = -1;
	if (c.template_dir) {
		cleanup_free char *state = pv_xasprintf("%s/%s", c.template_dir, SANDBOX_TEMPLATE_STATE);
		statefd = open(state, O_RDONLY | O_CLOEXEC);
		if (statefd < 0) {
			r = pv_err_sys(err, PV_FAILED_PRECONDITION, "open template state %s", state);
			goto out;
		}
	}
	if (logfd < 0) {
		r = pv_err_sys(err, errno == ENOSPC ? PV_RESOURCE_EXHAUSTED : PV_INTERNAL, "open VM log %s",
			       c.log_path);
		goto out;
	}
	if ((agentfd = sandbox_listen_unix(c.agent_socket, err)) < 0 || (qmpfd = sandbox_listen_unix(c.qmp_socket, err)) < 0)
		goto out;
	pid_t pid = fork();
	if (pid < 0) {
		r = pv_err_sys(err, PV_INTERNAL, "fork");
		goto out;
	}
	if (pid == 0)
		child_exec(argv, logfd, agentfd, qmpfd, tapfd, statefd);
	/* Only QEMU holds the listeners now: if it dies, connections fail at once. */
	close(steal_fd(&agentfd));
	close(steal_fd(&qmpfd));
	struct qmp *q = NULL;
	if (sandbox_qmp_connect(c.qmp_socket, QMP_CONNECT_TIMEOUT_MS, &q, err) < 0) {
		cleanup_free char *tail = sandbox_file_tail(c.log_path, 2048);
		pv_err_prefix(err, "QEMU did not start (log %s: %s)", c.log_path, tail);
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		goto out;
	}
	if (c.template_dir && sandbox_qemu_incoming(q, CHILD_STATE_FD, INCOMING_TIMEOUT_MS, err) < 0) {
		cleanup_free char *tail = sandbox_file_tail(c.log_path, 1024);
		pv_err_prefix(err, "restore from template %s (log %s: %s)", c.template_dir, c.log_path, tail);
		sandbox_qmp_close(q);
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		goto out;
	}
	vm->pid = pid;
	vm->priv = q;
	r = 0;
out:
	sandbox_argv_free(argv);
	return r;
}

/* Quitting over QMP would race a hot-plug on another thread: SIGTERM is QEMU's clean
 * quit too. */
static int qemu_request_quit(struct vmm *vm)
{
	return -1;
}

static char *qemu_next_event(struct vmm *vm)
{
	struct qmp *q = qmp_of(vm);
	if (!q)
		return NULL;
	sandbox_qmp_poll(q, NULL);
	json_t *ev = sandbox_qmp_pop_event(q);
	if (!ev)
		return NULL;
	char *txt = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	return txt;
}

/* QMP node and device names from a disk id (node names are limited to 31 chars). */
static void disk_names(const char *id, char *node, char *dev, size_t len)
{
	snprintf(node, len, "pvn-%.26s", id);
	snprintf(dev, len, "pvd-%.26s", id);
}

static int hot_add(struct vmm *vm, const struct vmm_disk *d, int timeout_ms, pv_err_t **err)
{
	char node[40], dev[40];
	disk_names(d->id, node, dev, sizeof(node));
	const char *fmt = d->format ? d->format : "qcow2";
	json_t *args = json_pack("{s:s,s:s,s:b,s:{s:s,s:s}}", "driver", fmt, "node-name", node, "read-only",
				 d->read_only, "file", "driver", "file", "filename", d->path);
	if (sandbox_qmp_execute(qmp_of(vm), "blockdev-add", args, timeout_ms, NULL, err) < 0) {
		pv_err_prefix(err, "add disk %s (%s)", d->id, d->path);
		return -1;
	}
	json_t *dargs = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i}", "driver", "scsi-hd", "id", dev, "drive",
				  node, "bus", "scsi0.0", "channel", 0, "scsi-id", (int)d->scsi_id, "lun", 0);
	if (d->serial)
		json_object_set_new(dargs, "serial", json_string(d->serial));
	if (sandbox_qmp_execute(qmp_of(vm), "device_add", dargs, timeout_ms, NULL, err) < 0) {
		pv_err_prefix(err, "attach disk %s", d->id);
		sandbox_qmp_execute(qmp_of(vm), "blockdev-del", json_pack("{s:s}", "node-name", node), timeout_ms,
				    NULL, NULL);
		return -1;
	}
	return 0;
}

/* The disk, and with a base its layer first: a qcow2 overlay, removed again if the add fails. */
static int qemu_disk_add(struct vmm *vm, const struct vmm_disk *d, int timeout_ms, pv_err_t **err)
{
	if (!qmp_of(vm))
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTCONN, "VM is not running");
	if (d->scsi_id > 255)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "scsi id %u out of range", d->scsi_id);
	if (d->base && sandbox_overlay_create(vm->cfg.qemu_img, d->base, d->path, d->size, err) < 0)
		return -1;
	if (hot_add(vm, d, timeout_ms, err) < 0) {
		if (d->base)
			unlink(d->path);
		return -1;
	}
	return 0;
}

/* 1 if QEMU has a block node of that name, 0 if not, -1 if it cannot tell. */
static int node_exists(struct qmp *q, const char *node, int timeout_ms)
{
	json_t *nodes = NULL;
	if (sandbox_qmp_execute(q, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), timeout_ms, &nodes,
				NULL) < 0)
		return -1;
	int found = 0;
	size_t i;
	json_t *n;
	json_array_foreach(nodes, i, n) {
		const char *name = json_string_value(json_object_get(n, "node-name"));
		if (name && !strcmp(name, node))
			found = 1;
	}
	json_decref(nodes);
	return found;
}

static int qemu_disk_remove(struct vmm *vm, const char *id, int timeout_ms, pv_err_t **err)
{
	if (!qmp_of(vm))
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTCONN, "VM is not running");
	char node[40], dev[40];
	disk_names(id, node, dev, sizeof(node));
	pv_err_t *e = NULL;
	if (sandbox_qmp_execute(qmp_of(vm), "device_del", json_pack("{s:s}", "id", dev), timeout_ms, NULL, &e) < 0) {
		/* Already gone (an earlier removal timed out): just drop the node. */
		if (e->status != PV_NOT_FOUND) {
			pv_err_move(err, e);
			pv_err_prefix(err, "remove disk %s", id);
			return -1;
		}
		pv_err_free(e);
	} else if (sandbox_qmp_wait_event(qmp_of(vm), "DEVICE_DELETED", "device", dev, timeout_ms, NULL, err) < 0) {
		pv_err_prefix(err, "remove disk %s: guest did not release it", id);
		return -1;
	}
	e = NULL;
	if (sandbox_qmp_execute(qmp_of(vm), "blockdev-del", json_pack("{s:s}", "node-name", node), timeout_ms, NULL,
				&e) < 0) {
		/* A node that is not there (an earlier removal got this far) is what we want. */
		if (e->status != PV_NOT_FOUND && node_exists(qmp_of(vm), node, timeout_ms) != 0) {
			pv_err_move(err, e);
			pv_err_prefix(err, "remove disk %s", id);
			return -1;
		}
		pv_err_free(e);
	}
	return 0;
}

static int qemu_template_save(struct vmm *vm, int timeout_ms, pv_err_t **err)
{
	if (!qmp_of(vm))
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTCONN, "VM is not running");
	return sandbox_qemu_template_save(vm, qmp_of(vm), timeout_ms, err);
}

static void qemu_free(struct vmm *vm)
{
	sandbox_qmp_close(qmp_of(vm));
	vm->priv = NULL;
}

const struct vmm_ops sandbox_qemu_ops = {
	.name = "qemu",
	.flags = VMM_NEEDS_TAP,
	.layer_suffix = ".qcow2",
	.start = qemu_start,
	.request_quit = qemu_request_quit,
	.disk_add = qemu_disk_add,
	.disk_remove = qemu_disk_remove,
	.next_event = qemu_next_event,
	.template_save = qemu_template_save,
	.free = qemu_free,
};
