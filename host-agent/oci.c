/*
 * The OCI runtime spec (config.json) of a host pod's container, from the agent's
 * CreateContainerRequest and the pod's namespace modes; and the process spec of an exec.
 * Pure: no I/O, so a unit test can hold it to what runc needs.
 */
#include "hostagent.h"
#include "cleanup.h"
#include "guest_abi.h"
#include "validate.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* What runc and containerd give a container that asks for no capabilities. */
static const char *const default_caps[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
};

/* The default masked and read-only paths of an unprivileged container (containerd's). */
static const char *const masked_paths[] = {
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
	"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static json_t *strv(char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

/* The capabilities of the list the node can grant (runc fails on the others). */
static json_t *caps(const struct hostagent_pod *pod, char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		int c = validate_cap_name(v[i]);
		if (c >= 0 && c < 64 && (pod->cap_bounding & (1ull << c)))
			json_array_append_new(a, json_string(v[i]));
	}
	return a;
}

static json_t *caps_json(const struct hostagent_pod *pod, const Podvisor__Agent__Capabilities *c)
{
	if (!c) {
		json_t *d = caps(pod, (char *const *)default_caps, PV_ARRAY_SIZE(default_caps));
		return json_pack("{s:O,s:O,s:o,s:[],s:[]}", "bounding", d, "effective", d, "permitted", d, "inheritable",
				 "ambient");
	}
	return json_pack("{s:o,s:o,s:o,s:o,s:o}", "bounding", caps(pod, c->bounding, c->n_bounding), "effective",
			 caps(pod, c->effective, c->n_effective), "permitted", caps(pod, c->permitted, c->n_permitted),
			 "inheritable", caps(pod, c->inheritable, c->n_inheritable), "ambient",
			 caps(pod, c->ambient, c->n_ambient));
}

static json_t *user_json(const Podvisor__Agent__User *u)
{
	json_t *j = json_pack("{s:I,s:I}", "uid", (json_int_t)(u ? u->uid : 0), "gid", (json_int_t)(u ? u->gid : 0));
	if (u && u->n_additional_gids) {
		json_t *g = json_array();
		for (size_t i = 0; i < u->n_additional_gids; i++)
			json_array_append_new(g, json_integer(u->additional_gids[i]));
		json_object_set_new(j, "additionalGids", g);
	}
	if (u && (u->umask || u->has_umask))
		json_object_set_new(j, "umask", json_integer(u->umask));
	return j;
}

json_t *hostagent_oci_process(const struct hostagent_pod *pod, const Podvisor__Agent__Process *p, pv_err_t **err)
{
	if (!p || !p->n_args) {
		pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "process.args is required");
		return NULL;
	}
	json_t *env = strv(p->env, p->n_env);
	bool has_path = false;
	for (size_t i = 0; i < p->n_env; i++)
		has_path |= !strncmp(p->env[i], "PATH=", 5);
	if (!has_path)
		json_array_append_new(env, json_string(DEFAULT_PATH));
	json_t *proc = json_pack("{s:b,s:o,s:o,s:o,s:s,s:o,s:b}", "terminal", p->terminal, "user", user_json(p->user),
				 "args", strv(p->args, p->n_args), "env", env, "cwd", p->cwd && *p->cwd ? p->cwd : "/",
				 "capabilities", caps_json(pod, p->capabilities), "noNewPrivileges", p->no_new_privileges);
	if (p->terminal && p->console_size && p->console_size->rows)
		json_object_set_new(proc, "consoleSize", json_pack("{s:i,s:i}", "height", (int)p->console_size->rows,
								       "width", (int)p->console_size->cols));
	if (p->n_rlimits) {
		json_t *rl = json_array();
		for (size_t i = 0; i < p->n_rlimits; i++)
			json_array_append_new(rl, json_pack("{s:s,s:I,s:I}", "type", p->rlimits[i]->type, "hard",
							    (json_int_t)p->rlimits[i]->hard, "soft",
							    (json_int_t)p->rlimits[i]->soft));
		json_object_set_new(proc, "rlimits", rl);
	}
	/* Lowering it needs CAP_SYS_RESOURCE, which this node may not grant: keep ours then. */
	if (p->has_oom_score_adj)
		json_object_set_new(proc, "oomScoreAdj",
				    json_integer(p->oom_score_adj < pod->min_oom_score_adj ? pod->min_oom_score_adj
											    : p->oom_score_adj));
	return proc;
}

