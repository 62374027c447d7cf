/* The pod VM: start it, wait for the agent, notice its death, stop it, hot-plug disks. */
#include "shim.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#define QMP_TIMEOUT_MS 10000
/* How long a broken agent channel waits for the VM's exit to explain it. */
#define VM_EXIT_GRACE_MS 300

int shim_need_agent(struct shim *s, pv_err_t **err)
{
	if (s->agent && s->state == PODVISOR__SHIM__POD_STATE__POD_READY)
		return 0;
	return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTCONN, "pod VM is not running (%s%s%s)",
			  podvisor__shim__pod_state__descriptor.values[s->state].name, s->reason ? ": " : "",
			  s->reason ? s->reason : "");
}

void shim_agent_kick(struct shim *s)
{
	if (!s->agent)
		return;
	cleanup_err pv_err_t *err = NULL;
	int r = pv_agent_flush(s->agent, &err);
	if (r < 0) {
		shim_vm_lost(s, SHIM_LOSS_AGENT, "agent channel write failed");
		return;
	}
	if (s->agent_watch)
		shim_loop_mod(s->loop, s->agent_watch, EPOLLIN | (r > 0 ? EPOLLOUT : 0));
}

static void free_dropped_agent(void *opaque)
{
	struct shim *s = opaque;
	pv_agent_t *a = s->agent_dropped;
	s->agent_dropped = NULL;
	pv_agent_free(a); /* its pending callbacks run now, with the agent gone */
}

/*
 * Forget the agent. It is freed from the loop's next turn, never here: a drop comes
 * from inside the agent client's own callbacks (a failed write while a response is
 * being dispatched), which still use it when we return.
 */
static void drop_agent(struct shim *s)
{
	if (!s->agent)
		return;
	shim_loop_del(s->loop, s->agent_watch);
	s->agent_watch = NULL;
	if (s->agent_dropped) /* cannot happen: a new agent comes only with a new VM */
		pv_agent_free(s->agent_dropped);
	s->agent_dropped = s->agent;
	s->agent = NULL;
	shim_loop_timer(s->loop, pv_now_monotonic_ns(), free_dropped_agent, s);
}

void shim_vm_lost(struct shim *s, enum shim_loss loss, const char *reason)
{
	if (s->state == PODVISOR__SHIM__POD_STATE__POD_NOTREADY || s->state == PODVISOR__SHIM__POD_STATE__POD_STOPPED)
		return;
	pv_error("pod VM lost", "reason=%s", reason);
	s->state = PODVISOR__SHIM__POD_STATE__POD_NOTREADY;
	free(s->reason);
	s->reason = pv_xstrdup(reason);
	const char *why = loss == SHIM_LOSS_AGENT ? "AgentLost" : "VMExited";
	for (size_t i = 0; i < s->nctrs; i++)
		if (s->ctrs[i]->state != PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_EXITED)
			shim_exit_record(s, s->ctrs[i], 255, 0, false, why, reason);
	shim_state_persist(s);
	drop_agent(s);
}

/* The VMM process exited: note how (the one place the shim learns it), stop watching. */
static void vm_exited(struct shim *s, const char *why)
{
	shim_loop_del(s->loop, s->vm_watch);
	s->vm_watch = NULL;
	if (!s->shutting_down)
		shim_vm_lost(s, SHIM_LOSS_VM, why);
}

static void agent_event(void *opaque, uint32_t events)
{
	struct shim *s = opaque;
	cleanup_err pv_err_t *err = NULL;
	if (events & EPOLLOUT)
		shim_agent_kick(s);
	if (s->agent && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		if (pv_agent_on_readable(s->agent, &err) < 0) {
			/* If the VM died too, its exit says more than the broken channel: the channel
			 * often breaks a moment before the process is gone, so give it that moment. */
			cleanup_free char *vm_why = NULL;
			if (s->vm && sandbox_vmm_reap_wait(s->vm, VM_EXIT_GRACE_MS, &vm_why) && vm_why) {
				vm_exited(s, vm_why);
			} else {
				cleanup_free char *why = pv_xasprintf("agent connection lost: %s", err ? err->msg : "EOF");
				shim_vm_lost(s, SHIM_LOSS_AGENT, why);
			}
			return;
		}
		shim_agent_kick(s);
	}
}

static void vm_event(void *opaque, uint32_t events)
{
	struct shim *s = opaque;
	cleanup_free char *why = NULL;
	if (sandbox_vmm_reap(s->vm, &why))
		vm_exited(s, why ? why : "VM process gone");
}

/* ---- heartbeat: a guest that stops answering is a dead pod, not a hang ----------- */

