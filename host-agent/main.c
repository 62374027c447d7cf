/* podvisor-hostagent: arguments, set-up, the loop, shutdown (see hostagent.h). */
#include "hostagent.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"
#include "version.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/timerfd.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

struct agent g_agent = { .epfd = -1, .chan_fd = -1, .sig_fd = -1, .timer_fd = -1, .retry_fd = -1,
			  .self_pidns_fd = -1 };
struct hostagent_pod g_pod;

static void usage(FILE *f)
{
	fprintf(f, "usage: podvisor-hostagent --listen-fd N --state-dir DIR --pod-id ID [options]\n"
		   "  --listen-fd N          a listening unix socket: the shim connects to it\n"
		   "  --state-dir DIR        bundles, the runtime's state (--root), resolv.conf\n"
		   "  --runtime PATH         the OCI runtime (default runc)\n"
		   "  --namespaces LIST      network=node|pod,pid=node|pod|container,ipc=node|pod\n"
		   "                         (default: all pod, pid container)\n"
		   "  --netns PATH           the pod's network namespace (CNI), for network=pod\n"
		   "  --share-dir DIR        what the agent protocol calls the volume share\n"
		   "  --cgroup-parent PATH   cgroupfs parent of the containers (default /podvisor/<pod id>)\n"
		   "  --log-level LEVEL      debug|info|warn|error\n");
}

/* "network=node,pid=pod,ipc=node" */
static int parse_namespaces(const char *s)
{
	cleanup_free char *copy = pv_xstrdup(s);
	char *save = NULL;
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (!v)
			return -1;
		*v++ = '\0';
		bool node = !strcmp(v, "node"), pod = !strcmp(v, "pod"), ctr = !strcmp(v, "container");
		if (!strcmp(kv, "network") && (node || pod))
			g_pod.host_net = node;
		else if (!strcmp(kv, "ipc") && (node || pod))
			g_pod.host_ipc = node;
		else if (!strcmp(kv, "pid") && (node || pod || ctr)) {
			g_pod.host_pid = node;
			g_pod.pod_pid = pod;
		} else
			return -1;
	}
	return 0;
}

enum { OPT_LISTEN = 256, OPT_STATE, OPT_RUNTIME, OPT_NS, OPT_NETNS, OPT_SHARE, OPT_CGROUP, OPT_POD, OPT_LOGLEVEL, OPT_HELP };

static const struct option long_opts[] = {
	{ "listen-fd", required_argument, NULL, OPT_LISTEN }, { "state-dir", required_argument, NULL, OPT_STATE },
	{ "runtime", required_argument, NULL, OPT_RUNTIME },  { "namespaces", required_argument, NULL, OPT_NS },
	{ "netns", required_argument, NULL, OPT_NETNS },      { "share-dir", required_argument, NULL, OPT_SHARE },
	{ "cgroup-parent", required_argument, NULL, OPT_CGROUP }, { "pod-id", required_argument, NULL, OPT_POD },
	{ "log-level", required_argument, NULL, OPT_LOGLEVEL }, { "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static int parse_args(int argc, char **argv, int *listen_fd)
{
	int c;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN: *listen_fd = atoi(optarg); break;
		case OPT_STATE: g_pod.state_dir = pv_xstrdup(optarg); break;
		case OPT_RUNTIME: g_pod.runtime = pv_xstrdup(optarg); break;
		case OPT_NETNS: g_pod.netns = pv_xstrdup(optarg); break;
		case OPT_SHARE: g_pod.share_dir = pv_xstrdup(optarg); break;
		case OPT_CGROUP: g_pod.cgroup_parent = pv_xstrdup(optarg); break;
		case OPT_POD: g_pod.id = pv_xstrdup(optarg); break;
		case OPT_NS:
			if (parse_namespaces(optarg) < 0) {
				fprintf(stderr, "podvisor-hostagent: bad --namespaces %s\n", optarg);
				return -1;
			}
			break;
		case OPT_LOGLEVEL: {
			enum pv_log_level lvl;
			if (pv_log_parse_level(optarg, &lvl) == 0)
				pv_log_set_level(lvl);
			break;
		}
		case OPT_HELP: usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (*listen_fd < 0 || !g_pod.state_dir || !g_pod.id) {
		usage(stderr);
		return -1;
	}
	if (!g_pod.runtime)
		g_pod.runtime = pv_xstrdup("runc");
	if (!g_pod.cgroup_parent)
		g_pod.cgroup_parent = pv_xasprintf("/podvisor/%s", g_pod.id);
	if (g_pod.host_pid)
		g_pod.pod_pid = false;
	g_pod.hostname = pv_xstrdup("");
	return 0;
}

/* What the node's cgroups and our own limits allow. */
static void probe_node(void)
{
	struct statfs sf;
	g_pod.cgroup_v2 = statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
	g_pod.memsw = access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0;
	cleanup_free char *adj = NULL;
	size_t len;
	if (pv_read_file("/proc/self/oom_score_adj", 64, &adj, &len, NULL) == 0)
		g_pod.min_oom_score_adj = atoi(adj);
	char missing[512] = "";
	for (int c = 0; c < 64; c++) {
		int r = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
		if (r < 0)
			break;
		if (r == 1)
			g_pod.cap_bounding |= 1ull << c;
		else
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%d", *missing ? "," : "", c);
	}
	if (*missing)
		pv_info("capabilities the node does not grant: containers asking for them go without", "caps=%s",
			missing);
}

static void setup_loop(void)
{
	struct agent *a = &g_agent;
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	a->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	a->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	a->sig_ev.kind = EV_SIGNAL;
	a->timer_ev.kind = EV_TIMER;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &a->sig_ev };
	epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->sig_fd, &ev);
	ev.data.ptr = &a->timer_ev;
	epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->timer_fd, &ev);
	pv_frame_reader_init(&a->rd, PV_FRAME_MAX_PAYLOAD);
	pv_frame_writer_init(&a->wr);
}

