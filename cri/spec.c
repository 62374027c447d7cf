#include "spec.h"
#include "cleanup.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_GROUPS 64

/* Linux 6.1's capabilities, in number order. */
static const char *const all_caps[] = {
	"CAP_CHOWN",	       "CAP_DAC_OVERRIDE",   "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID",	       "CAP_KILL",	     "CAP_SETGID",	    "CAP_SETUID",
	"CAP_SETPCAP",	       "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN",       "CAP_NET_RAW",	     "CAP_IPC_LOCK",	    "CAP_IPC_OWNER",
	"CAP_SYS_MODULE",      "CAP_SYS_RAWIO",	     "CAP_SYS_CHROOT",	    "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",       "CAP_SYS_ADMIN",	     "CAP_SYS_BOOT",	    "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE",    "CAP_SYS_TIME",	     "CAP_SYS_TTY_CONFIG",  "CAP_MKNOD",
	"CAP_LEASE",	       "CAP_AUDIT_WRITE",    "CAP_AUDIT_CONTROL",   "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE",    "CAP_MAC_ADMIN",	     "CAP_SYSLOG",	    "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND",   "CAP_AUDIT_READ",     "CAP_PERFMON",	    "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
};

/* The set containerd and CRI-O give a non-privileged container. */
static const char *const default_caps[] = {
	"CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",		  "CAP_FOWNER",	    "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID",	  "CAP_SETUID",		  "CAP_SETFCAP",    "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",	  "CAP_AUDIT_WRITE",
};

static size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

/* ---- argv --------------------------------------------------------------- */

static int build_args(struct cri_arena *a, const Runtime__V1__ContainerConfig *cfg, const struct spec_image *img,
		      Podvisor__Agent__Process *p, pv_err_t **err)
{
	/* Kubernetes' rule: command replaces Entrypoint (and drops Cmd); args replace Cmd. */
	char *const *first = cfg->n_command ? cfg->command : img->entrypoint;
	size_t n_first = cfg->n_command ? cfg->n_command : strv_len(img->entrypoint);
	char *const *second = cfg->n_args ? cfg->args : (cfg->n_command ? NULL : img->cmd);
	size_t n_second = cfg->n_args ? cfg->n_args : (cfg->n_command ? 0 : strv_len(img->cmd));
	size_t n = n_first + n_second;
	if (n == 0)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "no command to run: config.command, config.args and the image's Entrypoint and "
				  "Cmd are all empty");
	p->args = cri_arena_alloc(a, n * sizeof(char *));
	for (size_t i = 0; i < n_first; i++)
		p->args[p->n_args++] = cri_arena_strdup(a, first[i]);
	for (size_t i = 0; i < n_second; i++)
		p->args[p->n_args++] = cri_arena_strdup(a, second[i]);
	if (!*p->args[0])
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "the command's first word is empty");
	return 0;
}

/* ---- environment -------------------------------------------------------- */

static size_t key_len(const char *kv)
{
	const char *eq = strchr(kv, '=');
	return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Set key=value, replacing an earlier entry for the same key. */
static void env_set(struct cri_arena *a, Podvisor__Agent__Process *p, const char *kv)
{
	size_t klen = key_len(kv);
	for (size_t i = 0; i < p->n_env; i++) {
		if (key_len(p->env[i]) == klen && !strncmp(p->env[i], kv, klen)) {
			p->env[i] = cri_arena_strdup(a, kv);
			return;
		}
	}
	p->env[p->n_env++] = cri_arena_strdup(a, kv);
}

static int build_env(struct cri_arena *a, const Runtime__V1__ContainerConfig *cfg, const struct spec_image *img,
		     const char *hostname, Podvisor__Agent__Process *p, pv_err_t **err)
{
	size_t cap = strv_len(img->env) + cfg->n_envs + 3;
	p->env = cri_arena_alloc(a, cap * sizeof(char *));
	env_set(a, p, DEFAULT_PATH);
	if (hostname && *hostname) {
		cleanup_free char *h = pv_xasprintf("HOSTNAME=%s", hostname);
		env_set(a, p, h);
	}
	for (size_t i = 0; img->env && img->env[i]; i++)
		env_set(a, p, img->env[i]);
	for (size_t i = 0; i < cfg->n_envs; i++) {
		const Runtime__V1__KeyValue *kv = cfg->envs[i];
		if (!kv->key || !*kv->key || strchr(kv->key, '='))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "config.envs[%zu]: invalid name \"%s\"", i,
					  PV_ECHO(kv->key));
		cleanup_free char *s = pv_xasprintf("%s=%s", kv->key, kv->value ? kv->value : "");
		env_set(a, p, s);
	}
	return 0;
}

