/* Request validation: everything the host sends is untrusted input to PID 1. */
#include "validate.h"
#include "frame.h"
#include "seccomp_names.h"
#include "sysctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#define MAX_PATH 4095
#define MAX_ARGS 4096

int validate_id(const char *id, const char *what, pv_err_t **err)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > 64)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s must be 1..64 characters", what);
	if (!strcmp(id, ".") || !strcmp(id, ".."))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s may not be '%s'", what, id);
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "%s has a character outside [A-Za-z0-9_.-]", what);
	}
	return 0;
}

int validate_abs_path(const char *path, const char *what, pv_err_t **err)
{
	size_t n = path ? strlen(path) : 0;
	if (n == 0 || path[0] != '/')
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s must be an absolute path", what);
	if (n > MAX_PATH)
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENAMETOOLONG, "%s is too long", what);
	if (!pv_utf8_valid(path, n))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EILSEQ, "%s is not valid UTF-8", what);
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchrnul(p, '/');
		size_t len = (size_t)(e - p);
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "%s may not contain '.' or '..' components", what);
		p = e;
	}
	return 0;
}

int validate_scsi_address(const char *addr, pv_err_t **err)
{
	unsigned h, c, t, l;
	int end = 0;
	if (!addr || sscanf(addr, "%u:%u:%u:%u%n", &h, &c, &t, &l, &end) != 4 || addr[end] != 0 ||
	    strspn(addr, "0123456789:") != strlen(addr) || strlen(addr) > 48)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "scsi_address must be H:C:T:L");
	return 0;
}

static const struct {
	const char *name;
	int res;
} rlimits[] = {
	{ "RLIMIT_CPU", RLIMIT_CPU },	     { "RLIMIT_FSIZE", RLIMIT_FSIZE },
	{ "RLIMIT_DATA", RLIMIT_DATA },	     { "RLIMIT_STACK", RLIMIT_STACK },
	{ "RLIMIT_CORE", RLIMIT_CORE },	     { "RLIMIT_RSS", RLIMIT_RSS },
	{ "RLIMIT_NPROC", RLIMIT_NPROC },    { "RLIMIT_NOFILE", RLIMIT_NOFILE },
	{ "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK }, { "RLIMIT_AS", RLIMIT_AS },
	{ "RLIMIT_LOCKS", RLIMIT_LOCKS },    { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING },
	{ "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE }, { "RLIMIT_NICE", RLIMIT_NICE },
	{ "RLIMIT_RTPRIO", RLIMIT_RTPRIO },  { "RLIMIT_RTTIME", RLIMIT_RTTIME },
};

int validate_rlimit_name(const char *name)
{
	for (size_t i = 0; i < sizeof(rlimits) / sizeof(rlimits[0]); i++)
		if (!strcmp(rlimits[i].name, name))
			return rlimits[i].res;
	return -1;
}

/* Index = capability number (linux/capability.h). */
static const char *const cap_names[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};

int validate_cap_name(const char *name)
{
	for (size_t i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++)
		if (!strcmp(cap_names[i], name))
			return (int)i;
	return -1;
}

static int check_caps(char **v, size_t n, pv_err_t **err)
{
	for (size_t i = 0; i < n; i++)
		if (validate_cap_name(v[i]) < 0)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "unknown capability '%.64s'", v[i]);
	return 0;
}

static int validate_process(const Podvisor__Agent__Process *p, pv_err_t **err)
{
	if (!p)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "process is required");
	if (p->n_args == 0 || p->n_args > MAX_ARGS || !p->args[0][0])
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "process.args must name a program");
	for (size_t i = 0; i < p->n_env; i++)
		if (!strchr(p->env[i], '=') || p->env[i][0] == '=')
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "env entry %zu is not KEY=value", i);
	if (p->cwd && *p->cwd && validate_abs_path(p->cwd, "process.cwd", err) < 0)
		return -EINVAL;
	for (size_t i = 0; i < p->n_rlimits; i++) {
		if (validate_rlimit_name(p->rlimits[i]->type) < 0)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "unknown rlimit '%.64s'",
					  p->rlimits[i]->type);
		if (p->rlimits[i]->soft > p->rlimits[i]->hard)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "rlimit %s: soft > hard",
					  p->rlimits[i]->type);
	}
	if (p->user && p->user->n_additional_gids > 65536)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "too many additional gids");
	const Podvisor__Agent__Capabilities *c = p->capabilities;
	if (c && (check_caps(c->bounding, c->n_bounding, err) < 0 ||
		  check_caps(c->effective, c->n_effective, err) < 0 ||
		  check_caps(c->permitted, c->n_permitted, err) < 0 ||
		  check_caps(c->inheritable, c->n_inheritable, err) < 0 ||
		  check_caps(c->ambient, c->n_ambient, err) < 0))
		return -EINVAL;
	uint32_t s[3] = { p->stdin_stream, p->stdout_stream, p->terminal ? 0 : p->stderr_stream };
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			if (s[i] && s[i] == s[j])
				return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
						  "stdio streams must be distinct (stream %u used twice)", s[i]);
	return 0;
}

