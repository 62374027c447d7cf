/* cgroup v2 in the guest: one group per container under /sys/fs/cgroup/containers. */
#include "agent.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int cg_write(const char *dir, const char *file, const char *val, pv_err_t **err)
{
	cleanup_free char *path = pv_xasprintf("%s/%s", dir, file);
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) < 0)
		return pv_err_sys(err, PV_INVALID_ARGUMENT, "write %s to %s", val, path);
	return 0;
}

static char *cg_read(const char *dir, const char *file)
{
	cleanup_free char *path = pv_xasprintf("%s/%s", dir, file);
	char *s = NULL;
	size_t len;
	if (pv_read_file(path, 1 << 20, &s, &len, NULL) < 0)
		return NULL;
	return s;
}

/* Enable every available controller for the children of dir. */
static int enable_controllers(const char *dir, pv_err_t **err)
{
	cleanup_free char *avail = cg_read(dir, "cgroup.controllers");
	if (!avail)
		return pv_err_set(err, PV_INTERNAL, ENOENT, "no cgroup.controllers in %s", dir);
	char buf[512] = "";
	for (char *tok = strtok(avail, " \n"); tok; tok = strtok(NULL, " \n")) {
		if (strlen(buf) + strlen(tok) + 3 >= sizeof(buf))
			break;
		if (buf[0])
			strcat(buf, " ");
		strcat(buf, "+");
		strcat(buf, tok);
	}
	if (!buf[0])
		return 0;
	return cg_write(dir, "cgroup.subtree_control", buf, err);
}

int cgroup_init(pv_err_t **err)
{
	if (enable_controllers(AGENT_CGROUP_ROOT, err) < 0)
		return -1;
	if (mkdir(AGENT_CGROUP_PARENT, 0755) < 0 && errno != EEXIST)
		return pv_err_sys(err, PV_INTERNAL, "mkdir %s", AGENT_CGROUP_PARENT);
	return enable_controllers(AGENT_CGROUP_PARENT, err);
}

static bool cg_has(const char *dir, const char *file)
{
	cleanup_free char *path = pv_xasprintf("%s/%s", dir, file);
	return access(path, F_OK) == 0;
}

int cgroup_apply(const char *path, const Podvisor__Agent__Resources *r, pv_err_t **err)
{
	if (!r)
		return 0;
	char v[128];
	if (r->cpu_quota_us || r->cpu_period_us) {
		uint64_t period = r->cpu_period_us ? r->cpu_period_us : 100000;
		if (r->cpu_quota_us > 0)
			snprintf(v, sizeof(v), "%" PRId64 " %" PRIu64, r->cpu_quota_us, period);
		else
			snprintf(v, sizeof(v), "max %" PRIu64, period);
		if (cg_write(path, "cpu.max", v, err) < 0)
			return -1;
	}
	if (r->cpu_weight) {
		snprintf(v, sizeof(v), "%" PRIu64, r->cpu_weight);
		if (cg_write(path, "cpu.weight", v, err) < 0)
			return -1;
	}
	if (r->memory_limit) {
		if (r->memory_limit < 0)
			snprintf(v, sizeof(v), "max");
		else
			snprintf(v, sizeof(v), "%" PRId64, r->memory_limit);
		if (cg_write(path, "memory.max", v, err) < 0)
			return -1;
	}
	if (r->memory_reservation > 0) {
		snprintf(v, sizeof(v), "%" PRId64, r->memory_reservation);
		if (cg_write(path, "memory.low", v, err) < 0)
			return -1;
	}
	if (r->memory_swap_limit && cg_has(path, "memory.swap.max")) {
		if (r->memory_swap_limit < 0)
			snprintf(v, sizeof(v), "max");
		else
			snprintf(v, sizeof(v), "%" PRId64, r->memory_swap_limit);
		if (cg_write(path, "memory.swap.max", v, err) < 0)
			return -1;
	}
	if (r->pids_limit) {
		if (r->pids_limit < 0)
			snprintf(v, sizeof(v), "max");
		else
			snprintf(v, sizeof(v), "%" PRId64, r->pids_limit);
		if (cg_write(path, "pids.max", v, err) < 0)
			return -1;
	}
	if (*r->cpuset_cpus && cg_has(path, "cpuset.cpus") && cg_write(path, "cpuset.cpus", r->cpuset_cpus, err) < 0)
		return -1;
	if (*r->cpuset_mems && cg_has(path, "cpuset.mems") && cg_write(path, "cpuset.mems", r->cpuset_mems, err) < 0)
		return -1;
	for (size_t i = 0; i < r->n_unified; i++) {
		const char *k = r->unified[i]->key;
		if (!*k || strchr(k, '/') || k[0] == '.' || !strchr(k, '.'))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "bad cgroup file name '%.64s'", k);
		if (cg_write(path, k, r->unified[i]->value, err) < 0)
			return -1;
	}
	return 0;
}