/* ---- user --------------------------------------------------------------- */

static int parse_id(const char *s, uint32_t *out)
{
	if (!*s || !isdigit((unsigned char)*s))
		return -1;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || errno || v > 0xfffffffeUL)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* Resolve "user[:group]" where either part is a number or a name. */
static int resolve_user_spec(const char *spec, const struct spec_ids *ids, uint32_t *uid, uint32_t *gid,
			     char **name_out, pv_err_t **err)
{
	cleanup_free char *copy = pv_xstrdup(spec);
	char *group = strchr(copy, ':');
	if (group)
		*group++ = '\0';
	uint32_t u = 0, g = 0;
	if (parse_id(copy, &u) == 0) {
		/* A numeric user without a passwd entry runs with gid 0, as runc does. */
		uint32_t pg;
		const char *nm = ids && ids->name_of ? ids->name_of(ids->opaque, u) : NULL;
		if (nm && ids->user(ids->opaque, nm, &u, &pg) == 0) {
			g = pg;
			*name_out = pv_xstrdup(nm);
		}
	} else if (!ids || !ids->user || ids->user(ids->opaque, copy, &u, &g) < 0) {
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENOENT, "user \"%s\" not found in the image's /etc/passwd",
				  PV_ECHO(copy));
	} else {
		*name_out = pv_xstrdup(copy);
	}
	if (group && *group) {
		if (parse_id(group, &g) < 0 && (!ids || !ids->group || ids->group(ids->opaque, group, &g) < 0))
			return pv_err_set(err, PV_INVALID_ARGUMENT, ENOENT,
					  "group \"%s\" not found in the image's /etc/group", group);
	}
	*uid = u;
	*gid = g;
	return 0;
}

static int build_user(struct cri_arena *a, const Runtime__V1__ContainerConfig *cfg, const struct spec_image *img,
		      const struct spec_ids *ids, Podvisor__Agent__Process *p, pv_err_t **err)
{
	const Runtime__V1__LinuxContainerSecurityContext *sc = cfg->linux ? cfg->linux->security_context : NULL;
	uint32_t uid = 0, gid = 0;
	cleanup_free char *name = NULL;
	if (sc && sc->run_as_user) {
		if (sc->run_as_user->value < 0 || sc->run_as_user->value > 0xfffffffeLL)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.security_context.run_as_user: %lld is out of range",
					  (long long)sc->run_as_user->value);
		cleanup_free char *s = pv_xasprintf("%lld", (long long)sc->run_as_user->value);
		if (resolve_user_spec(s, ids, &uid, &gid, &name, err) < 0)
			return -1;
	} else if (sc && sc->run_as_username && *sc->run_as_username) {
		if (resolve_user_spec(sc->run_as_username, ids, &uid, &gid, &name, err) < 0) {
			pv_err_prefix(err, "linux.security_context.run_as_username");
			return -1;
		}
	} else if (img->user && *img->user) {
		if (resolve_user_spec(img->user, ids, &uid, &gid, &name, err) < 0) {
			pv_err_prefix(err, "image config User");
			return -1;
		}
	}
	if (sc && sc->run_as_group) {
		/* As in containerd: a group alone would pair with whatever user the image has. */
		if (!sc->run_as_user && !(sc->run_as_username && *sc->run_as_username))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.security_context.run_as_group needs run_as_user or run_as_username");
		if (sc->run_as_group->value < 0 || sc->run_as_group->value > 0xfffffffeLL)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.security_context.run_as_group: %lld is out of range",
					  (long long)sc->run_as_group->value);
		gid = (uint32_t)sc->run_as_group->value;
	}
	Podvisor__Agent__User *u = cri_arena_alloc(a, sizeof(*u));
	podvisor__agent__user__init(u);
	u->uid = uid;
	u->gid = gid;
	uint32_t groups[MAX_GROUPS];
	size_t n = 0;
	if (name && ids && ids->groups_of)
		n = ids->groups_of(ids->opaque, name, gid, groups, MAX_GROUPS);
	size_t extra = sc ? sc->n_supplemental_groups : 0;
	u->additional_gids = cri_arena_alloc(a, (n + extra) * sizeof(uint32_t));
	for (size_t i = 0; i < n; i++)
		u->additional_gids[u->n_additional_gids++] = groups[i];
	for (size_t i = 0; i < extra; i++) {
		int64_t g = sc->supplemental_groups[i];
		if (g < 0 || g > 0xfffffffeLL)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.security_context.supplemental_groups[%zu]: %lld is out of range", i,
					  (long long)g);
		u->additional_gids[u->n_additional_gids++] = (uint32_t)g;
	}
	p->user = u;
	return 0;
}