static int check_scmp_action(const char *action, const char *what, pv_err_t **err)
{
	int a = pv_seccomp_action(action);
	if (a < 0)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: unknown action \"%.64s\"", what, action);
	if (a == PV_SCMP_ACT_NOTIFY)
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENOTSUP,
				  "%s: SCMP_ACT_NOTIFY needs a seccomp agent, which podvisor does not run", what);
	return 0;
}

static int check_scmp_rule(const Podvisor__Agent__SeccompRule *r, size_t i, pv_err_t **err)
{
	char what[48];
	snprintf(what, sizeof(what), "seccomp syscalls[%zu]", i);
	if (check_scmp_action(r->action, what, err) < 0)
		return -EINVAL;
	if (r->n_names == 0 || r->n_names > 1024)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: names must list 1..1024 syscalls", what);
	for (size_t k = 0; k < r->n_names; k++)
		if (!pv_seccomp_name_ok(r->names[k]))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: \"%.64s\" is not a syscall name", what,
					  r->names[k]);
	if ((r->has_errno_ret && r->errno_ret > 4095) || r->n_args > 6)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: errnoRet above 4095 or more than 6 args", what);
	for (size_t k = 0; k < r->n_args; k++)
		if (r->args[k]->index > 5 || pv_seccomp_op(r->args[k]->op) < 0)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "%s: args[%zu] needs an index 0..5 and a known operator (\"%.32s\")", what, k,
					  r->args[k]->op);
	return 0;
}

int validate_seccomp(const Podvisor__Agent__Seccomp *s, pv_err_t **err)
{
	if (check_scmp_action(s->default_action, "seccomp defaultAction", err) < 0)
		return -EINVAL;
	if (s->has_default_errno && s->default_errno > 4095)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "seccomp defaultErrnoRet above 4095");
	for (size_t i = 0; i < s->n_architectures; i++)
		if (pv_seccomp_arch(s->architectures[i]) < 0)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "seccomp: unknown architecture \"%.64s\"",
					  s->architectures[i]);
	for (size_t i = 0; i < s->n_flags; i++)
		if (!pv_seccomp_flag(s->flags[i]))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "seccomp: unknown flag \"%.64s\"", s->flags[i]);
	if (s->n_syscalls > 4096)
		return pv_err_set(err, PV_INVALID_ARGUMENT, E2BIG, "seccomp: more than 4096 rules");
	for (size_t i = 0; i < s->n_syscalls; i++)
		if (check_scmp_rule(s->syscalls[i], i, err) < 0)
			return -EINVAL;
	return 0;
}

static int check_paths(char **paths, size_t n, const char *what, pv_err_t **err)
{
	if (n > 256)
		return pv_err_set(err, PV_INVALID_ARGUMENT, E2BIG, "too many %s", what);
	for (size_t i = 0; i < n; i++)
		if (validate_abs_path(paths[i], what, err) < 0)
			return -EINVAL;
	return 0;
}

static int validate_security(const Podvisor__Agent__CreateContainerRequest *r, pv_err_t **err)
{
	if (check_paths(r->masked_paths, r->n_masked_paths, "masked_paths", err) < 0 ||
	    check_paths(r->readonly_paths, r->n_readonly_paths, "readonly_paths", err) < 0)
		return -EINVAL;
	if (r->seccomp && validate_seccomp(r->seccomp, err) < 0)
		return -EINVAL;
	if (r->pid_namespace == PODVISOR__AGENT__PID_NAMESPACE__PID_TARGET)
		return validate_id(r->pid_target, "pid_target", err);
	if (r->pid_namespace != PODVISOR__AGENT__PID_NAMESPACE__PID_CONTAINER &&
	    r->pid_namespace != PODVISOR__AGENT__PID_NAMESPACE__PID_POD)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "unknown pid_namespace %d", (int)r->pid_namespace);
	return 0;
}

