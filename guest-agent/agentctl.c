/*
 * podvisor-agentctl: debug/test client for the guest agent, over the unix
 * socket of QEMU's virtio-serial chardev. Built on common/agent_client.
 * Structured output is JSON on stdout; process output goes to stdout/stderr.
 */
#include "agent_client.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static int g_timeout_ms = 30000;

static void usage(void)
{
	fprintf(stderr,
		"usage: podvisor-agentctl -s SOCKET [-t TIMEOUT_MS] COMMAND ...\n"
		"  ping\n"
		"  sandbox [--hostname H] [--dns IP]... [--sysctl k=v]...\n"
		"  create ID (--dev PATH | --scsi H:C:T:L | --serial S) [--ro] [--tty] [--env K=V]...\n"
		"         [--cwd DIR] [--user UID:GID] [--hostname H] [--memory BYTES] [--pids N]\n"
		"         [--mount TYPE:SRC:DEST[:opt,opt]]... [--no-stdio] -- ARGS...\n"
		"  run    (same options as create: create + start + stream stdio + wait)\n"
		"  start ID            exec ID EXEC_ID [--tty] [--stdin] -- ARGS...\n"
		"  wait ID [EXEC_ID]   signal ID SIG [EXEC_ID]   stats ID   update ID --memory B --pids N\n"
		"  remove ID           resize ID EXEC_ID ROWS COLS\n"
		"  set-iface (--name N | --mac M) [--addr A/P]... [--mtu N] [--up] [--rename N]\n"
		"  list-ifaces         set-route DEST GATEWAY DEVICE   list-routes   shutdown\n"
		"  refresh [--mac M] [--hostname H] [--time-ns N] [--entropy-bytes N]\n");
	exit(2);
}

static void die_err(pv_err_t *err)
{
	fprintf(stderr, "podvisor-agentctl: %s (%s)\n", err ? err->msg : "failed",
		err ? pv_status_name(err->status) : "?");
	fflush(stdout);
	fflush(stderr);
	/* _exit: a CLI dying on an error does not unwind its allocations (no leak report). */
	_exit(err && err->status ? 100 + err->status : 1);
}

/* Print a JSON string (the values here are ids, names and addresses). */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static Podvisor__Agent__Response *call(pv_agent_t *a, Podvisor__Agent__Request *req)
{
	Podvisor__Agent__Response *resp = NULL;
	pv_err_t *err = NULL;
	if (pv_agent_call_ok(a, req, g_timeout_ms, &resp, &err) < 0)
		die_err(err);
	return resp;
}

/* ---- stdio plumbing ------------------------------------------------------------------- */

struct io {
	uint32_t out_id, err_id, in_id;
	int open_outputs;
	bool stdin_eof;
};

static size_t on_data(pv_agent_t *a, uint32_t stream, const uint8_t *buf, size_t len, void *opaque)
{
	struct io *io = opaque;
	int fd = stream == io->err_id ? 2 : 1;
	(void)pv_write_full(fd, buf, len);
	return len;
}

static void on_closed(pv_agent_t *a, uint32_t stream, bool reset, void *opaque)
{
	struct io *io = opaque;
	io->open_outputs--;
}

static const struct pv_agent_stream_ops io_ops = { .data = on_data, .closed = on_closed };

static void setup_io(pv_agent_t *a, struct io *io, Podvisor__Agent__Process *p, bool with_stdin)
{
	pv_err_t *err = NULL;
	memset(io, 0, sizeof(*io));
	io->out_id = pv_agent_stream_alloc(a);
	if (pv_agent_stream_open(a, io->out_id, &io_ops, io, &err) < 0)
		die_err(err);
	p->stdout_stream = io->out_id;
	io->open_outputs = 1;
	if (!p->terminal) {
		io->err_id = pv_agent_stream_alloc(a);
		if (pv_agent_stream_open(a, io->err_id, &io_ops, io, &err) < 0)
			die_err(err);
		p->stderr_stream = io->err_id;
		io->open_outputs++;
	}
	if (with_stdin) {
		io->in_id = pv_agent_stream_alloc(a);
		if (pv_agent_stream_open(a, io->in_id, NULL, NULL, &err) < 0)
			die_err(err);
		p->stdin_stream = io->in_id;
	}
}