/* ---- capabilities ------------------------------------------------------- */

static const char *cap_canonical(const char *name)
{
	const char *bare = !strncasecmp(name, "CAP_", 4) ? name + 4 : name;
	for (size_t i = 0; i < PV_ARRAY_SIZE(all_caps); i++)
		if (!strcasecmp(all_caps[i] + 4, bare))
			return all_caps[i];
	return NULL;
}

static int build_caps(struct cri_arena *a, const Runtime__V1__LinuxContainerSecurityContext *sc,
		      Podvisor__Agent__Process *p, pv_err_t **err)
{
	int have[PV_ARRAY_SIZE(all_caps)] = { 0 };
	const Runtime__V1__Capability *c = sc ? sc->capabilities : NULL;
	if (sc && sc->privileged) {
		for (size_t i = 0; i < PV_ARRAY_SIZE(all_caps); i++)
			have[i] = 1;
	} else {
		for (size_t i = 0; i < PV_ARRAY_SIZE(default_caps); i++)
			for (size_t j = 0; j < PV_ARRAY_SIZE(all_caps); j++)
				if (!strcmp(default_caps[i], all_caps[j]))
					have[j] = 1;
	}
	/* Drops first, then adds, with "ALL" meaning every capability (containerd's order). */
	for (size_t k = 0; c && k < c->n_drop_capabilities; k++) {
		const char *n = c->drop_capabilities[k];
		if (!strcasecmp(n, "ALL")) {
			memset(have, 0, sizeof(have));
			continue;
		}
		const char *canon = cap_canonical(n);
		if (!canon)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.security_context.capabilities.drop_capabilities: unknown capability \"%s\"", n);
		for (size_t j = 0; j < PV_ARRAY_SIZE(all_caps); j++)
			if (all_caps[j] == canon)
				have[j] = 0;
	}
	for (size_t k = 0; c && k < c->n_add_capabilities; k++) {
		const char *n = c->add_capabilities[k];
		if (!strcasecmp(n, "ALL")) {
			for (size_t j = 0; j < PV_ARRAY_SIZE(all_caps); j++)
				have[j] = 1;
			continue;
		}
		const char *canon = cap_canonical(n);
		if (!canon)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.security_context.capabilities.add_capabilities: unknown capability \"%s\"", n);
		for (size_t j = 0; j < PV_ARRAY_SIZE(all_caps); j++)
			if (all_caps[j] == canon)
				have[j] = 1;
	}
	Podvisor__Agent__Capabilities *caps = cri_arena_alloc(a, sizeof(*caps));
	podvisor__agent__capabilities__init(caps);
	size_t n = 0;
	for (size_t j = 0; j < PV_ARRAY_SIZE(all_caps); j++)
		n += have[j];
	char **set = cri_arena_alloc(a, (n ? n : 1) * sizeof(char *));
	n = 0;
	for (size_t j = 0; j < PV_ARRAY_SIZE(all_caps); j++)
		if (have[j])
			set[n++] = (char *)all_caps[j];
	caps->bounding = caps->effective = caps->permitted = set;
	caps->n_bounding = caps->n_effective = caps->n_permitted = n;
	if (c && c->n_add_ambient_capabilities) {
		caps->ambient = cri_arena_alloc(a, c->n_add_ambient_capabilities * sizeof(char *));
		caps->inheritable = caps->ambient;
		for (size_t k = 0; k < c->n_add_ambient_capabilities; k++) {
			const char *canon = cap_canonical(c->add_ambient_capabilities[k]);
			if (!canon)
				return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
						  "linux.security_context.capabilities.add_ambient_capabilities: unknown "
						  "capability \"%s\"", c->add_ambient_capabilities[k]);
			caps->ambient[caps->n_ambient++] = (char *)canon;
		}
		caps->n_inheritable = caps->n_ambient;
	}
	p->capabilities = caps;
	return 0;
}

