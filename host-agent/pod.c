/*
 * The pod of a host agent: the namespaces its containers share. Those the pod shares with
 * the node (hostNetwork, hostPID, hostIPC) are simply not made; the others (UTS and IPC,
 * PID for a pod-wide PID namespace, an empty network namespace when no CNI one was made)
 * are held by one small child process, the "holder" (what a pause container is elsewhere),
 * and containers join them by /proc/<holder>/ns/<name>. The network namespace of a
 * pod-network pod is the one CNI made: containers join it by its path.
 */
#include "hostagent.h"
#include "cleanup.h"
#include "guest_abi.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static bool holder_needed(void)
{
	return !g_pod.host_net || !g_pod.host_ipc || g_pod.pod_pid;
}

/* The holder: set the pod's hostname, then reap whatever its PID namespace hands it. It runs
 * as this binary re-executed (`pv-pod-holder --holder`), so the pod's PID 1 shows no agent
 * command line and holds none of the agent's memory. */
void hostagent_holder_main(const char *hostname)
{
	if (hostname && *hostname)
		sethostname(hostname, strlen(hostname));
	sigset_t set;
	sigfillset(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		if (sig == SIGTERM || sig == SIGINT)
			_exit(0);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}

static void __attribute__((noreturn)) holder_exec(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Hold nothing of the agent's (its channel, its listener) past the agent. */
	syscall(SYS_close_range, 3, ~0U, 0);
	const char *h = !g_pod.host_net && g_pod.hostname ? g_pod.hostname : "";
	execl("/proc/self/exe", "pv-pod-holder", "--holder", h, (char *)NULL);
	_exit(127);
}

int hostagent_pod_holder(pv_err_t **err)
{
	if (g_pod.holder > 0 || !holder_needed())
		return 0;
	unsigned long flags = SIGCHLD;
	if (!g_pod.host_net)
		flags |= CLONE_NEWUTS;
	if (!g_pod.host_ipc)
		flags |= CLONE_NEWIPC;
	if (g_pod.pod_pid)
		flags |= CLONE_NEWPID;
	if (!g_pod.host_net && !g_pod.netns)
		flags |= CLONE_NEWNET; /* networking is off: the pod gets only a loopback */
	pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
	if (pid < 0)
		return pv_err_sys(err, PV_INTERNAL, "start the pod's namespace holder");
	if (pid == 0)
		holder_exec();
	g_pod.holder = pid;
	/* Networking off: the pod's (empty) network namespace is the holder's; the agent's too. */
	if (flags & CLONE_NEWNET) {
		cleanup_free char *net = hostagent_pod_ns_path("net");
		if (hostagent_pod_enter_netns(net) < 0)
			pv_warn("cannot enter the pod's network namespace", "netns=%s error=%s", net, strerror(errno));
	}
	pv_info("pod namespaces", "holder=%d uts=%s ipc=%s pid=%s net=%s", pid, g_pod.host_net ? "node" : "pod",
		g_pod.host_ipc ? "node" : "pod", g_pod.host_pid ? "node" : g_pod.pod_pid ? "pod" : "container",
		g_pod.host_net ? "node" : g_pod.netns ? g_pod.netns : "pod");
	return 0;
}

int hostagent_pod_enter_netns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = setns(fd, CLONE_NEWNET);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

char *hostagent_pod_ns_path(const char *ns)
{
	if (g_pod.holder <= 0)
		return NULL;
	return pv_xasprintf("/proc/%d/ns/%s", (int)g_pod.holder, ns);
}

void hostagent_pod_stop_holder(void)
{
	if (g_pod.holder <= 0)
		return;
	kill(g_pod.holder, SIGKILL);
	while (waitpid(g_pod.holder, NULL, 0) < 0 && errno == EINTR)
		;
	g_pod.holder = 0;
}

char *hostagent_pod_host_path(const char *guest_path)
{
	size_t vl = strlen(PV_GUEST_VOL_DIR);
	if (!strcmp(guest_path, PV_GUEST_RESOLV_CONF) && g_pod.resolv_conf)
		return pv_xstrdup(g_pod.resolv_conf);
	if (g_pod.share_dir && !strncmp(guest_path, PV_GUEST_VOL_DIR, vl) && (!guest_path[vl] || guest_path[vl] == '/'))
		return pv_xasprintf("%s%s", g_pod.share_dir, guest_path + vl);
	return pv_xstrdup(guest_path);
}

/* ---- CreateSandbox ------------------------------------------------------------------------ */

/* Run fn in a child that entered the pod's network, IPC and UTS namespaces; 0 or -errno. */
static int in_pod_namespaces(int (*fn)(void *), void *arg)
{
	const char *names[] = { "net", "ipc", "uts" };
	int types[] = { CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS };
	int fds[3] = { -1, -1, -1 };
	for (int i = 0; i < 3; i++) {
		cleanup_free char *path = i == 0 && g_pod.netns ? pv_xstrdup(g_pod.netns) : hostagent_pod_ns_path(names[i]);
		bool shared = i == 0 ? g_pod.host_net : i == 1 ? g_pod.host_ipc : g_pod.host_net;
		if (path && !shared)
			fds[i] = open(path, O_RDONLY | O_CLOEXEC);
	}
	pid_t pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 3; i++)
			if (fds[i] >= 0 && setns(fds[i], types[i]) < 0)
				_exit(100 + errno);
		_exit(fn(arg) < 0 ? 100 + errno : 0);
	}
	close_fds(fds, 3);
	if (pid < 0)
		return -errno;
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -(WIFEXITED(st) ? WEXITSTATUS(st) - 100 : EINTR);
}

