/* Stats figures podvisord works out on the node: a pod VM's processes, CPU rates from two samples. */
#ifndef PV_CRI_STATS_HOST_H
#define PV_CRI_STATS_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct cri_host_usage {
	bool ok;
	int64_t ts; /* host CLOCK_REALTIME of the reading */
	uint64_t cpu_ns, rss, anon, minflt, majflt;
};

/* Add pid's CPU time (utime + stime), faults, VmRSS and RssAnon to *u; false (u untouched)
 * if /proc cannot tell. */
bool cri_stats_proc_usage(pid_t pid, struct cri_host_usage *u);

/* Windows shorter than this give no rate (a burst of calls would only add noise). */
#define CRI_RATE_MIN_WINDOW_NS 1000000000LL
/* Keys not sampled for this long are forgotten (kubelet keeps its own as long). */
#define CRI_RATE_TTL_NS (600 * 1000000000LL)

/*
 * Feed one cumulative CPU sample (ns used, taken at ts ns) of "kind/id"; true with the
 * rate in nano-cores over the latest window of at least CRI_RATE_MIN_WINDOW_NS, false
 * while none is known (first sample, or a counter that went back). Thread-safe.
 */
bool cri_stats_rate_update(const char *kind, const char *id, uint64_t usage_ns, int64_t ts, uint64_t *nano_cores);
/* Forget every key (tests, shutdown). */
void cri_stats_rate_reset(void);

#endif