/* ---- process ------------------------------------------------------------ */

int spec_build_process(struct cri_arena *a, const Runtime__V1__ContainerConfig *cfg, const struct spec_image *img,
		       const struct spec_ids *ids, const char *hostname, Podvisor__Agent__Process **out,
		       pv_err_t **err)
{
	Podvisor__Agent__Process *p = cri_arena_alloc(a, sizeof(*p));
	podvisor__agent__process__init(p);
	const Runtime__V1__LinuxContainerSecurityContext *sc = cfg->linux ? cfg->linux->security_context : NULL;
	if (build_args(a, cfg, img, p, err) < 0 || build_env(a, cfg, img, hostname, p, err) < 0 ||
	    build_user(a, cfg, img, ids, p, err) < 0 || build_caps(a, sc, p, err) < 0)
		return -1;
	const char *cwd = cfg->working_dir && *cfg->working_dir ? cfg->working_dir
			  : img->workdir && *img->workdir	 ? img->workdir
								 : "/";
	if (cwd[0] != '/')
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "working directory \"%s\" is not absolute", PV_ECHO(cwd));
	p->cwd = cri_arena_strdup(a, cwd);
	p->no_new_privileges = sc && sc->no_new_privs;
	p->terminal = cfg->tty;
	const Runtime__V1__LinuxContainerResources *r = cfg->linux ? cfg->linux->resources : NULL;
	if (r && r->oom_score_adj) {
		if (r->oom_score_adj < -1000 || r->oom_score_adj > 1000)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.resources.oom_score_adj: %lld is outside -1000..1000",
					  (long long)r->oom_score_adj);
		p->oom_score_adj = (int32_t)r->oom_score_adj;
		p->has_oom_score_adj = 1;
	}
	*out = p;
	return 0;
}

/* ---- resources ---------------------------------------------------------- */

uint64_t spec_shares_to_weight(int64_t shares)
{
	if (shares <= 0)
		return 0;
	if (shares < 2)
		shares = 2;
	if (shares > 262144)
		shares = 262144;
	return 1 + (uint64_t)((shares - 2) * 9999) / 262142;
}

int spec_build_resources(struct cri_arena *a, const Runtime__V1__LinuxContainerResources *r,
			 Podvisor__Agent__Resources **out, pv_err_t **err)
{
	Podvisor__Agent__Resources *res = cri_arena_alloc(a, sizeof(*res));
	podvisor__agent__resources__init(res);
	if (r) {
		if (r->cpu_period < 0 || r->cpu_quota < -1 || r->cpu_shares < 0 || r->memory_limit_in_bytes < 0)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.resources: cpu_period, cpu_quota, cpu_shares and memory_limit_in_bytes "
					  "must not be negative");
		if (r->cpu_period && (r->cpu_period < 1000 || r->cpu_period > 1000000))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.resources.cpu_period: %lld us is outside 1000..1000000",
					  (long long)r->cpu_period);
		if (r->memory_limit_in_bytes && r->memory_limit_in_bytes < 4 * 1024 * 1024)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "linux.resources.memory_limit_in_bytes: %lld is below the 4 MiB minimum",
					  (long long)r->memory_limit_in_bytes);
		res->cpu_quota_us = r->cpu_quota > 0 ? r->cpu_quota : 0;
		res->cpu_period_us = (uint64_t)r->cpu_period;
		res->cpu_weight = spec_shares_to_weight(r->cpu_shares);
		res->memory_limit = r->memory_limit_in_bytes;
		res->memory_swap_limit = r->memory_swap_limit_in_bytes;
		res->cpuset_cpus = cri_arena_strdup(a, r->cpuset_cpus);
		res->cpuset_mems = cri_arena_strdup(a, r->cpuset_mems);
		if (r->n_unified) {
			res->unified = cri_arena_alloc(a, r->n_unified * sizeof(*res->unified));
			for (size_t i = 0; i < r->n_unified; i++) {
				Podvisor__Agent__KeyValue *kv = cri_arena_alloc(a, sizeof(*kv));
				podvisor__agent__key_value__init(kv);
				kv->key = cri_arena_strdup(a, r->unified[i]->key);
				kv->value = cri_arena_strdup(a, r->unified[i]->value);
				if (strchr(kv->key, '/') || !strchr(kv->key, '.'))
					return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
							  "linux.resources.unified: \"%s\" is not a cgroup file name", kv->key);
				res->unified[res->n_unified++] = kv;
			}
		}
	}
	*out = res;
	return 0;
}