/* 1 when asked to stop (SIGTERM: the shim's backend stopping us, or its death). */
static int on_signal(void)
{
	struct signalfd_siginfo si;
	int stop = 0;
	while (read(g_agent.sig_fd, &si, sizeof(si)) == sizeof(si))
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			stop = 1;
	container_on_sigchld();
	return stop;
}

/* The pod's cgroup parent in every hierarchy (the runtime removes the containers' own). */
static void remove_cgroup_parent(void)
{
	cleanup_free char *v2 = pv_xasprintf("/sys/fs/cgroup%s", g_pod.cgroup_parent);
	rmdir(v2);
	DIR *d = opendir("/sys/fs/cgroup");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		cleanup_free char *p = pv_xasprintf("/sys/fs/cgroup/%s%s", de->d_name, g_pod.cgroup_parent);
		rmdir(p);
	}
	if (d)
		closedir(d);
}

static void shutdown_pod(void)
{
	channel_flush_blocking(2000);
	container_kill_all();
	hostagent_pod_stop_holder();
	remove_cgroup_parent();
	pv_info("host pod stopped", "pod=%s", g_pod.id);
}

static void run_loop(void)
{
	struct epoll_event evs[32];
	for (;;) {
		int n = epoll_wait(g_agent.epfd, evs, 32, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pv_error("epoll_wait", "error=%s", strerror(errno));
			return;
		}
		bool stop = false;
		for (int i = 0; i < n; i++) {
			struct ev *e = evs[i].data.ptr;
			switch (e->kind) {
			case EV_CHANNEL: channel_on_event(evs[i].events); break;
			case EV_SIGNAL: stop |= on_signal(); break;
			case EV_TIMER: channel_on_timer(); break;
			case EV_STDIO: stdio_on_event(e->ptr, evs[i].events); break;
			case EV_ACCEPT: hostagent_listen_accept(); break;
			case EV_PORTFWD: portfwd_on_event(e->ptr, evs[i].events); break;
			case EV_RETRY:
			case EV_SIGRESEND: break; /* the guest agent's; runc delivers a host pod's signals */
			}
		}
		stdio_free_closed();
		portfwd_free_closed();
		if (stop || g_agent.shutting_down)
			return;
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--holder"))
		hostagent_holder_main(argv[2]);
	pv_log_init("hostagent", PV_LOG_INFO);
	int listen_fd = -1;
	if (parse_args(argc, argv, &listen_fd) < 0)
		return 2;
	/* Die with the shim (cleaning up: SIGTERM), and inherit the containers' processes. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		pv_error("cannot become a child subreaper", "error=%s", strerror(errno));
		return 1;
	}
	umask(022);
	probe_node();
	/* The agent lives in the pod's network namespace (the node's for hostNetwork): a
	 * port-forward connects to the pod's localhost, /proc/self/net shows the pod's interfaces.
	 * Nothing else it does depends on it (its channel is a unix socket, runc is told the
	 * containers' namespaces by path). */
	if (g_pod.netns && !g_pod.host_net && hostagent_pod_enter_netns(g_pod.netns) < 0) {
		pv_error("cannot enter the pod's network namespace", "netns=%s error=%s", g_pod.netns, strerror(errno));
		return 1;
	}
	cleanup_err pv_err_t *err = NULL;
	cleanup_free char *bundles = pv_xasprintf("%s/bundles", g_pod.state_dir);
	cleanup_free char *root = pv_xasprintf("%s/runc", g_pod.state_dir);
	if (pv_mkdir_p(bundles, 0700, &err) < 0 || pv_mkdir_p(root, 0700, &err) < 0 || chdir(g_pod.state_dir) < 0) {
		pv_error("state directory", "dir=%s error=%s", g_pod.state_dir, err ? err->msg : strerror(errno));
		return 1;
	}
	setup_loop();
	fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
	fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
	if (hostagent_listen_init(listen_fd, &err) < 0) {
		pv_error("no host channel", "error=%s", err->msg);
		return 1;
	}
	pv_info("host agent ready", "version=%s pod=%s runtime=%s cgroup_v2=%d netns=%s", PODVISOR_VERSION, g_pod.id,
		g_pod.runtime, g_pod.cgroup_v2, g_pod.netns ? g_pod.netns : "");
	run_loop();
	shutdown_pod();
	return 0;
}