struct waitres {
	bool done;
	Podvisor__Agent__WaitProcessResponse w;
	uint32_t status;
	char msg[256];
};

static void on_wait(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp, const pv_err_t *e,
		    void *opaque)
{
	struct waitres *wr = opaque;
	wr->done = true;
	if (!resp) {
		wr->status = PV_UNAVAILABLE;
		snprintf(wr->msg, sizeof(wr->msg), "%s", e ? e->msg : "channel closed");
	} else if (resp->status || resp->resp_case != PODVISOR__AGENT__RESPONSE__RESP_WAIT_PROCESS) {
		wr->status = resp->status ? resp->status : PV_INTERNAL;
		snprintf(wr->msg, sizeof(wr->msg), "%s", resp->message);
	} else {
		wr->w = *resp->wait_process;
	}
}

/* Pump stdin (if any) and the channel until the wait reply and all output arrived. */
static int stream_and_wait(pv_agent_t *a, struct io *io, const char *cid, const char *exec_id)
{
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	Podvisor__Agent__WaitProcessRequest w = PODVISOR__AGENT__WAIT_PROCESS_REQUEST__INIT;
	w.container_id = (char *)cid;
	w.exec_id = (char *)exec_id;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_WAIT_PROCESS;
	req.wait_process = &w;
	struct waitres wr = { 0 };
	pv_err_t *err = NULL;
	if (pv_agent_call_async(a, &req, on_wait, &wr, NULL, &err) < 0)
		die_err(err);
	bool in_open = io->in_id != 0;
	while (!wr.done || io->open_outputs > 0) {
		struct pollfd pfd[2] = { { .fd = pv_agent_fd(a), .events = POLLIN }, { .fd = 0, .events = POLLIN } };
		if (pv_agent_want_write(a))
			pfd[0].events |= POLLOUT;
		bool poll_stdin = in_open && pv_agent_stdin_credit(a, io->in_id) > 0;
		if (poll(pfd, poll_stdin ? 2 : 1, -1) < 0 && errno != EINTR)
			break;
		if (poll_stdin && (pfd[1].revents & (POLLIN | POLLHUP))) {
			char buf[16384];
			size_t n = pv_agent_stdin_credit(a, io->in_id);
			ssize_t got = read(0, buf, n < sizeof(buf) ? n : sizeof(buf));
			if (got <= 0) {
				pv_agent_stdin_close(a, io->in_id, NULL);
				in_open = false;
			} else if (pv_agent_stdin_write(a, io->in_id, buf, (size_t)got, &err) < 0) {
				die_err(err);
			}
		}
		if ((pfd[0].revents & POLLOUT) && pv_agent_flush(a, &err) < 0)
			die_err(err);
		if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) && pv_agent_on_readable(a, &err) < 0)
			die_err(err);
		if (wr.done && wr.status)
			break;
	}
	if (wr.status) {
		fprintf(stderr, "podvisor-agentctl: wait: %s\n", wr.msg);
		return 1;
	}
	fprintf(stderr, "podvisor-agentctl: exit_code=%d signal=%d oom_killed=%d\n", wr.w.exit_code, wr.w.signal,
		wr.w.oom_killed);
	return wr.w.exit_code;
}

/* ---- process / container options -------------------------------------------------------- */

struct spec_opts {
	Podvisor__Agent__CreateContainerRequest cc;
	Podvisor__Agent__Rootfs rootfs;
	Podvisor__Agent__Process proc;
	Podvisor__Agent__User user;
	Podvisor__Agent__Resources res;
	char *env[256];
	Podvisor__Agent__Mount mounts[32];
	Podvisor__Agent__Mount *mount_ptrs[32];
	char *mount_opts[32][16];
	bool no_stdio, with_stdin;
};

