/* podvisor-shimctl: a debug CLI for one shim, through shim/client. Prints JSON. */
#include "client.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: podvisor-shimctl spawn --state-dir DIR --kernel K --initramfs I [--accel A] [--vcpus N]\n"
		"                        [--memory-mib N] [--boot-timeout-ms N] [--tcg-tb-size MIB] [--shim PATH]\n"
		"       podvisor-shimctl -s DIR status | state | shutdown [TIMEOUT_MS] | watch SINCE [TIMEOUT_MS]\n"
		"       podvisor-shimctl -s DIR create ID IMAGE_EXT4 LOG_PATH [--tty] -- ARGS...\n"
		"       podvisor-shimctl -s DIR start|wait|remove|reopen-log|stats ID\n"
		"       podvisor-shimctl -s DIR exec ID [--timeout MS] -- ARGS...\n"
		"       podvisor-shimctl -s DIR signal ID SIGNAL\n"
		"       podvisor-shimctl -s DIR add-disk ID PATH [FORMAT] | remove-disk ID\n");
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	printf("%s\n", s);
	free(s);
	json_decref(j);
}

static int fail(pv_err_t *err)
{
	print_json(json_pack("{s:{s:i,s:s,s:s}}", "error", "status", err->status, "code", pv_status_name(err->status),
			     "message", err->msg));
	pv_err_free(err);
	return 1;
}

static json_t *ctr_json(const Podvisor__Shim__ContainerStatus *c)
{
	return json_pack("{s:s,s:s,s:i,s:i,s:b,s:I,s:I,s:I,s:s,s:s,s:s,s:i,s:s}", "id", c->id, "state",
			 shim_client_ctr_state_name(c->state), "exit_code", c->exit_code, "signal", c->signal,
			 "oom_killed", c->oom_killed, "created_at_ns", (json_int_t)c->created_at_ns, "started_at_ns",
			 (json_int_t)c->started_at_ns, "finished_at_ns", (json_int_t)c->finished_at_ns, "reason",
			 c->reason, "message", c->message, "log_path", c->log_path, "pid", (int)c->pid, "disk", c->disk);
}

static json_t *status_json(const Podvisor__Shim__StatusResponse *st)
{
	json_t *ctrs = json_array();
	for (size_t i = 0; i < st->n_containers; i++)
		json_array_append_new(ctrs, ctr_json(st->containers[i]));
	return json_pack("{s:I,s:s,s:s,s:i,s:i,s:I,s:I,s:s,s:s,s:o,s:i,s:I,s:s,s:s}", "seq", (json_int_t)st->seq,
			 "state", shim_client_pod_state_name(st->state), "reason", st->reason, "shim_pid",
			 (int)st->shim_pid, "vmm_pid", (int)st->vmm_pid, "created_at_ns", (json_int_t)st->created_at_ns,
			 "ready_at_ns", (json_int_t)st->ready_at_ns, "accel", st->accel, "agent_version",
			 st->agent_version, "containers", ctrs, "vcpus", (int)st->vcpus, "memory_mib",
			 (json_int_t)st->memory_mib, "vm_start", st->vm_start, "vm_start_error", st->vm_start_error);
}

static int cmd_spawn(int argc, char **argv)
{
	struct shim_spawn_opts o = { 0 };
	for (int i = 0; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--state-dir"))
			o.state_dir = v;
		else if (!strcmp(k, "--kernel"))
			o.kernel = v;
		else if (!strcmp(k, "--initramfs"))
			o.initramfs = v;
		else if (!strcmp(k, "--accel"))
			o.accel = v;
		else if (!strcmp(k, "--vcpus"))
			o.vcpus = (unsigned)atoi(v);
		else if (!strcmp(k, "--memory-mib"))
			o.memory_mib = strtoull(v, NULL, 10);
		else if (!strcmp(k, "--boot-timeout-ms"))
			o.boot_timeout_ms = atoi(v);
		else if (!strcmp(k, "--stop-timeout-ms"))
			o.stop_timeout_ms = atoi(v);
		else if (!strcmp(k, "--tcg-tb-size"))
			o.tcg_tb_size_mib = (unsigned)atoi(v);
		else if (!strcmp(k, "--shim"))
			o.shim_binary = v;
		else if (!strcmp(k, "--name"))
			o.name = v;
		else if (!strcmp(k, "--log-level"))
			o.log_level = v;
		else if (!strcmp(k, "--kernel-args"))
			o.kernel_args = v;
		else if (!strcmp(k, "--qemu"))
			o.qemu = v;
		else if (!strcmp(k, "--machine"))
			o.machine = v;
		else if (!strcmp(k, "--netns"))
			o.netns = v;
		else if (!strcmp(k, "--veth"))
			o.veth = v;
		else if (!strcmp(k, "--heartbeat-ms"))
			o.heartbeat_ms = atoi(v);
		else if (!strcmp(k, "--tap"))
			o.tap = v;
		else if (!strcmp(k, "--share-dir"))
			o.share_dir = v;
		else if (!strcmp(k, "--template"))
			o.template_dir = v;
		else if (!strcmp(k, "--make-template"))
			o.make_template = v;
		else if (!strcmp(k, "--template-net"))
			o.template_net = atoi(v);
		else {
			usage(stderr);
			return 2;
		}
	}
	pid_t pid = 0;
	pv_err_t *err = NULL;
	if (shim_client_spawn(&o, &pid, &err) < 0)
		return fail(err);
	print_json(json_pack("{s:i}", "shim_pid", (int)pid));
	return 0;
}