/* ---- mounts ------------------------------------------------------------------------- */

static json_t *mount_json(const char *dst, const char *type, const char *src, const char *const *opts, size_t n)
{
	return json_pack("{s:s,s:s,s:s,s:o}", "destination", dst, "type", type, "source", src, "options",
			 strv((char *const *)opts, n));
}

static bool has_dest(const Podvisor__Agent__CreateContainerRequest *spec, const char *dst)
{
	for (size_t i = 0; i < spec->n_mounts; i++)
		if (!strcmp(spec->mounts[i]->destination, dst))
			return true;
	return false;
}

#define OPTS(...) (const char *const[]){ __VA_ARGS__ }, PV_ARRAY_SIZE(((const char *const[]){ __VA_ARGS__ }))

/* /proc, /dev, /sys and friends, as runc's own template has them, unless the spec mounts
 * something on the same path. */
static void default_mounts(const struct hostagent_pod *pod, const Podvisor__Agent__CreateContainerRequest *spec,
			   json_t *m)
{
	struct {
		const char *dst;
		json_t *j;
	} d[] = {
		{ "/proc", mount_json("/proc", "proc", "proc", OPTS("nosuid", "noexec", "nodev")) },
		{ "/dev", mount_json("/dev", "tmpfs", "tmpfs", OPTS("nosuid", "strictatime", "mode=755", "size=65536k")) },
		{ "/dev/pts", mount_json("/dev/pts", "devpts", "devpts",
					 OPTS("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")) },
		/* hostIPC: the host's POSIX shared memory too, as containerd gives it. */
		{ "/dev/shm", pod->host_ipc ? mount_json("/dev/shm", "bind", "/dev/shm", OPTS("rbind", "nosuid", "nodev"))
					    : mount_json("/dev/shm", "tmpfs", "shm",
							 OPTS("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")) },
		{ "/dev/mqueue", mount_json("/dev/mqueue", "mqueue", "mqueue", OPTS("nosuid", "noexec", "nodev")) },
		{ "/sys", mount_json("/sys", "sysfs", "sysfs",
				     spec->privileged ? (const char *const[]){ "nosuid", "noexec", "nodev" }
						      : (const char *const[]){ "nosuid", "noexec", "nodev", "ro" },
				     spec->privileged ? 3 : 4) },
		{ "/sys/fs/cgroup", mount_json("/sys/fs/cgroup", "cgroup", "cgroup",
					       OPTS("nosuid", "noexec", "nodev", "relatime", "ro")) },
	};
	for (size_t i = 0; i < PV_ARRAY_SIZE(d); i++) {
		if (has_dest(spec, d[i].dst))
			json_decref(d[i].j);
		else
			json_array_append_new(m, d[i].j);
	}
}

/* A spec mount, its source translated from the agent's guest paths to host ones. */
static json_t *spec_mount(const struct hostagent_pod *pod, const Podvisor__Agent__Mount *sm)
{
	const char *type = sm->type && *sm->type ? sm->type : "bind";
	char *src = hostagent_pod_host_path(sm->source && *sm->source ? sm->source : type);
	json_t *opts = strv(sm->options, sm->n_options);
	if (!strcmp(type, "bind")) {
		bool bind = false;
		for (size_t i = 0; i < sm->n_options; i++)
			bind |= !strcmp(sm->options[i], "bind") || !strcmp(sm->options[i], "rbind");
		if (!bind)
			json_array_insert_new(opts, 0, json_string("rbind"));
	}
	json_t *j = json_pack("{s:s,s:s,s:s,s:o}", "destination", sm->destination, "type", type, "source", src,
			      "options", opts);
	free(src);
	return j;
}

/* The root's propagation: rshared when a mount is Bidirectional, rslave when one is
 * HostToContainer (what containerd asks of runc), so those mounts can propagate. */
