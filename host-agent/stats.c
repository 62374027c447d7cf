/*
 * Container stats of a host pod: the cgroup counters as the OCI runtime reads them
 * (`runc events --stats`: it knows cgroup v1, v2 and the hybrid layout), the OOM kill
 * count from the memory cgroup, and the writable layer's usage (its overlay upper dir).
 */
#include "hostagent.h"
#include "cleanup.h"
#include "guest_abi.h"
#include "util.h"

#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t u64(json_t *o, const char *path)
{
	cleanup_free char *copy = pv_xstrdup(path);
	char *save = NULL;
	for (char *k = strtok_r(copy, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		o = json_object_get(o, k);
	return json_is_integer(o) ? (uint64_t)json_integer_value(o) : 0;
}

/* memory.oom_control (v1) or memory.events (v2): the "oom_kill N" line. */
uint64_t cgroup_oom_kills(const char *path)
{
	for (int i = 0; i < 2; i++) {
		char p[512];
		snprintf(p, sizeof(p), "/sys/fs/cgroup%s%s/%s", i == 0 ? "/memory" : "", path,
			 i == 0 ? "memory.oom_control" : "memory.events");
		cleanup_free char *text = NULL;
		size_t len;
		if (pv_read_file(p, 1 << 16, &text, &len, NULL) < 0)
			continue;
		const char *hit = strstr(text, "oom_kill ");
		return hit ? strtoull(hit + 9, NULL, 10) : 0;
	}
	return 0;
}

static uint64_t g_du_bytes, g_du_inodes;

static int du_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	g_du_bytes += (uint64_t)st->st_blocks * 512;
	g_du_inodes++;
	return 0;
}

/* The bytes and inodes the container wrote: its layer's upper directory. */
static void layer_usage(const char *rootfs, uint64_t *bytes, uint64_t *inodes)
{
	cleanup_free char *copy = pv_xstrdup(rootfs);
	cleanup_free char *upper = pv_xasprintf("%s/%s", dirname(copy), PV_HOST_LAYER_UPPER);
	g_du_bytes = g_du_inodes = 0;
	if (nftw(upper, du_one, 16, FTW_PHYS | FTW_MOUNT) == 0) {
		*bytes = g_du_bytes;
		*inodes = g_du_inodes;
	}
}

int hostagent_stats(const struct container *c, Podvisor__Agent__StatsContainerResponse *out, pv_err_t **err)
{
	cleanup_free char *text = NULL;
	cleanup_free char *log = pv_xasprintf("%s/runtime.log", c->dir);
	const char *args[] = { "events", "--stats", c->id, NULL };
	struct hostagent_runc r = { .args = args, .cwd = c->dir, .stdio = { -1, -1, -1 }, .out = &text, .log = log };
	if (hostagent_runc(&r, err) < 0)
		return -1;
	json_error_t jerr;
	json_t *ev = json_loads(text, JSON_DISABLE_EOF_CHECK, &jerr);
	json_t *d = json_object_get(ev, "data");
	if (!d) {
		json_decref(ev);
		return pv_err_set(err, PV_INTERNAL, EBADMSG, "%s events --stats %s: no data (%s)", g_pod.runtime, c->id,
				  jerr.text);
	}
	out->timestamp_ns = pv_now_realtime_ns();
	out->cpu_usage_usec = u64(d, "cpu.usage.total") / 1000;
	out->cpu_user_usec = u64(d, "cpu.usage.user") / 1000;
	out->cpu_system_usec = u64(d, "cpu.usage.kernel") / 1000;
	out->memory_usage_bytes = u64(d, "memory.usage.usage");
	uint64_t inactive = u64(d, "memory.raw.total_inactive_file") + u64(d, "memory.raw.inactive_file");
	out->memory_working_set_bytes = out->memory_usage_bytes > inactive ? out->memory_usage_bytes - inactive : 0;
	uint64_t limit = u64(d, "memory.usage.limit");
	out->memory_limit_bytes = limit >= (1ull << 62) ? 0 : limit; /* "no limit" is a huge number */
	out->memory_rss_bytes = u64(d, "memory.raw.total_rss") + u64(d, "memory.raw.anon");
	out->memory_page_faults = u64(d, "memory.raw.total_pgfault") + u64(d, "memory.raw.pgfault");
	out->memory_major_page_faults = u64(d, "memory.raw.total_pgmajfault") + u64(d, "memory.raw.pgmajfault");
	out->pids_current = u64(d, "pids.current");
	out->pids_limit = u64(d, "pids.limit");
	json_t *io = json_object_get(json_object_get(d, "blkio"), "ioServiceBytesRecursive");
	size_t i;
	json_t *e;
	json_array_foreach(io, i, e) {
		const char *op = json_string_value(json_object_get(e, "op"));
		uint64_t v = u64(e, "value");
		if (op && !strcasecmp(op, "read"))
			out->io_read_bytes += v;
		else if (op && !strcasecmp(op, "write"))
			out->io_write_bytes += v;
	}
	json_decref(ev);
	out->oom_kill_count = cgroup_oom_kills(c->cgroup);
	/* All a host pod's container wrote is its layer's upper dir (the image stays below). */
	layer_usage(c->rootfs, &out->rootfs_used_bytes, &out->rootfs_inodes_used);
	out->writable_bytes = out->rootfs_used_bytes;
	out->writable_inodes = out->rootfs_inodes_used;
	return 0;
}

/* ---- StatsSandbox: the pod's containers, the node's memory, the pod's interfaces ------------ */

/* /proc/net/dev of the agent's network namespace: the pod's (or the node's, hostNetwork). */
static char *net_dev_text(void)
{
	char *text = NULL;
	size_t len;
	return pv_read_file("/proc/self/net/dev", 1 << 20, &text, &len, NULL) == 0 ? text : NULL;
}

/* "  eth0: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed multicast tx_bytes ..." */
static void collect_interfaces(Podvisor__Agent__StatsSandboxResponse *out)
{
	cleanup_free char *text = net_dev_text();
	char *save = NULL;
	for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue; /* the two header lines */
		*colon = '\0';
		char *name = line + strspn(line, " ");
		unsigned long long v[16] = { 0 };
		if (!strcmp(name, "lo") ||
		    sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]) != 12)
			continue;
		Podvisor__Agent__InterfaceStats *s = pv_xmalloc(sizeof(*s));
		podvisor__agent__interface_stats__init(s);
		s->name = pv_xstrdup(name);
		s->rx_bytes = v[0], s->rx_packets = v[1], s->rx_errors = v[2], s->rx_dropped = v[3];
		s->tx_bytes = v[8], s->tx_packets = v[9], s->tx_errors = v[10], s->tx_dropped = v[11];
		out->interfaces = pv_xrealloc(out->interfaces, (out->n_interfaces + 1) * sizeof(*out->interfaces));
		out->interfaces[out->n_interfaces++] = s;
	}
}