/* args after "--" into a Process. */
static Podvisor__Agent__Process *process_from(int argc, char **argv, bool tty)
{
	Podvisor__Agent__Process *p = pv_xcalloc(1, sizeof(*p));
	podvisor__agent__process__init(p);
	p->n_args = (size_t)argc;
	p->args = argv;
	static char *env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" };
	p->n_env = 1;
	p->env = env;
	p->cwd = "/";
	p->terminal = tty;
	return p;
}

static int find_dashdash(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--"))
			return i;
	return -1;
}

static int cmd_create(struct shim_client *c, int argc, char **argv)
{
	pv_err_t *err = NULL;
	Podvisor__Shim__Response *resp = NULL;
	int dd = find_dashdash(argc, argv);
	if (dd < 0 || dd + 1 >= argc) {
		usage(stderr);
		return 2;
	}
	bool tty = false;
	for (int i = 3; i < dd; i++)
		tty |= !strcmp(argv[i], "--tty");
	Podvisor__Agent__CreateContainerRequest spec = PODVISOR__AGENT__CREATE_CONTAINER_REQUEST__INIT;
	spec.process = process_from(argc - dd - 1, argv + dd + 1, tty);
	Podvisor__Shim__CreateContainerRequest r = PODVISOR__SHIM__CREATE_CONTAINER_REQUEST__INIT;
	r.container_id = argv[0];
	r.image_disk = argv[1];
	r.log_path = argv[2];
	r.spec = &spec;
	int rc = shim_client_create_container(c, &r, &resp, &err);
	free(spec.process);
	if (rc < 0)
		return fail(err);
	print_json(ctr_json(resp->container));
	shim_client_free_response(resp);
	return 0;
}

static int cmd_exec(struct shim_client *c, int argc, char **argv)
{
	pv_err_t *err = NULL;
	Podvisor__Shim__Response *resp = NULL;
	int dd = find_dashdash(argc, argv);
	if (dd < 0 || dd + 1 >= argc) {
		usage(stderr);
		return 2;
	}
	Podvisor__Shim__ExecRequest r = PODVISOR__SHIM__EXEC_REQUEST__INIT;
	r.container_id = argv[0];
	for (int i = 1; i + 1 < dd; i++)
		if (!strcmp(argv[i], "--timeout"))
			r.timeout_ms = (uint32_t)atoi(argv[i + 1]);
	r.process = process_from(argc - dd - 1, argv + dd + 1, false);
	int rc = shim_client_exec(c, &r, &resp, &err);
	free(r.process);
	if (rc < 0)
		return fail(err);
	Podvisor__Shim__ExecResponse *e = resp->exec;
	print_json(json_pack("{s:i,s:i,s:s%,s:s%,s:b}", "exit_code", e->exit_code, "signal", e->signal, "stdout",
			     (const char *)e->stdout.data ? (const char *)e->stdout.data : "", e->stdout.len,
			     "stderr", (const char *)e->stderr.data ? (const char *)e->stderr.data : "",
			     e->stderr.len, "timed_out", e->timed_out));
	shim_client_free_response(resp);
	return 0;
}