static void add_mount(struct spec_opts *o, char *arg)
{
	size_t i = o->cc.n_mounts;
	if (i >= 32)
		usage();
	Podvisor__Agent__Mount *m = &o->mounts[i];
	podvisor__agent__mount__init(m);
	m->type = strsep(&arg, ":");
	m->source = strsep(&arg, ":");
	m->destination = strsep(&arg, ":");
	if (!m->source || !m->destination)
		usage();
	if (arg) {
		size_t n = 0;
		for (char *opt = strtok(arg, ","); opt && n < 16; opt = strtok(NULL, ","))
			o->mount_opts[i][n++] = opt;
		m->options = o->mount_opts[i];
		m->n_options = n;
	}
	o->mount_ptrs[i] = m;
	o->cc.mounts = o->mount_ptrs;
	o->cc.n_mounts = i + 1;
}

/* Parse options after the id; ARGS after "--". Returns argv index after parsing. */
static void parse_spec(int argc, char **argv, struct spec_opts *o)
{
	podvisor__agent__create_container_request__init(&o->cc);
	podvisor__agent__rootfs__init(&o->rootfs);
	podvisor__agent__process__init(&o->proc);
	podvisor__agent__user__init(&o->user);
	podvisor__agent__resources__init(&o->res);
	o->cc.rootfs = &o->rootfs;
	o->cc.process = &o->proc;
	o->proc.user = &o->user;
	o->proc.env = o->env;
	static const struct option lo[] = {
		{ "dev", required_argument, 0, 'd' },	  { "scsi", required_argument, 0, 'S' },
		{ "serial", required_argument, 0, 'N' },  { "ro", no_argument, 0, 'r' },
		{ "tty", no_argument, 0, 'T' },		  { "env", required_argument, 0, 'e' },
		{ "cwd", required_argument, 0, 'w' },	  { "user", required_argument, 0, 'u' },
		{ "hostname", required_argument, 0, 'h' }, { "memory", required_argument, 0, 'm' },
		{ "pids", required_argument, 0, 'p' },	  { "mount", required_argument, 0, 'M' },
		{ "no-stdio", no_argument, 0, 'n' },	  { "stdin", no_argument, 0, 'i' },
		{ "wait-ms", required_argument, 0, 'W' }, { 0, 0, 0, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 'd': o->rootfs.device_path = optarg; break;
		case 'S': o->rootfs.scsi_address = optarg; break;
		case 'N': o->rootfs.serial = optarg; break;
		case 'r': o->cc.readonly_rootfs = true; break;
		case 'T': o->proc.terminal = true; break;
		case 'e':
			if (o->proc.n_env < 255)
				o->env[o->proc.n_env++] = optarg;
			break;
		case 'w': o->proc.cwd = optarg; break;
		case 'u': sscanf(optarg, "%u:%u", &o->user.uid, &o->user.gid); break;
		case 'h': o->cc.hostname = optarg; break;
		case 'm': o->res.memory_limit = strtoll(optarg, NULL, 10); o->cc.resources = &o->res; break;
		case 'p': o->res.pids_limit = strtoll(optarg, NULL, 10); o->cc.resources = &o->res; break;
		case 'M': add_mount(o, optarg); break;
		case 'n': o->no_stdio = true; break;
		case 'i': o->with_stdin = true; break;
		case 'W': o->rootfs.wait_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (optind >= argc)
		usage();
	o->proc.args = argv + optind;
	o->proc.n_args = (size_t)(argc - optind);
}

/* ---- commands ------------------------------------------------------------------------------ */

static int cmd_ping(pv_agent_t *a)
{
	Podvisor__Agent__PingResponse *p = NULL;
	pv_err_t *err = NULL;
	if (pv_agent_wait_ready(a, g_timeout_ms, &p, &err) < 0)
		die_err(err);
	printf("{\"agent_version\": ");
	json_str(p->agent_version);
	printf(", \"protocol_version\": %u, \"uptime_ns\": %" PRIu64 ", \"kernel_release\": ", p->protocol_version,
	       p->uptime_ns);
	json_str(p->kernel_release);
	printf("}\n");
	podvisor__agent__ping_response__free_unpacked(p, NULL);
	return 0;
}

static int cmd_create_or_run(pv_agent_t *a, int argc, char **argv, bool run)
{
	if (argc < 2)
		usage();
	struct spec_opts o;
	memset(&o, 0, sizeof(o));
	optind = 1;
	char *id = argv[1];
	parse_spec(argc - 1, argv + 1, &o);
	o.cc.container_id = id;
	struct io io;
	memset(&io, 0, sizeof(io));
	if (!o.no_stdio)
		setup_io(a, &io, &o.proc, o.with_stdin);
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_CREATE_CONTAINER;
	req.create_container = &o.cc;
	podvisor__agent__response__free_unpacked(call(a, &req), NULL);
	if (!run)
		return 0;
	Podvisor__Agent__StartContainerRequest st = PODVISOR__AGENT__START_CONTAINER_REQUEST__INIT;
	st.container_id = id;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_START_CONTAINER;
	req.start_container = &st;
	podvisor__agent__response__free_unpacked(call(a, &req), NULL);
	return stream_and_wait(a, &io, id, "");
}

static int cmd_exec(pv_agent_t *a, int argc, char **argv)
{
	if (argc < 3)
		usage();
	struct spec_opts o;
	memset(&o, 0, sizeof(o));
	optind = 1;
	parse_spec(argc - 2, argv + 2, &o);
	struct io io;
	setup_io(a, &io, &o.proc, o.with_stdin);
	Podvisor__Agent__ExecProcessRequest e = PODVISOR__AGENT__EXEC_PROCESS_REQUEST__INIT;
	e.container_id = argv[1];
	e.exec_id = argv[2];
	e.process = &o.proc;
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_EXEC_PROCESS;
	req.exec_process = &e;
	podvisor__agent__response__free_unpacked(call(a, &req), NULL);
	return stream_and_wait(a, &io, argv[1], argv[2]);
}

static int cmd_simple(pv_agent_t *a, int argc, char **argv)
{
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	const char *cmd = argv[0];
	const char *id = argc > 1 ? argv[1] : "";
	if (!strcmp(cmd, "start")) {
		Podvisor__Agent__StartContainerRequest m = PODVISOR__AGENT__START_CONTAINER_REQUEST__INIT;
		m.container_id = (char *)id;
		req.req_case = PODVISOR__AGENT__REQUEST__REQ_START_CONTAINER;
		req.start_container = &m;
		Podvisor__Agent__Response *r = call(a, &req);
		printf("{\"pid\": %u}\n", r->start_container ? r->start_container->pid : 0);
		podvisor__agent__response__free_unpacked(r, NULL);
		return 0;
	}
	if (!strcmp(cmd, "wait")) {
		struct io io = { 0 };
		return stream_and_wait(a, &io, id, argc > 2 ? argv[2] : "");
	}
	if (!strcmp(cmd, "signal")) {
		if (argc < 3)
			usage();
		Podvisor__Agent__SignalProcessRequest m = PODVISOR__AGENT__SIGNAL_PROCESS_REQUEST__INIT;
		m.container_id = (char *)id;
		m.signal = (uint32_t)atoi(argv[2]);
		m.exec_id = argc > 3 ? argv[3] : (char *)"";
		req.req_case = PODVISOR__AGENT__REQUEST__REQ_SIGNAL_PROCESS;
		req.signal_process = &m;
		podvisor__agent__response__free_unpacked(call(a, &req), NULL);
		return 0;
	}
	if (!strcmp(cmd, "remove")) {
		Podvisor__Agent__RemoveContainerRequest m = PODVISOR__AGENT__REMOVE_CONTAINER_REQUEST__INIT;
		m.container_id = (char *)id;
		req.req_case = PODVISOR__AGENT__REQUEST__REQ_REMOVE_CONTAINER;
		req.remove_container = &m;
		podvisor__agent__response__free_unpacked(call(a, &req), NULL);
		return 0;
	}
	if (!strcmp(cmd, "resize")) {
		if (argc < 5)
			usage();
		Podvisor__Agent__ResizeTtyRequest m = PODVISOR__AGENT__RESIZE_TTY_REQUEST__INIT;
		m.container_id = (char *)id;
		m.exec_id = argv[2];
		m.rows = (uint32_t)atoi(argv[3]);
		m.cols = (uint32_t)atoi(argv[4]);
		req.req_case = PODVISOR__AGENT__REQUEST__REQ_RESIZE_TTY;
		req.resize_tty = &m;
		podvisor__agent__response__free_unpacked(call(a, &req), NULL);
		return 0;
	}
	if (!strcmp(cmd, "stats")) {
		Podvisor__Agent__StatsContainerRequest m = PODVISOR__AGENT__STATS_CONTAINER_REQUEST__INIT;
		m.container_id = (char *)id;
		req.req_case = PODVISOR__AGENT__REQUEST__REQ_STATS_CONTAINER;
		req.stats_container = &m;
		Podvisor__Agent__Response *r = call(a, &req);
		Podvisor__Agent__StatsContainerResponse *s = r->stats_container;
		printf("{\"cpu_usage_usec\": %" PRIu64 ", \"memory_usage_bytes\": %" PRIu64
		       ", \"memory_limit_bytes\": %" PRIu64 ", \"pids_current\": %" PRIu64 ", \"pids_limit\": %" PRIu64
		       ", \"oom_kill_count\": %" PRIu64 ", \"rootfs_used_bytes\": %" PRIu64 "}\n",
		       s->cpu_usage_usec, s->memory_usage_bytes, s->memory_limit_bytes, s->pids_current, s->pids_limit,
		       s->oom_kill_count, s->rootfs_used_bytes);
		podvisor__agent__response__free_unpacked(r, NULL);
		return 0;
	}
	if (!strcmp(cmd, "shutdown")) {
		Podvisor__Agent__ShutdownRequest m = PODVISOR__AGENT__SHUTDOWN_REQUEST__INIT;
		req.req_case = PODVISOR__AGENT__REQUEST__REQ_SHUTDOWN;
		req.shutdown = &m;
		podvisor__agent__response__free_unpacked(call(a, &req), NULL);
		return 0;
	}
	usage();
	return 2;
}

static int cmd_update(pv_agent_t *a, int argc, char **argv)
{
	if (argc < 2)
		usage();
	Podvisor__Agent__Resources res = PODVISOR__AGENT__RESOURCES__INIT;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--memory"))
			res.memory_limit = strtoll(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--pids"))
			res.pids_limit = strtoll(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--cpu-quota"))
			res.cpu_quota_us = strtoll(argv[i + 1], NULL, 10);
		else
			usage();
	}
	Podvisor__Agent__UpdateResourcesRequest m = PODVISOR__AGENT__UPDATE_RESOURCES_REQUEST__INIT;
	m.container_id = argv[1];
	m.resources = &res;
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_UPDATE_RESOURCES;
	req.update_resources = &m;
	podvisor__agent__response__free_unpacked(call(a, &req), NULL);
	return 0;
}

static int cmd_sandbox(pv_agent_t *a, int argc, char **argv)
{
	Podvisor__Agent__CreateSandboxRequest m = PODVISOR__AGENT__CREATE_SANDBOX_REQUEST__INIT;
	char *dns[16];
	Podvisor__Agent__KeyValue kv[16], *kvp[16];
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--hostname")) {
			m.hostname = argv[i + 1];
		} else if (!strcmp(argv[i], "--dns") && m.n_dns_servers < 16) {
			dns[m.n_dns_servers++] = argv[i + 1];
		} else if (!strcmp(argv[i], "--sysctl") && m.n_sysctls < 16) {
			char *eq = strchr(argv[i + 1], '=');
			if (!eq)
				usage();
			*eq = 0;
			podvisor__agent__key_value__init(&kv[m.n_sysctls]);
			kv[m.n_sysctls].key = argv[i + 1];
			kv[m.n_sysctls].value = eq + 1;
			kvp[m.n_sysctls] = &kv[m.n_sysctls];
			m.n_sysctls++;
		} else {
			usage();
		}
	}
	m.dns_servers = dns;
	m.sysctls = kvp;
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_CREATE_SANDBOX;
	req.create_sandbox = &m;
	podvisor__agent__response__free_unpacked(call(a, &req), NULL);
	return 0;
}

/* refresh [--mac M] [--hostname H] [--time-ns N] [--entropy-bytes N]: what a clone gets. */
static int cmd_refresh(pv_agent_t *a, int argc, char **argv)
{
	Podvisor__Agent__RefreshRequest m = PODVISOR__AGENT__REFRESH_REQUEST__INIT;
	uint8_t seed[1024];
	size_t nseed = 64;
	m.realtime_ns = pv_now_realtime_ns();
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mac"))
			m.mac = argv[i + 1];
		else if (!strcmp(argv[i], "--hostname"))
			m.hostname = argv[i + 1];
		else if (!strcmp(argv[i], "--time-ns"))
			m.realtime_ns = strtoll(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--entropy-bytes"))
			nseed = strtoul(argv[i + 1], NULL, 10);
		else
			usage();
	}
	if (nseed > sizeof(seed) || (nseed && getrandom(seed, nseed, 0) != (ssize_t)nseed))
		usage();
	m.entropy.data = seed;
	m.entropy.len = nseed;
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_REFRESH;
	req.refresh = &m;
	Podvisor__Agent__Response *r = call(a, &req);
	printf("{\"clock_step_ns\": %" PRId64 ", \"entropy_bits\": %u}\n", r->refresh ? r->refresh->clock_step_ns : 0,
	       r->refresh ? r->refresh->entropy_bits : 0);
	podvisor__agent__response__free_unpacked(r, NULL);
	return 0;
}

static void print_iface(const Podvisor__Agent__Interface *i)
{
	printf("{\"name\": ");
	json_str(i->name);
	printf(", \"mac\": ");
	json_str(i->mac);
	printf(", \"mtu\": %u, \"up\": %s, \"index\": %u, \"addresses\": [", i->mtu, i->up ? "true" : "false",
	       i->index);
	for (size_t k = 0; k < i->n_addresses; k++) {
		printf("%s{\"address\": ", k ? ", " : "");
		json_str(i->addresses[k]->address);
		printf(", \"prefix_len\": %u}", i->addresses[k]->prefix_len);
	}
	printf("]}");
}

static int cmd_net(pv_agent_t *a, int argc, char **argv)
{
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	if (!strcmp(argv[0], "set-iface")) {
		Podvisor__Agent__Interface want = PODVISOR__AGENT__INTERFACE__INIT;
		Podvisor__Agent__IpAddress ips[16], *ipp[16];
		char *bufs[16];
		for (int i = 1; i < argc; i++) {
			if (!strcmp(argv[i], "--up")) {
				want.up = true;
			} else if (i + 1 >= argc) {
				usage();
			} else if (!strcmp(argv[i], "--name")) {
				want.name = argv[++i];
			} else if (!strcmp(argv[i], "--mac")) {
				want.mac = argv[++i];
			} else if (!strcmp(argv[i], "--mtu")) {
				want.mtu = (uint32_t)atoi(argv[++i]);
			} else if (!strcmp(argv[i], "--rename")) {
				want.new_name = argv[++i];
			} else if (!strcmp(argv[i], "--addr") && want.n_addresses < 16) {
				size_t k = want.n_addresses++;
				podvisor__agent__ip_address__init(&ips[k]);
				bufs[k] = argv[++i];
				char *slash = strchr(bufs[k], '/');
				if (!slash)
					usage();
				*slash = 0;
				ips[k].address = bufs[k];
				ips[k].prefix_len = (uint32_t)atoi(slash + 1);
				ipp[k] = &ips[k];
			} else {
				usage();
			}
		}
		want.addresses = ipp;
		Podvisor__Agent__SetInterfaceRequest m = PODVISOR__AGENT__SET_INTERFACE_REQUEST__INIT;
		m.interface = &want;
		req.req_case = PODVISOR__AGENT__REQUEST__REQ_SET_INTERFACE;
		req.set_interface = &m;
		Podvisor__Agent__Response *r = call(a, &req);
		print_iface(r->interface);
		printf("\n");
		podvisor__agent__response__free_unpacked(r, NULL);
		return 0;
	}
	if (!strcmp(argv[0], "list-ifaces")) {
		Podvisor__Agent__ListInterfacesRequest m = PODVISOR__AGENT__LIST_INTERFACES_REQUEST__INIT;
		req.req_case = PODVISOR__AGENT__REQUEST__REQ_LIST_INTERFACES;
		req.list_interfaces = &m;
		Podvisor__Agent__Response *r = call(a, &req);
		printf("[");
		for (size_t k = 0; k < r->list_interfaces->n_interfaces; k++) {
			printf(k ? ", " : "");
			print_iface(r->list_interfaces->interfaces[k]);
		}
		printf("]\n");
		podvisor__agent__response__free_unpacked(r, NULL);
		return 0;
	}
	if (!strcmp(argv[0], "set-route")) {
		if (argc < 4)
			usage();
		Podvisor__Agent__Route rt = PODVISOR__AGENT__ROUTE__INIT, *rtp = &rt;
		rt.destination = argv[1];
		rt.gateway = argv[2];
		rt.device = argv[3];
		Podvisor__Agent__SetRoutesRequest m = PODVISOR__AGENT__SET_ROUTES_REQUEST__INIT;
		m.routes = &rtp;
		m.n_routes = 1;
		req.req_case = PODVISOR__AGENT__REQUEST__REQ_SET_ROUTES;
		req.set_routes = &m;
		podvisor__agent__response__free_unpacked(call(a, &req), NULL);
		return 0;
	}
	if (!strcmp(argv[0], "list-routes")) {
		Podvisor__Agent__ListRoutesRequest m = PODVISOR__AGENT__LIST_ROUTES_REQUEST__INIT;
		req.req_case = PODVISOR__AGENT__REQUEST__REQ_LIST_ROUTES;
		req.list_routes = &m;
		Podvisor__Agent__Response *r = call(a, &req);
		printf("[");
		for (size_t k = 0; k < r->list_routes->n_routes; k++) {
			Podvisor__Agent__Route *x = r->list_routes->routes[k];
			printf("%s{\"destination\": ", k ? ", " : "");
			json_str(x->destination);
			printf(", \"gateway\": ");
			json_str(x->gateway);
			printf(", \"device\": ");
			json_str(x->device);
			printf(", \"metric\": %u, \"scope\": %u}", x->metric, x->scope);
		}
		printf("]\n");
		podvisor__agent__response__free_unpacked(r, NULL);
		return 0;
	}
	usage();
	return 2;
}

int main(int argc, char **argv)
{
	const char *sock = NULL;
	int c;
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt(argc, argv, "+s:t:")) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 't': g_timeout_ms = atoi(optarg); break;
		default: usage();
		}
	}
	if (!sock || optind >= argc)
		usage();
	argc -= optind;
	argv += optind;
	pv_agent_t *a = NULL;
	pv_err_t *err = NULL;
	if (pv_agent_connect_unix(sock, g_timeout_ms, &a, &err) < 0)
		die_err(err);
	const char *cmd = argv[0];
	int rc;
	if (!strcmp(cmd, "ping"))
		rc = cmd_ping(a);
	else if (!strcmp(cmd, "create") || !strcmp(cmd, "run"))
		rc = cmd_create_or_run(a, argc, argv, !strcmp(cmd, "run"));
	else if (!strcmp(cmd, "exec"))
		rc = cmd_exec(a, argc, argv);
	else if (!strcmp(cmd, "sandbox"))
		rc = cmd_sandbox(a, argc, argv);
	else if (!strcmp(cmd, "update"))
		rc = cmd_update(a, argc, argv);
	else if (!strcmp(cmd, "refresh"))
		rc = cmd_refresh(a, argc, argv);
	else if (!strcmp(cmd, "set-iface") || !strcmp(cmd, "list-ifaces") || !strcmp(cmd, "set-route") ||
		 !strcmp(cmd, "list-routes"))
		rc = cmd_net(a, argc, argv);
	else
		rc = cmd_simple(a, argc, argv);
	/* Push out the last credit/close frames before leaving. */
	while (pv_agent_want_write(a) && pv_agent_flush(a, NULL) == 1)
		;
	pv_agent_free(a);
	return rc;
}