static void heartbeat_done(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *err,
			   void *opaque)
{
	struct shim *s = opaque;
	if (resp)
		s->ping_sent_ns = 0;
}

static void heartbeat(void *opaque)
{
	struct shim *s = opaque;
	if (!s->agent || s->state != PODVISOR__SHIM__POD_STATE__POD_READY || s->shutting_down)
		return;
	int64_t now = pv_now_monotonic_ns();
	if (s->ping_sent_ns && now - s->ping_sent_ns > 3LL * s->opts.heartbeat_ms * 1000000) {
		cleanup_free char *why =
			pv_xasprintf("guest agent did not answer a ping for %d ms", 3 * s->opts.heartbeat_ms);
		shim_vm_lost(s, SHIM_LOSS_AGENT, why);
		/* A guest that hangs only burns CPU: end it (vm_event reaps it). */
		if (s->vm)
			sandbox_vmm_kill(s->vm);
		return;
	}
	if (!s->ping_sent_ns) {
		Podvisor__Agent__PingRequest pr = PODVISOR__AGENT__PING_REQUEST__INIT;
		Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
		req.req_case = PODVISOR__AGENT__REQUEST__REQ_PING;
		req.ping = &pr;
		if (pv_agent_call_async(s->agent, &req, heartbeat_done, s, NULL, NULL) == 0) {
			s->ping_sent_ns = now;
			shim_agent_kick(s);
		}
	}
	shim_loop_timer(s->loop, now + (int64_t)s->opts.heartbeat_ms * 1000000, heartbeat, s);
}

/* Connect to the agent and ping it until the boot timeout; a VM that does not get
 * there is stopped and reported with the tail of its console. */
static int wait_agent(struct shim *s, int64_t t0, pv_agent_t **out, pv_err_t **err)
{
	pv_agent_t *a = NULL;
	Podvisor__Agent__PingResponse *ping = NULL;
	int r = pv_agent_connect_unix(s->agent_path, s->opts.boot_timeout_ms, &a, err);
	if (r == 0) {
		int left = s->opts.boot_timeout_ms - (int)((pv_now_monotonic_ns() - t0) / 1000000);
		r = pv_agent_wait_ready(a, left > 0 ? left : 1, &ping, err);
	}
	if (r < 0) {
		pv_agent_free(a);
		sandbox_vmm_stop(s->vm, 0, 1000);
		cleanup_free char *tail = sandbox_file_tail(s->vm_log, 1500);
		pv_err_prefix(err, "guest agent not ready within %d ms (VM log %s ends with: %s)",
			      s->opts.boot_timeout_ms, s->vm_log, tail);
		return -1;
	}
	*out = a;
	s->agent_version = pv_xstrdup(ping && ping->agent_version ? ping->agent_version : "");
	if (ping)
		podvisor__agent__ping_response__free_unpacked(ping, NULL);
	s->ready_ns = pv_now_realtime_ns();
	pv_info("agent ready", "ms=%" PRId64 " agent_version=%s", (pv_now_monotonic_ns() - t0) / 1000000,
		s->agent_version);
	return 0;
}