static int run(struct shim_client *c, const char *cmd, int argc, char **argv)
{
	pv_err_t *err = NULL;
	Podvisor__Shim__Response *resp = NULL;
	if (!strcmp(cmd, "status")) {
		if (shim_client_status(c, &resp, &err) < 0)
			return fail(err);
		print_json(status_json(resp->status_info));
	} else if (!strcmp(cmd, "create") && argc >= 3) {
		return cmd_create(c, argc, argv);
	} else if (!strcmp(cmd, "start") && argc == 1) {
		if (shim_client_start_container(c, argv[0], &resp, &err) < 0)
			return fail(err);
		print_json(ctr_json(resp->container));
	} else if (!strcmp(cmd, "wait") && argc >= 1) {
		if (shim_client_wait(c, argv[0], argc > 1 ? atoi(argv[1]) : -1, &resp, &err) < 0)
			return fail(err);
		print_json(ctr_json(resp->container));
	} else if (!strcmp(cmd, "exec") && argc >= 3) {
		return cmd_exec(c, argc, argv);
	} else if (!strcmp(cmd, "signal") && argc == 2) {
		if (shim_client_signal(c, argv[0], atoi(argv[1]), 0, &err) < 0)
			return fail(err);
		print_json(json_object());
	} else if (!strcmp(cmd, "remove") && argc == 1) {
		if (shim_client_remove_container(c, argv[0], &err) < 0)
			return fail(err);
		print_json(json_object());
	} else if (!strcmp(cmd, "reopen-log") && argc == 1) {
		if (shim_client_reopen_log(c, argv[0], &err) < 0)
			return fail(err);
		print_json(json_object());
	} else if (!strcmp(cmd, "stats") && argc == 1) {
		if (shim_client_stats(c, argv[0], &resp, &err) < 0)
			return fail(err);
		Podvisor__Agent__StatsContainerResponse *st = resp->stats;
		print_json(json_pack("{s:I,s:I,s:I}", "cpu_usage_usec", (json_int_t)st->cpu_usage_usec,
				     "memory_usage_bytes", (json_int_t)st->memory_usage_bytes, "pids_current",
				     (json_int_t)st->pids_current));
	} else if (!strcmp(cmd, "add-disk") && argc >= 2) {
		Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
		Podvisor__Shim__AddDiskRequest ad = PODVISOR__SHIM__ADD_DISK_REQUEST__INIT;
		ad.id = argv[0];
		ad.path = argv[1];
		ad.format = argc > 2 ? argv[2] : "";
		req.req_case = PODVISOR__SHIM__REQUEST__REQ_ADD_DISK;
		req.add_disk = &ad;
		if (shim_client_call(c, &req, 60000, &resp, &err) < 0)
			return fail(err);
		print_json(json_pack("{s:s,s:i}", "scsi_address", resp->add_disk->scsi_address, "scsi_id",
				     (int)resp->add_disk->scsi_id));
	} else if (!strcmp(cmd, "remove-disk") && argc == 1) {
		Podvisor__Shim__Request req = PODVISOR__SHIM__REQUEST__INIT;
		Podvisor__Shim__RemoveDiskRequest rd = PODVISOR__SHIM__REMOVE_DISK_REQUEST__INIT;
		rd.id = argv[0];
		req.req_case = PODVISOR__SHIM__REQUEST__REQ_REMOVE_DISK;
		req.remove_disk = &rd;
		if (shim_client_call(c, &req, 60000, NULL, &err) < 0)
			return fail(err);
		print_json(json_object());
	} else if (!strcmp(cmd, "watch") && argc >= 1) {
		if (shim_client_watch(c, strtoull(argv[0], NULL, 10), argc > 1 ? atoi(argv[1]) : -1, &resp, &err) < 0)
			return fail(err);
		print_json(status_json(resp->status_info));
	} else if (!strcmp(cmd, "shutdown")) {
		if (shim_client_shutdown(c, argc > 0 ? atoi(argv[0]) : 0, &err) < 0)
			return fail(err);
		print_json(json_object());
	} else {
		usage(stderr);
		return 2;
	}
	shim_client_free_response(resp);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "spawn"))
		return cmd_spawn(argc - 2, argv + 2);
	if (argc < 4 || strcmp(argv[1], "-s")) {
		usage(stderr);
		return 2;
	}
	const char *dir = argv[2], *cmd = argv[3];
	pv_err_t *err = NULL;
	if (!strcmp(cmd, "state")) {
		Podvisor__Shim__StatusResponse *st = NULL;
		if (shim_client_read_state(dir, &st, &err) < 0)
			return fail(err);
		print_json(status_json(st));
		podvisor__shim__status_response__free_unpacked(st, NULL);
		return 0;
	}
	struct shim_client *c = NULL;
	if (shim_client_connect(dir, 5000, &c, &err) < 0)
		return fail(err);
	int rc = run(c, cmd, argc - 4, argv + 4);
	shim_client_unref(c);
	return rc;
}