static int validate_create(const Podvisor__Agent__CreateContainerRequest *r, pv_err_t **err)
{
	if (validate_id(r->container_id, "container_id", err) < 0)
		return -EINVAL;
	const Podvisor__Agent__Rootfs *fs = r->rootfs;
	if (!fs)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "rootfs is required");
	if (fs->path && *fs->path) {
		if (validate_abs_path(fs->path, "rootfs.path", err) < 0)
			return -EINVAL;
	} else if (fs->device_path && *fs->device_path) {
		if (validate_abs_path(fs->device_path, "rootfs.device_path", err) < 0)
			return -EINVAL;
		if (strncmp(fs->device_path, "/dev/", 5) != 0)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "rootfs.device_path must be under /dev");
	} else if (fs->scsi_address && *fs->scsi_address) {
		if (validate_scsi_address(fs->scsi_address, err) < 0)
			return -EINVAL;
	} else if (fs->serial && *fs->serial) {
		if (strchr(fs->serial, '/') || strlen(fs->serial) > 64)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "bad rootfs.serial");
	} else {
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "rootfs needs path, device_path, scsi_address or serial");
	}
	if (fs->fstype && *fs->fstype && validate_id(fs->fstype, "rootfs.fstype", err) < 0)
		return -EINVAL;
	for (size_t i = 0; i < r->n_mounts; i++) {
		const Podvisor__Agent__Mount *m = r->mounts[i];
		if (validate_abs_path(m->destination, "mount destination", err) < 0) {
			pv_err_prefix(err, "mount %zu", i);
			return -EINVAL;
		}
		if (m->type && *m->type && validate_id(m->type, "mount type", err) < 0)
			return -EINVAL;
		if (m->source && !pv_utf8_valid(m->source, strlen(m->source)))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EILSEQ, "mount %zu source is not UTF-8", i);
	}
	if (r->hostname && strlen(r->hostname) > 64)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "hostname too long");
	if (validate_security(r, err) < 0)
		return -EINVAL;
	return validate_process(r->process, err);
}

int validate_request(const Podvisor__Agent__Request *req, pv_err_t **err)
{
	switch (req->req_case) {
	case PODVISOR__AGENT__REQUEST__REQ_CREATE_CONTAINER:
		return validate_create(req->create_container, err);
	case PODVISOR__AGENT__REQUEST__REQ_EXEC_PROCESS:
		if (validate_id(req->exec_process->container_id, "container_id", err) < 0 ||
		    validate_id(req->exec_process->exec_id, "exec_id", err) < 0)
			return -EINVAL;
		return validate_process(req->exec_process->process, err);
	case PODVISOR__AGENT__REQUEST__REQ_START_CONTAINER:
		return validate_id(req->start_container->container_id, "container_id", err);
	case PODVISOR__AGENT__REQUEST__REQ_REMOVE_CONTAINER:
		return validate_id(req->remove_container->container_id, "container_id", err);
	case PODVISOR__AGENT__REQUEST__REQ_STATS_CONTAINER:
		return validate_id(req->stats_container->container_id, "container_id", err);
	case PODVISOR__AGENT__REQUEST__REQ_UPDATE_RESOURCES:
		return validate_id(req->update_resources->container_id, "container_id", err);
	case PODVISOR__AGENT__REQUEST__REQ_SIGNAL_PROCESS:
		if (req->signal_process->signal == 0 || req->signal_process->signal > 64)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "bad signal number");
		return validate_id(req->signal_process->container_id, "container_id", err);
	case PODVISOR__AGENT__REQUEST__REQ_WAIT_PROCESS:
		return validate_id(req->wait_process->container_id, "container_id", err);
	case PODVISOR__AGENT__REQUEST__REQ_CLOSE_STDIN:
		return validate_id(req->close_stdin->container_id, "container_id", err);
	case PODVISOR__AGENT__REQUEST__REQ_RESIZE_TTY:
		return validate_id(req->resize_tty->container_id, "container_id", err);
	case PODVISOR__AGENT__REQUEST__REQ_CREATE_SANDBOX: {
		const Podvisor__Agent__CreateSandboxRequest *s = req->create_sandbox;
		if (s->hostname && strlen(s->hostname) > 64)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "hostname too long");
		for (size_t i = 0; i < s->n_sysctls; i++) {
			char path[320];
			if (sysctl_path(s->sysctls[i]->key, path, sizeof(path), err) < 0)
				return -EINVAL;
			if (strlen(s->sysctls[i]->value) > 4096)
				return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "sysctl %.64s: value too long",
						  s->sysctls[i]->key);
		}
		return 0;
	}
	case PODVISOR__AGENT__REQUEST__REQ_REFRESH: {
		const Podvisor__Agent__RefreshRequest *r = req->refresh;
		if (r->entropy.len && (r->entropy.len < 32 || r->entropy.len > 512))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "refresh: entropy must be 32..512 bytes");
		if (r->hostname && strlen(r->hostname) > 64)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "hostname too long");
		if (r->mac && *r->mac && strlen(r->mac) != 17)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "refresh: bad MAC address");
		return 0;
	}
	case PODVISOR__AGENT__REQUEST__REQ_PORT_FORWARD:
		if (!req->port_forward->port || req->port_forward->port > 65535)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "port_forward.port must be 1..65535");
		if (!req->port_forward->stream)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "port_forward.stream must not be 0");
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ__NOT_SET:
		return pv_err_set(err, PV_UNIMPLEMENTED, ENOSYS, "unknown or empty request");
	default:
		return 0;
	}
}