int shim_vm_start(struct shim *s, pv_err_t **err)
{
	struct vmm_config cfg = {
		.name = s->opts.name,
		.qemu_binary = s->opts.qemu,
		.kernel = s->opts.kernel,
		.initramfs = s->opts.initramfs,
		.kernel_args = s->opts.kernel_args,
		.machine = s->opts.machine,
		.arch = s->opts.arch,
		.vcpus = s->opts.vcpus,
		.memory_mib = s->opts.memory_mib,
		.tcg_tb_size_mib = s->opts.tcg_tb_size_mib,
		.agent_socket = s->agent_path,
		.qmp_socket = s->qmp_path,
		.log_path = s->vm_log,
		.tap = s->opts.tap,
		.mac = s->opts.mac,
		.share_dir = s->opts.share_dir,
		.agent_listen_fd = -1,
		.qmp_listen_fd = -1,
		.tap_fd = -1,
	};
	cleanup_free char *why = NULL;
	/* podvisord probes once and says which; a shim started by hand (auto) probes itself. */
	cfg.accel = sandbox_accel_detect(s->opts.accel, "/dev/kvm", &why);
	pv_info("accelerator", "accel=%s why=%s", sandbox_accel_name(cfg.accel), why);
	if (cfg.accel == VMM_ACCEL_TCG)
		cfg.tsc_khz = sandbox_host_tsc_khz();
	cleanup_close int tap_fd = -1;
	if (shim_net_setup(s, &tap_fd, err) < 0)
		return -1;
	cfg.tap_fd = tap_fd;
	cfg.mac = s->opts.mac;
	if (tap_fd >= 0)
		cfg.tap = NULL;
	if (sandbox_vmm_new(NULL, &cfg, &s->vm, err) < 0)
		return -1;
	int64_t t0 = pv_now_monotonic_ns();
	if (sandbox_vmm_start(s->vm, err) < 0)
		return -1;
	struct vmm_info vi;
	sandbox_vmm_info(s->vm, &vi);
	pv_info("VM started", "vmm=%s pid=%d vcpus=%u memory_mib=%" PRIu64, vi.backend, (int)vi.pid, cfg.vcpus,
		cfg.memory_mib);

	pv_agent_t *a = NULL;
	if (wait_agent(s, t0, &a, err) < 0)
		return -1;
	s->agent = a;
	if (shim_net_configure_guest(s, err) < 0) {
		s->agent = NULL;
		pv_agent_free(a);
		sandbox_vmm_stop(s->vm, 0, 1000);
		return -1;
	}
	int fd = pv_agent_fd(a);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	s->agent_watch = shim_loop_add(s->loop, fd, EPOLLIN, agent_event, s, err);
	int wfd = sandbox_vmm_wait_fd(s->vm);
	if (wfd >= 0)
		s->vm_watch = shim_loop_add(s->loop, wfd, EPOLLIN, vm_event, s, err);
	if (!s->agent_watch || (wfd >= 0 && !s->vm_watch))
		return -1;
	s->state = PODVISOR__SHIM__POD_STATE__POD_READY;
	if (s->opts.heartbeat_ms > 0)
		shim_loop_timer(s->loop, pv_now_monotonic_ns() + (int64_t)s->opts.heartbeat_ms * 1000000, heartbeat,
				s);
	return 0;
}

void shim_vm_shutdown(struct shim *s, int timeout_ms)
{
	s->shutting_down = true;
	if (s->agent && s->state == PODVISOR__SHIM__POD_STATE__POD_READY) {
		Podvisor__Agent__ShutdownRequest sd = PODVISOR__AGENT__SHUTDOWN_REQUEST__INIT;
		Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
		areq.req_case = PODVISOR__AGENT__REQUEST__REQ_SHUTDOWN;
		areq.shutdown = &sd;
		Podvisor__Agent__Response *resp = NULL;
		cleanup_err pv_err_t *err = NULL;
		if (pv_agent_call(s->agent, &areq, timeout_ms / 2, &resp, &err) < 0)
			pv_warn("agent shutdown failed", "error=%s", err->msg);
		if (resp)
			podvisor__agent__response__free_unpacked(resp, NULL);
	}
	for (size_t i = 0; i < s->nctrs; i++)
		if (s->ctrs[i]->state != PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_EXITED)
			shim_exit_record(s, s->ctrs[i], 137, 9, false, "PodStopped", "pod shut down");
	drop_agent(s);
	if (s->vm) {
		/* The guest may end the VMM itself after the agent's shutdown (reboot=t +
		 * -no-reboot); give it a moment (without ACPI a power-off only halts). */
		shim_loop_del(s->loop, s->vm_watch);
		s->vm_watch = NULL;
		sandbox_vmm_stop(s->vm, timeout_ms < 4000 ? timeout_ms / 2 : 2000, timeout_ms);
	}
	/* Hot-plug in flight fails fast now that the VM is gone; let it finish. */
	shim_worker_stop(s);
	for (size_t i = 0; i < s->nctrs; i++)
		if (s->ctrs[i]->disk)
			unlink(s->ctrs[i]->disk);
	shim_net_teardown(s);
	s->state = PODVISOR__SHIM__POD_STATE__POD_STOPPED;
	free(s->reason);
	s->reason = pv_xstrdup("shut down on request");
	shim_state_persist(s);
	pv_info("pod stopped", NULL);
}

/* ---- disks: hot-plug runs on the worker; the slot table is the loop's ------------ */

struct disk_job {
	struct shim_job job;
	struct vmm *vm;
	char *id, *path, *base, *format, *qemu_img;
	uint64_t size;
	bool ro, created, add;
	unsigned slot;
	pv_err_t *err;
	shim_disk_cb cb;
	void *opaque;
};