int cgroup_create(const char *path, const Podvisor__Agent__Resources *res, pv_err_t **err)
{
	if (mkdir(path, 0755) < 0)
		return pv_err_sys(err, PV_INTERNAL, "mkdir %s", path);
	if (cgroup_apply(path, res, err) < 0) {
		rmdir(path);
		return -1;
	}
	return 0;
}

int cgroup_kill(const char *path)
{
	return cg_write(path, "cgroup.kill", "1", NULL);
}

int cgroup_remove(const char *path, int timeout_ms, pv_err_t **err)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	for (int waited = 0;; waited += 5) {
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || waited >= timeout_ms)
			return pv_err_sys(err, PV_INTERNAL, "rmdir %s", path);
		nanosleep(&ts, NULL);
	}
}

/* Value of `key` in a flat keyed file ("key value" lines). */
static uint64_t keyed(const char *text, const char *key)
{
	if (!text)
		return 0;
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (!strncmp(p, key, kl) && p[kl] == ' ')
			return strtoull(p + kl + 1, NULL, 10);
	}
	return 0;
}

uint64_t cgroup_oom_kills(const char *path)
{
	cleanup_free char *ev = cg_read(path, "memory.events");
	return keyed(ev, "oom_kill");
}

static uint64_t single(const char *path, const char *file)
{
	cleanup_free char *s = cg_read(path, file);
	if (!s || !strncmp(s, "max", 3))
		return 0;
	return strtoull(s, NULL, 10);
}

/* Sum rbytes=/wbytes= over the devices of io.stat. */
static void io_sum(const char *text, uint64_t *r, uint64_t *w)
{
	*r = *w = 0;
	for (const char *p = text; p && (p = strstr(p, "bytes=")); p += 6) {
		if (p > text && p[-1] == 'r')
			*r += strtoull(p + 6, NULL, 10);
		else if (p > text && p[-1] == 'w')
			*w += strtoull(p + 6, NULL, 10);
	}
}

int cgroup_stats(const char *path, Podvisor__Agent__StatsContainerResponse *out, pv_err_t **err)
{
	cleanup_free char *cpu = cg_read(path, "cpu.stat");
	if (!cpu)
		return pv_err_sys(err, PV_INTERNAL, "read %s/cpu.stat", path);
	cleanup_free char *mem = cg_read(path, "memory.stat");
	cleanup_free char *ev = cg_read(path, "memory.events");
	cleanup_free char *io = cg_read(path, "io.stat");
	out->timestamp_ns = pv_now_realtime_ns();
	out->cpu_usage_usec = keyed(cpu, "usage_usec");
	out->cpu_user_usec = keyed(cpu, "user_usec");
	out->cpu_system_usec = keyed(cpu, "system_usec");
	out->memory_usage_bytes = single(path, "memory.current");
	uint64_t inactive = keyed(mem, "inactive_file");
	out->memory_working_set_bytes =
		out->memory_usage_bytes > inactive ? out->memory_usage_bytes - inactive : 0;
	out->memory_limit_bytes = single(path, "memory.max");
	out->memory_rss_bytes = keyed(mem, "anon");
	out->memory_page_faults = keyed(mem, "pgfault");
	out->memory_major_page_faults = keyed(mem, "pgmajfault");
	out->oom_kill_count = keyed(ev, "oom_kill");
	out->pids_current = single(path, "pids.current");
	out->pids_limit = single(path, "pids.max");
	io_sum(io, &out->io_read_bytes, &out->io_write_bytes);
	return 0;
}