static const char *rootfs_propagation(const Podvisor__Agent__CreateContainerRequest *spec)
{
	const char *prop = NULL;
	for (size_t i = 0; i < spec->n_mounts; i++) {
		for (size_t k = 0; k < spec->mounts[i]->n_options; k++) {
			const char *o = spec->mounts[i]->options[k];
			if (!strcmp(o, "rshared") || !strcmp(o, "shared"))
				return "rshared";
			if (!strcmp(o, "rslave") || !strcmp(o, "slave"))
				prop = "rslave";
		}
	}
	return prop;
}

/* ---- namespaces and resources --------------------------------------------------------- */

static void add_ns(json_t *a, const char *type, const char *ns_name, bool host, bool shared)
{
	if (host)
		return;
	char *path = shared ? hostagent_pod_ns_path(ns_name) : NULL;
	json_t *ns = json_pack("{s:s}", "type", type);
	if (path)
		json_object_set_new(ns, "path", json_string(path));
	free(path);
	json_array_append_new(a, ns);
}

static json_t *namespaces_json(const struct hostagent_pod *pod)
{
	json_t *a = json_array();
	json_array_append_new(a, json_pack("{s:s}", "type", "mount"));
	add_ns(a, "pid", "pid", pod->host_pid, pod->pod_pid);
	add_ns(a, "ipc", "ipc", pod->host_ipc, true);
	/* A hostNetwork pod has the node's hostname too (Kubernetes: UTS goes with the network). */
	add_ns(a, "uts", "uts", pod->host_net, true);
	if (!pod->host_net) {
		json_t *ns = json_pack("{s:s}", "type", "network");
		char *path = pod->netns ? pv_xstrdup(pod->netns) : hostagent_pod_ns_path("net");
		if (path)
			json_object_set_new(ns, "path", json_string(path));
		free(path);
		json_array_append_new(a, ns);
	}
	return a;
}

/* cgroup v2 weight (1..10000) back to v1 shares (2..262144): the inverse of kubelet's map. */
static uint64_t weight_to_shares(uint64_t w)
{
	if (w < 1)
		w = 1;
	if (w > 10000)
		w = 10000;
	return 2 + ((w - 1) * 262142) / 9999;
}

json_t *hostagent_oci_resources(const struct hostagent_pod *pod, const Podvisor__Agent__Resources *r)
{
	json_t *res = json_object();
	if (!r)
		return res;
	json_t *cpu = json_object(), *mem = json_object();
	if (r->cpu_quota_us > 0) {
		json_object_set_new(cpu, "quota", json_integer(r->cpu_quota_us));
		json_object_set_new(cpu, "period", json_integer((json_int_t)(r->cpu_period_us ? r->cpu_period_us : 100000)));
	}
	if (r->cpu_weight)
		json_object_set_new(cpu, "shares", json_integer((json_int_t)weight_to_shares(r->cpu_weight)));
	if (r->cpuset_cpus && *r->cpuset_cpus)
		json_object_set_new(cpu, "cpus", json_string(r->cpuset_cpus));
	if (r->cpuset_mems && *r->cpuset_mems)
		json_object_set_new(cpu, "mems", json_string(r->cpuset_mems));
	if (r->memory_limit > 0)
		json_object_set_new(mem, "limit", json_integer(r->memory_limit));
	/* v1 swap limits need swap accounting; without it runc would refuse the container. */
	if (r->memory_swap_limit > 0 && (pod->cgroup_v2 || pod->memsw))
		json_object_set_new(mem, "swap", json_integer(r->memory_swap_limit));
	if (r->memory_reservation > 0)
		json_object_set_new(mem, "reservation", json_integer(r->memory_reservation));
	if (json_object_size(cpu))
		json_object_set(res, "cpu", cpu);
	if (json_object_size(mem))
		json_object_set(res, "memory", mem);
	json_decref(cpu);
	json_decref(mem);
	if (r->pids_limit > 0)
		json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)r->pids_limit));
	if (r->n_unified && pod->cgroup_v2) {
		json_t *u = json_object();
		for (size_t i = 0; i < r->n_unified; i++)
			json_object_set_new(u, r->unified[i]->key, json_string(r->unified[i]->value));
		json_object_set_new(res, "unified", u);
	}
	return res;
}

char *hostagent_oci_cgroup(const struct hostagent_pod *pod, const char *ctr_id)
{
	return pv_xasprintf("%s/%s", pod->cgroup_parent, ctr_id);
}