static uint64_t meminfo(const char *text, const char *key)
{
	const char *p = text ? strstr(text, key) : NULL;
	return p ? strtoull(p + strlen(key), NULL, 10) * 1024 : 0;
}

int stats_sandbox(Podvisor__Agent__StatsSandboxResponse *out, pv_err_t **err)
{
	out->timestamp_ns = pv_now_realtime_ns();
	cleanup_free char *mem = NULL;
	if (pv_read_file("/proc/meminfo", 1 << 16, &mem, NULL, err) < 0)
		return -1;
	/* The node's: a host pod has no memory of its own beyond its cgroups' limits. */
	out->memory_total_bytes = meminfo(mem, "MemTotal:");
	out->memory_available_bytes = meminfo(mem, "MemAvailable:");
	size_t n = 0;
	for (struct container *c = g_agent.containers; c; c = c->next)
		n++;
	out->containers = pv_xcalloc(n ? n : 1, sizeof(*out->containers));
	for (struct container *c = g_agent.containers; c; c = c->next) {
		Podvisor__Agent__StatsContainerResponse *s = pv_xmalloc(sizeof(*s));
		podvisor__agent__stats_container_response__init(s);
		if (hostagent_stats(c, s, NULL) < 0) {
			free(s);
			continue;
		}
		s->container_id = pv_xstrdup(c->id);
		out->cpu_usage_usec += s->cpu_usage_usec;
		out->containers[out->n_containers++] = s;
	}
	collect_interfaces(out);
	return 0;
}

