/* podvisor-shim: arguments, start-up, signals, the loop, teardown. */
#include "shim.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"
#include "version.h"
#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: podvisor-shim --state-dir DIR --kernel PATH --initramfs PATH [options]\n"
		   "  --name ID             pod id (QEMU -name)\n"
		   "  --vcpus N --memory-mib N\n"
		   "  --accel auto|kvm|hvf|tcg\n"
		   "  --kernel-args STR     extra guest kernel arguments\n"
		   "  --machine OPTS        QEMU -machine value (default: the backend's)\n"
		   "  --arch x86_64|arm64   guest architecture (x86_64: microvm, arm64: virt)\n"
		   "  --qemu PATH --qemu-img PATH\n"
		   "  --tap NAME --mac MAC  virtio-net on a tap device (by name, in QEMU's netns)\n"
		   "  --netns PATH [--veth NAME] [--tap NAME]  add a tap to the pod netns joined to\n"
		   "                        the CNI veth (default eth0/tap0), QEMU gets it as an fd,\n"
		   "                        the guest's eth0 gets the veth's MAC, addresses and routes\n"
		   "  --share-dir DIR       share DIR with the guest over virtio-9p (tag podvisor.vol)\n"
		   "  --disk-dir DIR        containers' qcow2 overlays (default <state-dir>/disks)\n"
		   "  --disk-size-mib N     each container's writable disk (sparse), default the image's size\n"
		   "  --tcg-tb-size MIB     TCG translation cache size\n"
		   "  --boot-timeout-ms N   agent must answer within this (default 60000)\n"
		   "  --stop-timeout-ms N   graceful stop before SIGKILL (default 10000)\n"
		   "  --heartbeat-ms N      ping the agent this often; 3 missed = pod lost (default\n"
		   "                        10000, 0 = off)\n"
		   "  --ready-fd N          write one JSON line when ready (or failed), then close\n"
		   "  --log-level LEVEL     debug|info|warn|error\n"
		   "  --version             print the version and exit\n");
}

enum {
	OPT_STATE = 256, OPT_KERNEL, OPT_INITRD, OPT_NAME, OPT_VCPUS, OPT_MEM, OPT_ACCEL, OPT_KARGS, OPT_QEMU,
	OPT_QEMU_IMG, OPT_TAP, OPT_MAC, OPT_TB, OPT_BOOT_TO, OPT_STOP_TO, OPT_READY, OPT_LOGLEVEL, OPT_HELP, OPT_MACHINE, OPT_ARCH, OPT_NETNS, OPT_VETH, OPT_HEARTBEAT,
	OPT_SHARE, OPT_VERSION, OPT_DISK_DIR, OPT_DISK_SIZE,
};

