/*
 * StatsSandbox: what kubelet's stats need from the pod VM in one answer — every
 * container's cgroup and writable layer, the guest's interfaces, memory and CPU.
 */
#include "agent.h"
#include "cleanup.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>

#define SYS_NET "/sys/class/net"

static uint64_t read_u64(const char *path)
{
	cleanup_free char *s = NULL;
	if (pv_read_file(path, 4096, &s, NULL, NULL) < 0)
		return 0;
	return strtoull(s, NULL, 10);
}

static uint64_t net_counter(const char *ifname, const char *name)
{
	cleanup_free char *path = pv_xasprintf(SYS_NET "/%s/statistics/%s", ifname, name);
	return read_u64(path);
}

static Podvisor__Agent__InterfaceStats *iface_stats(const char *name)
{
	Podvisor__Agent__InterfaceStats *s = pv_xmalloc(sizeof(*s));
	podvisor__agent__interface_stats__init(s);
	s->name = pv_xstrdup(name);
	s->rx_bytes = net_counter(name, "rx_bytes");
	s->rx_packets = net_counter(name, "rx_packets");
	s->rx_errors = net_counter(name, "rx_errors");
	s->rx_dropped = net_counter(name, "rx_dropped");
	s->tx_bytes = net_counter(name, "tx_bytes");
	s->tx_packets = net_counter(name, "tx_packets");
	s->tx_errors = net_counter(name, "tx_errors");
	s->tx_dropped = net_counter(name, "tx_dropped");
	return s;
}

static void collect_interfaces(Podvisor__Agent__StatsSandboxResponse *out)
{
	DIR *d = opendir(SYS_NET);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "lo"))
			continue;
		out->interfaces = pv_xrealloc(out->interfaces, (out->n_interfaces + 1) * sizeof(*out->interfaces));
		out->interfaces[out->n_interfaces++] = iface_stats(e->d_name);
	}
	closedir(d);
}

/* "MemTotal:  123 kB" style field of /proc/meminfo, in bytes. */
static uint64_t meminfo(const char *text, const char *key)
{
	const char *p = text ? strstr(text, key) : NULL;
	return p ? strtoull(p + strlen(key), NULL, 10) * 1024 : 0;
}

static void collect_containers(Podvisor__Agent__StatsSandboxResponse *out)
{
	size_t n = 0;
	for (struct container *c = g_agent.containers; c; c = c->next)
		n++;
	out->containers = pv_xcalloc(n ? n : 1, sizeof(*out->containers));
	for (struct container *c = g_agent.containers; c; c = c->next) {
		Podvisor__Agent__StatsContainerResponse *s = pv_xmalloc(sizeof(*s));
		podvisor__agent__stats_container_response__init(s);
		if (container_stats(c->id, s, NULL) < 0) {
			free(s);
			continue;
		}
		s->container_id = pv_xstrdup(c->id);
		out->containers[out->n_containers++] = s;
	}
}

int stats_sandbox(Podvisor__Agent__StatsSandboxResponse *out, pv_err_t **err)
{
	out->timestamp_ns = pv_now_realtime_ns();
	cleanup_free char *mem = NULL;
	if (pv_read_file("/proc/meminfo", 1 << 16, &mem, NULL, err) < 0)
		return -1;
	out->memory_total_bytes = meminfo(mem, "MemTotal:");
	out->memory_available_bytes = meminfo(mem, "MemAvailable:");
	cleanup_free char *cpu = NULL;
	if (pv_read_file(AGENT_CGROUP_ROOT "/cpu.stat", 1 << 16, &cpu, NULL, NULL) == 0) {
		const char *p = strstr(cpu, "usage_usec ");
		out->cpu_usage_usec = p ? strtoull(p + strlen("usage_usec "), NULL, 10) : 0;
	}
	collect_interfaces(out);
	collect_containers(out);
	return 0;
}

void stats_rootfs_baseline(struct container *c)
{
	struct statfs sf;
	if (statfs(c->rootfs, &sf) == 0) {
		c->base_used_bytes = (uint64_t)(sf.f_blocks - sf.f_bfree) * (uint64_t)sf.f_bsize;
		c->base_used_inodes = (uint64_t)(sf.f_files - sf.f_ffree);
	}
}

void stats_rootfs(const struct container *c, Podvisor__Agent__StatsContainerResponse *out)
{
	struct statfs sf;
	if (statfs(c->rootfs, &sf) < 0)
		return;
	out->rootfs_used_bytes = (uint64_t)(sf.f_blocks - sf.f_bfree) * (uint64_t)sf.f_bsize;
	out->rootfs_inodes_used = (uint64_t)(sf.f_files - sf.f_ffree);
	out->writable_bytes = out->rootfs_used_bytes > c->base_used_bytes ? out->rootfs_used_bytes - c->base_used_bytes : 0;
	out->writable_inodes =
		out->rootfs_inodes_used > c->base_used_inodes ? out->rootfs_inodes_used - c->base_used_inodes : 0;
}