/* The agent protocol's Seccomp holds the OCI names already: linux.seccomp for runc. */
static json_t *seccomp_json(const Podvisor__Agent__Seccomp *sc)
{
	json_t *o = json_pack("{s:s,s:o,s:o}", "defaultAction", sc->default_action, "architectures",
			      strv(sc->architectures, sc->n_architectures), "flags", strv(sc->flags, sc->n_flags));
	if (sc->has_default_errno)
		json_object_set_new(o, "defaultErrnoRet", json_integer(sc->default_errno));
	json_t *rules = json_array();
	for (size_t i = 0; i < sc->n_syscalls; i++) {
		const Podvisor__Agent__SeccompRule *r = sc->syscalls[i];
		json_t *rule = json_pack("{s:o,s:s}", "names", strv(r->names, r->n_names), "action", r->action);
		if (r->has_errno_ret)
			json_object_set_new(rule, "errnoRet", json_integer(r->errno_ret));
		json_t *args = json_array();
		for (size_t k = 0; k < r->n_args; k++) {
			const Podvisor__Agent__SeccompArg *a = r->args[k];
			json_array_append_new(args, json_pack("{s:I,s:I,s:I,s:s}", "index", (json_int_t)a->index, "value",
							      (json_int_t)a->value, "valueTwo", (json_int_t)a->value_two,
							      "op", a->op));
		}
		json_object_set_new(rule, "args", args);
		json_array_append_new(rules, rule);
	}
	json_object_set_new(o, "syscalls", rules);
	return o;
}

static json_t *linux_json(const struct hostagent_pod *pod, const char *cgroup,
			  const Podvisor__Agent__CreateContainerRequest *spec)
{
	json_t *lx = json_pack("{s:o,s:s,s:o}", "namespaces", namespaces_json(pod), "cgroupsPath", cgroup, "resources",
			       hostagent_oci_resources(pod, spec->resources));
	if (spec->privileged) {
		/* Every device of the node, as a privileged container gets under runc (cgroup rule). */
		json_object_set_new(json_object_get(lx, "resources"), "devices",
				    json_pack("[{s:b,s:s}]", "allow", 1, "access", "rwm"));
	} else if (spec->n_masked_paths || spec->n_readonly_paths) {
		/* podvisord sends the container's lists (its security context's, or the defaults). */
		json_object_set_new(lx, "maskedPaths", strv(spec->masked_paths, spec->n_masked_paths));
		json_object_set_new(lx, "readonlyPaths", strv(spec->readonly_paths, spec->n_readonly_paths));
	} else {
		json_object_set_new(lx, "maskedPaths", strv((char *const *)masked_paths, PV_ARRAY_SIZE(masked_paths)));
		json_object_set_new(lx, "readonlyPaths",
				    strv((char *const *)readonly_paths, PV_ARRAY_SIZE(readonly_paths)));
	}
	if (spec->seccomp)
		json_object_set_new(lx, "seccomp", seccomp_json(spec->seccomp));
	const char *prop = rootfs_propagation(spec);
	if (prop)
		json_object_set_new(lx, "rootfsPropagation", json_string(prop));
	return lx;
}

json_t *hostagent_oci_config(const struct hostagent_pod *pod, const char *rootfs, const char *cgroup,
			     const Podvisor__Agent__CreateContainerRequest *spec, pv_err_t **err)
{
	json_t *proc = hostagent_oci_process(pod, spec->process, err);
	if (!proc)
		return NULL;
	json_t *mounts = json_array();
	default_mounts(pod, spec, mounts);
	for (size_t i = 0; i < spec->n_mounts; i++)
		json_array_append_new(mounts, spec_mount(pod, spec->mounts[i]));
	json_t *cfg = json_pack("{s:s,s:o,s:{s:s,s:b},s:o,s:o}", "ociVersion", "1.0.2", "process", proc, "root", "path",
				rootfs, "readonly", spec->readonly_rootfs, "mounts", mounts, "linux",
				linux_json(pod, cgroup, spec));
	/* runc sets the hostname only in a UTS namespace of the pod's own. */
	const char *h = spec->hostname && *spec->hostname ? spec->hostname : pod->hostname;
	if (!pod->host_net && h && *h)
		json_object_set_new(cfg, "hostname", json_string(h));
	return cfg;
}