static const struct option long_opts[] = {
	{ "state-dir", required_argument, NULL, OPT_STATE },
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initramfs", required_argument, NULL, OPT_INITRD },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "vcpus", required_argument, NULL, OPT_VCPUS },
	{ "memory-mib", required_argument, NULL, OPT_MEM },
	{ "accel", required_argument, NULL, OPT_ACCEL },
	{ "kernel-args", required_argument, NULL, OPT_KARGS },
	{ "qemu", required_argument, NULL, OPT_QEMU },
	{ "qemu-img", required_argument, NULL, OPT_QEMU_IMG },
	{ "tap", required_argument, NULL, OPT_TAP },
	{ "mac", required_argument, NULL, OPT_MAC },
	{ "tcg-tb-size", required_argument, NULL, OPT_TB },
	{ "boot-timeout-ms", required_argument, NULL, OPT_BOOT_TO },
	{ "stop-timeout-ms", required_argument, NULL, OPT_STOP_TO },
	{ "ready-fd", required_argument, NULL, OPT_READY },
	{ "log-level", required_argument, NULL, OPT_LOGLEVEL },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "machine", required_argument, NULL, OPT_MACHINE },
	{ "arch", required_argument, NULL, OPT_ARCH },
	{ "netns", required_argument, NULL, OPT_NETNS },
	{ "veth", required_argument, NULL, OPT_VETH },
	{ "heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT },
	{ "share-dir", required_argument, NULL, OPT_SHARE },
	{ "disk-dir", required_argument, NULL, OPT_DISK_DIR },
	{ "disk-size-mib", required_argument, NULL, OPT_DISK_SIZE },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static int parse_args(int argc, char **argv, struct shim_opts *o)
{
	o->accel = VMM_ACCEL_AUTO;
	o->vcpus = 1;
	o->memory_mib = 256;
	o->boot_timeout_ms = 60000;
	o->stop_timeout_ms = 10000;
	o->heartbeat_ms = 10000;
	o->ready_fd = -1;
	int c;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_STATE: o->state_dir = optarg; break;
		case OPT_KERNEL: o->kernel = optarg; break;
		case OPT_INITRD: o->initramfs = optarg; break;
		case OPT_NAME: o->name = optarg; break;
		case OPT_VCPUS: o->vcpus = (unsigned)strtoul(optarg, NULL, 10); break;
		case OPT_MEM: o->memory_mib = strtoull(optarg, NULL, 10); break;
		case OPT_ACCEL:
			if (sandbox_accel_parse(optarg, &o->accel) < 0) {
				fprintf(stderr, "podvisor-shim: bad --accel %s\n", optarg);
				return -1;
			}
			break;
		case OPT_KARGS: o->kernel_args = optarg; break;
		case OPT_MACHINE: o->machine = optarg; break;
		case OPT_ARCH:
			if (sandbox_arch_parse(optarg, &o->arch) < 0) {
				fprintf(stderr, "podvisor-shim: bad --arch %s (x86_64 or arm64)\n", optarg);
				return -1;
			}
			break;
		case OPT_NETNS: o->netns = optarg; break;
		case OPT_VETH: o->veth = optarg; break;
		case OPT_SHARE: o->share_dir = optarg; break;
		case OPT_DISK_DIR: o->disk_dir = optarg; break;
		case OPT_DISK_SIZE: o->disk_size = strtoull(optarg, NULL, 10) << 20; break;
		case OPT_HEARTBEAT: o->heartbeat_ms = atoi(optarg); break;
		case OPT_QEMU: o->qemu = optarg; break;
		case OPT_QEMU_IMG: o->qemu_img = optarg; break;
		case OPT_TAP: o->tap = optarg; break;
		case OPT_MAC: o->mac = optarg; break;
		case OPT_TB: o->tcg_tb_size_mib = (unsigned)strtoul(optarg, NULL, 10); break;
		case OPT_BOOT_TO: o->boot_timeout_ms = atoi(optarg); break;
		case OPT_STOP_TO: o->stop_timeout_ms = atoi(optarg); break;
		case OPT_READY: o->ready_fd = atoi(optarg); break;
		case OPT_LOGLEVEL: {
			enum pv_log_level lvl;
			if (pv_log_parse_level(optarg, &lvl) == 0)
				pv_log_set_level(lvl);
			break;
		}
		case OPT_HELP: usage(stdout); exit(0);
		case OPT_VERSION: printf("podvisor-shim %s\n", PODVISOR_VERSION); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (!o->state_dir || !o->kernel || !o->initramfs) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static int vmm_pid(struct shim *s)
{
	struct vmm_info vi = { 0 };
	if (s->vm)
		sandbox_vmm_info(s->vm, &vi);
	return (int)vi.pid;
}

/* Tell the spawner how start-up went: one JSON line on the ready fd. */
static void report_ready(struct shim *s, const pv_err_t *err)
{
	int fd = s->opts.ready_fd;
	if (fd < 0)
		return;
	json_t *j = err ? json_pack("{s:b,s:i,s:s}", "ok", 0, "status", err->status, "message", err->msg)
			: json_pack("{s:b,s:i,s:i}", "ok", 1, "shim_pid", (int)getpid(), "vmm_pid", vmm_pid(s));
	cleanup_free char *txt = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	cleanup_free char *line = pv_xasprintf("%s\n", txt);
	pv_write_full(fd, line, strlen(line));
	close(fd);
	s->opts.ready_fd = -1;
}

static int shim_signal_fd = -1;

static void signal_event(void *opaque, uint32_t events)
{
	struct shim *s = opaque;
	struct signalfd_siginfo si;
	while (read(shim_signal_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			pv_info("signal: shutting the pod down", "signal=%u", si.ssi_signo);
			shim_vm_shutdown(s, s->opts.stop_timeout_ms);
			shim_loop_quit(s->loop);
		}
	}
}

static int setup_paths(struct shim *s, pv_err_t **err)
{
	const char *d = s->opts.state_dir;
	s->sock_path = pv_xasprintf("%s/shim.sock", d);
	s->qmp_path = pv_xasprintf("%s/qmp.sock", d);
	s->agent_path = pv_xasprintf("%s/agent.sock", d);
	s->vm_log = pv_xasprintf("%s/vm.log", d);
	s->state_path = pv_xasprintf("%s/state.pb", d);
	s->disk_dir = s->opts.disk_dir ? pv_xstrdup(s->opts.disk_dir) : pv_xasprintf("%s/disks", d);
	if (pv_mkdir_p(s->disk_dir, 0750, err) < 0)
		return -1;
	if (s->opts.share_dir && pv_mkdir_p(s->opts.share_dir, 0750, err) < 0)
		return -1;
	cleanup_free char *pidfile = pv_xasprintf("%s/shim.pid", d);
	cleanup_free char *pid = pv_xasprintf("%d\n", (int)getpid());
	return pv_write_file_atomic(pidfile, pid, strlen(pid), 0640, err);
}

static void shim_free(struct shim *s)
{
	/* Watchers still parked get the final state before the socket closes. */
	struct shim_call **w = s->watchers;
	size_t n = s->nwatchers;
	s->watchers = NULL;
	s->nwatchers = 0;
	for (size_t i = 0; i < n; i++)
		shim_state_reply(s, w[i]);
	free(w);
	shim_ctl_close(s);
	if (s->agent)
		pv_agent_free(s->agent);
	if (s->agent_dropped)
		pv_agent_free(s->agent_dropped);
	for (size_t i = 0; i < s->nctrs; i++)
		shim_ctr_free(s->ctrs[i]);
	free(s->ctrs);
	for (int i = 0; i < SHIM_MAX_DISKS; i++)
		free(s->disks[i].id);
	sandbox_vmm_free(s->vm);
	shim_loop_free(s->loop);
	free(s->sock_path);
	free(s->qmp_path);
	free(s->agent_path);
	free(s->vm_log);
	free(s->state_path);
	free(s->disk_dir);
	free(s->reason);
	free(s->agent_version);
	pv_tap_info_free(s->net);
}

int main(int argc, char **argv)
{
	pv_log_init("shim", PV_LOG_INFO);
	struct shim s = { 0 };
	if (parse_args(argc, argv, &s.opts) < 0)
		return 2;
	/* Own session: podvisord's death or restart must not signal the pod. */
	if (getsid(0) != getpid())
		setsid();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	pv_err_t *err = NULL;
	int rc = 1;
	s.created_ns = pv_now_realtime_ns();
	s.state = PODVISOR__SHIM__POD_STATE__POD_STARTING;
	if (setup_paths(&s, &err) < 0 || shim_loop_new(&s.loop, &err) < 0)
		goto out;
	shim_signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (shim_signal_fd < 0) {
		pv_err_sys(&err, PV_INTERNAL, "signalfd");
		goto out;
	}
	s.signal_watch = shim_loop_add(s.loop, shim_signal_fd, EPOLLIN, signal_event, &s, &err);
	if (!s.signal_watch)
		goto out;
	pv_info("starting pod VM", "state_dir=%s", s.opts.state_dir);
	if (shim_worker_start(&s, &err) < 0)
		goto out;
	if (shim_vm_start(&s, &err) < 0) {
		s.state = PODVISOR__SHIM__POD_STATE__POD_NOTREADY;
		s.reason = pv_xstrdup(err->msg);
		shim_state_persist(&s);
		goto out;
	}
	shim_state_persist(&s);
	if (shim_ctl_listen(&s, &err) < 0) {
		shim_vm_shutdown(&s, 1000);
		goto out;
	}
	pv_info("pod ready", "socket=%s", s.sock_path);
	report_ready(&s, NULL);
	if (shim_loop_run(s.loop, &err) < 0)
		goto out;
	rc = 0;
out:
	if (err) {
		pv_error("shim failed", "error=%s", err->msg);
		report_ready(&s, err);
		pv_err_free(err);
	}
	if (s.vm)
		sandbox_vmm_stop(s.vm, 0, 1000);
	shim_worker_stop(&s);
	shim_net_teardown(&s);
	shim_free(&s);
	if (shim_signal_fd >= 0)
		close(shim_signal_fd);
	return rc;
}