/* ---- hostname ----------------------------------------------------------- */

const char *spec_pod_hostname(const Runtime__V1__PodSandboxConfig *pod, char *buf, size_t len)
{
	if (pod && pod->hostname && *pod->hostname)
		return pod->hostname;
	if (len == 0 || gethostname(buf, len) < 0)
		return "localhost";
	buf[len - 1] = '\0';
	return buf;
}

/* ---- signals ------------------------------------------------------------ */

static const struct {
	const char *name;
	int num;
} signals[] = {
	{ "ABRT", SIGABRT }, { "ALRM", SIGALRM }, { "BUS", SIGBUS },	   { "CHLD", SIGCHLD }, { "CLD", SIGCHLD },
	{ "CONT", SIGCONT }, { "FPE", SIGFPE },	  { "HUP", SIGHUP },	   { "ILL", SIGILL },	{ "INT", SIGINT },
	{ "IO", SIGIO },     { "IOT", SIGIOT },	  { "KILL", SIGKILL },	   { "PIPE", SIGPIPE }, { "POLL", SIGPOLL },
	{ "PROF", SIGPROF }, { "PWR", SIGPWR },	  { "QUIT", SIGQUIT },	   { "SEGV", SIGSEGV }, { "STKFLT", SIGSTKFLT },
	{ "STOP", SIGSTOP }, { "SYS", SIGSYS },	  { "TERM", SIGTERM },	   { "TRAP", SIGTRAP }, { "TSTP", SIGTSTP },
	{ "TTIN", SIGTTIN }, { "TTOU", SIGTTOU }, { "URG", SIGURG },	   { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
	{ "VTALRM", SIGVTALRM }, { "WINCH", SIGWINCH }, { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ },
};

int spec_signal_from_name(const char *name)
{
	if (!name || !*name)
		return -1;
	uint32_t n;
	if (parse_id(name, &n) == 0)
		return n >= 1 && n <= 64 ? (int)n : -1;
	const char *bare = !strncasecmp(name, "SIG", 3) ? name + 3 : name;
	/* CRI's enum spells SIGRTMIN+1 as SIGRTMINPLUS1 and SIGRTMAX-1 as SIGRTMAXMINUS1. */
	char spelled[32];
	if (!strncasecmp(bare, "RTMINPLUS", 9) || !strncasecmp(bare, "RTMAXMINUS", 10)) {
		int plus = !strncasecmp(bare, "RTMINPLUS", 9);
		snprintf(spelled, sizeof(spelled), "%s%c%s", plus ? "RTMIN" : "RTMAX", plus ? '+' : '-',
			 bare + (plus ? 9 : 10));
		bare = spelled;
	}
	for (size_t i = 0; i < PV_ARRAY_SIZE(signals); i++)
		if (!strcasecmp(signals[i].name, bare))
			return signals[i].num;
	if (!strncasecmp(bare, "RTMIN", 5)) {
		if (!bare[5])
			return SIGRTMIN;
		if (bare[5] == '+' && parse_id(bare + 6, &n) == 0 && SIGRTMIN + (int)n <= SIGRTMAX)
			return SIGRTMIN + (int)n;
	}
	if (!strncasecmp(bare, "RTMAX", 5)) {
		if (!bare[5])
			return SIGRTMAX;
		if (bare[5] == '-' && parse_id(bare + 6, &n) == 0 && SIGRTMAX - (int)n >= SIGRTMIN)
			return SIGRTMAX - (int)n;
	}
	return -1;
}

int spec_stop_signal(const Runtime__V1__ContainerConfig *cfg, const char *image_stop_signal)
{
	if (cfg && cfg->stop_signal != RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT) {
		const ProtobufCEnumValue *v =
			protobuf_c_enum_descriptor_get_value(&runtime__v1__signal__descriptor, cfg->stop_signal);
		int s = v ? spec_signal_from_name(v->name) : -1;
		if (s > 0)
			return s;
	}
	int s = spec_signal_from_name(image_stop_signal);
	return s > 0 ? s : SIGTERM;
}