static void disk_job_run(struct shim_job *j)
{
	struct disk_job *dj = (struct disk_job *)j;
	if (dj->add) {
		if (dj->base) {
			if (sandbox_overlay_create(dj->qemu_img, dj->base, dj->path, dj->size, &dj->err) < 0)
				return;
			dj->created = true;
		}
		char serial[32];
		snprintf(serial, sizeof(serial), "%.20s", dj->id);
		struct vmm_disk d = { .id = dj->id, .path = dj->path, .format = dj->format, .read_only = dj->ro,
				      .scsi_id = dj->slot, .serial = serial };
		if (sandbox_vmm_disk_add(dj->vm, &d, QMP_TIMEOUT_MS, &dj->err) < 0 && dj->created)
			unlink(dj->path);
	} else {
		sandbox_vmm_disk_remove(dj->vm, dj->id, QMP_TIMEOUT_MS, &dj->err);
	}
	char *ev;
	while ((ev = sandbox_vmm_next_event(dj->vm))) {
		pv_info("vmm event", "event=%s", ev);
		free(ev);
	}
}

static void disk_job_done(struct shim *s, struct shim_job *j)
{
	struct disk_job *dj = (struct disk_job *)j;
	if (dj->add && !dj->err) {
		pv_info("disk attached", "disk=%s path=%s scsi=0:0:%u:0", dj->id, dj->path, dj->slot);
	} else if (dj->add || !dj->err) {
		/* a failed attach never used its slot; a detach freed it */
		free(s->disks[dj->slot].id);
		s->disks[dj->slot].id = NULL;
		if (!dj->add)
			pv_info("disk detached", "disk=%s", dj->id);
	}
	s->disks[dj->slot].busy = false;
	if (dj->cb)
		dj->cb(s, dj->opaque, dj->err, dj->slot);
	pv_err_free(dj->err);
	free(dj->id);
	free(dj->path);
	free(dj->base);
	free(dj->format);
	free(dj->qemu_img);
	free(dj);
}

static struct disk_job *disk_job_new(struct shim *s, const char *id, unsigned slot, shim_disk_cb cb, void *opaque)
{
	struct disk_job *dj = pv_xcalloc(1, sizeof(*dj));
	dj->job.run = disk_job_run;
	dj->job.done = disk_job_done;
	dj->vm = s->vm;
	dj->id = pv_xstrdup(id);
	dj->slot = slot;
	dj->cb = cb;
	dj->opaque = opaque;
	s->disks[slot].busy = true;
	return dj;
}

int shim_disk_add(struct shim *s, const char *id, const char *path, const char *base, const char *format, bool ro,
		  shim_disk_cb cb, void *opaque, pv_err_t **err)
{
	if (!s->vm || !sandbox_vmm_running(s->vm) || s->state != PODVISOR__SHIM__POD_STATE__POD_READY ||
	    !shim_worker_running(s))
		return shim_need_agent(s, err);
	int slot = -1;
	for (int i = 0; i < SHIM_MAX_DISKS; i++) {
		if (s->disks[i].id && !strcmp(s->disks[i].id, id))
			return pv_err_set(err, PV_ALREADY_EXISTS, EEXIST, "disk %s already attached", id);
		if (!s->disks[i].id && slot < 0)
			slot = i;
	}
	if (slot < 0)
		return pv_err_set(err, PV_RESOURCE_EXHAUSTED, ENOSPC, "no free SCSI target for disk %s", id);
	s->disks[slot].id = pv_xstrdup(id);
	struct disk_job *dj = disk_job_new(s, id, (unsigned)slot, cb, opaque);
	dj->add = true;
	dj->path = pv_xstrdup(path);
	dj->base = base ? pv_xstrdup(base) : NULL;
	dj->format = pv_xstrdup(format ? format : "qcow2");
	dj->qemu_img = s->opts.qemu_img ? pv_xstrdup(s->opts.qemu_img) : NULL;
	dj->size = s->opts.disk_size;
	dj->ro = ro;
	shim_worker_submit(s, &dj->job);
	return 0;
}

int shim_disk_remove(struct shim *s, const char *id, shim_disk_cb cb, void *opaque, pv_err_t **err)
{
	int slot = -1;
	for (int i = 0; i < SHIM_MAX_DISKS; i++)
		if (s->disks[i].id && !strcmp(s->disks[i].id, id))
			slot = i;
	if (slot < 0)
		return pv_err_set(err, PV_NOT_FOUND, ENOENT, "disk %s is not attached", id);
	if (s->disks[slot].busy)
		return pv_err_set(err, PV_FAILED_PRECONDITION, EBUSY, "disk %s is being attached or detached", id);
	if (!s->vm || !sandbox_vmm_running(s->vm) || !shim_worker_running(s)) {
		/* No VM: nothing to detach. */
		free(s->disks[slot].id);
		s->disks[slot].id = NULL;
		if (cb)
			cb(s, opaque, NULL, (unsigned)slot);
		return 0;
	}
	struct disk_job *dj = disk_job_new(s, id, (unsigned)slot, cb, opaque);
	shim_worker_submit(s, &dj->job);
	return 0;
}