static int set_hostname(void *arg)
{
	const char *h = arg;
	return sethostname(h, strlen(h));
}

static int write_sysctl(void *arg)
{
	const Podvisor__Agent__KeyValue *kv = arg;
	char path[300];
	snprintf(path, sizeof(path), "/proc/sys/%s", kv->key);
	for (char *p = path + 10; *p; p++)
		if (*p == '.')
			*p = '/';
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, kv->value, strlen(kv->value));
	close(fd);
	return n < 0 ? -1 : 0;
}

/* A sysctl in a namespace the pod shares with the node would change the node. */
static int sysctl_allowed(const char *key, pv_err_t **err)
{
	bool net = !strncmp(key, "net.", 4);
	bool ipc = !strncmp(key, "kernel.shm", 10) || !strncmp(key, "kernel.msg", 10) || !strncmp(key, "kernel.sem", 10) ||
		   !strncmp(key, "fs.mqueue.", 10);
	if ((net && g_pod.host_net) || (ipc && g_pod.host_ipc))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EPERM,
				  "sysctl %s: the pod shares the node's %s namespace; setting it would change the node",
				  key, net ? "network" : "IPC");
	if (!net && !ipc && strcmp(key, "kernel.hostname") && strcmp(key, "kernel.domainname"))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EPERM,
				  "sysctl %s is not namespaced: a host pod cannot set it without changing the node", key);
	return 0;
}

static char *resolv_text(const Podvisor__Agent__CreateSandboxRequest *req)
{
	char *conf = pv_xstrdup("");
	for (size_t i = 0; i < req->n_dns_servers; i++) {
		char *n = pv_xasprintf("%snameserver %s\n", conf, req->dns_servers[i]);
		free(conf);
		conf = n;
	}
	const struct {
		const char *key;
		char **v;
		size_t n;
	} lines[] = { { "search", req->dns_searches, req->n_dns_searches }, { "options", req->dns_options, req->n_dns_options } };
	for (size_t l = 0; l < PV_ARRAY_SIZE(lines); l++) {
		if (!lines[l].n)
			continue;
		char *n = pv_xasprintf("%s%s", conf, lines[l].key);
		free(conf);
		conf = n;
		for (size_t i = 0; i < lines[l].n; i++) {
			n = pv_xasprintf("%s %s", conf, lines[l].v[i]);
			free(conf);
			conf = n;
		}
		n = pv_xasprintf("%s\n", conf);
		free(conf);
		conf = n;
	}
	return conf;
}

int sandbox_create(const Podvisor__Agent__CreateSandboxRequest *req, pv_err_t **err)
{
	for (size_t i = 0; i < req->n_sysctls; i++)
		if (sysctl_allowed(req->sysctls[i]->key, err) < 0)
			return -1;
	if (*req->hostname) {
		free(g_pod.hostname);
		g_pod.hostname = pv_xstrdup(req->hostname);
	}
	if (hostagent_pod_holder(err) < 0)
		return -1;
	if (*req->hostname && !g_pod.host_net) {
		int r = in_pod_namespaces(set_hostname, req->hostname);
		if (r < 0)
			return pv_err_set(err, PV_INVALID_ARGUMENT, -r, "sethostname %s: %s", req->hostname, strerror(-r));
	}
	if (req->n_dns_servers || req->n_dns_searches || req->n_dns_options) {
		cleanup_free char *conf = resolv_text(req);
		cleanup_free char *path = pv_xasprintf("%s/resolv.conf", g_pod.state_dir);
		if (pv_write_file_atomic(path, conf, strlen(conf), 0644, err) < 0)
			return -1;
		free(g_pod.resolv_conf);
		g_pod.resolv_conf = steal_pointer(&path);
	}
	for (size_t i = 0; i < req->n_sysctls; i++) {
		int r = in_pod_namespaces(write_sysctl, req->sysctls[i]);
		if (r < 0)
			return pv_err_set(err, PV_INVALID_ARGUMENT, -r, "sysctl %s: %s", req->sysctls[i]->key, strerror(-r));
	}
	return 0;
}

/* ---- the guest's network requests: a host pod has no guest interface to configure ------ */

static int no_guest_net(pv_err_t **err)
{
	return pv_err_set(err, PV_UNIMPLEMENTED, ENOSYS,
			  "a host pod has no guest interfaces: its containers use the network namespace CNI made "
			  "(or the node's)");
}

int net_set_interface(const Podvisor__Agent__Interface *want, Podvisor__Agent__Interface **out, pv_err_t **err)
{
	return no_guest_net(err);
}

int net_list_interfaces(Podvisor__Agent__ListInterfacesResponse *out, pv_err_t **err)
{
	return no_guest_net(err);
}

int net_set_routes(const Podvisor__Agent__SetRoutesRequest *req, pv_err_t **err)
{
	return no_guest_net(err);
}

int net_list_routes(Podvisor__Agent__ListRoutesResponse *out, pv_err_t **err)
{
	return no_guest_net(err);
}

void net_free_interface(Podvisor__Agent__Interface *i)
{
}

void net_free_interfaces(Podvisor__Agent__ListInterfacesResponse *r)
{
}

void net_free_routes(Podvisor__Agent__ListRoutesResponse *r)
{
}

/* Refresh makes a clone of a VM template a pod of its own; a host pod is never a clone. */
int agent_refresh(const Podvisor__Agent__RefreshRequest *req, Podvisor__Agent__RefreshResponse *out,
		  pv_err_t **err)
{
	return pv_err_set(err, PV_UNIMPLEMENTED, ENOSYS, "a host pod is not a clone of a VM template: nothing to refresh");
}
