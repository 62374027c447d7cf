/* The node's side of pod stats: /proc of a pod VM's processes, CPU rates from two samples. */
#include "stats_host.h"
#include "cleanup.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool cri_stats_proc_usage(pid_t pid, struct cri_host_usage *u)
{
	if (pid <= 0)
		return false;
	cleanup_free char *path = pv_xasprintf("/proc/%d/stat", (int)pid);
	cleanup_free char *spath = pv_xasprintf("/proc/%d/status", (int)pid);
	cleanup_free char *stat = NULL, *status = NULL;
	if (pv_read_file(path, 4096, &stat, NULL, NULL) < 0 || pv_read_file(spath, 1 << 16, &status, NULL, NULL) < 0)
		return false;
	const char *p = strrchr(stat, ')'); /* the command name may hold spaces and parentheses */
	unsigned long long minflt, majflt, utime, stime;
	/* state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %llu %*u %llu %*u %llu %llu", &minflt, &majflt, &utime,
			 &stime) != 4)
		return false;
	const char *rss = strstr(status, "\nVmRSS:"), *anon = strstr(status, "\nRssAnon:");
	long hz = sysconf(_SC_CLK_TCK);
	u->cpu_ns += (utime + stime) * (1000000000ULL / (uint64_t)(hz > 0 ? hz : 100));
	u->minflt += minflt;
	u->majflt += majflt;
	u->rss += rss ? strtoull(rss + strlen("\nVmRSS:"), NULL, 10) * 1024 : 0;
	u->anon += anon ? strtoull(anon + strlen("\nRssAnon:"), NULL, 10) * 1024 : 0;
	return true;
}

struct rate {
	char *key;
	uint64_t usage_ns;
	int64_t ts;
	uint64_t nano_cores;
	bool have_rate;
	int64_t seen; /* monotonic */
	struct rate *next;
};

static pthread_mutex_t g_rates_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rate *g_rates;

static void rate_free(struct rate *r)
{
	free(r->key);
	free(r);
}

/* The entry for key (made if new); entries not seen for CRI_RATE_TTL_NS are dropped on the way. */
static struct rate *rate_find(const char *key, int64_t now, bool *is_new)
{
	struct rate *hit = NULL;
	for (struct rate **rp = &g_rates; *rp;) {
		struct rate *r = *rp;
		if (!strcmp(r->key, key)) {
			hit = r;
		} else if (now - r->seen > CRI_RATE_TTL_NS) {
			*rp = r->next;
			rate_free(r);
			continue;
		}
		rp = &r->next;
	}
	*is_new = !hit;
	if (!hit) {
		hit = pv_xcalloc(1, sizeof(*hit));
		hit->key = pv_xstrdup(key);
		hit->next = g_rates;
		g_rates = hit;
	}
	return hit;
}

bool cri_stats_rate_update(const char *kind, const char *id, uint64_t usage_ns, int64_t ts, uint64_t *nano_cores)
{
	cleanup_free char *key = pv_xasprintf("%s/%s", kind, id);
	int64_t now = pv_now_monotonic_ns();
	pthread_mutex_lock(&g_rates_lock);
	bool is_new;
	struct rate *r = rate_find(key, now, &is_new);
	if (is_new || usage_ns < r->usage_ns || ts < r->ts) {
		r->usage_ns = usage_ns; /* first sample, or a counter that went back: start over */
		r->ts = ts;
		r->have_rate = false;
	} else if (ts - r->ts >= CRI_RATE_MIN_WINDOW_NS) {
		r->nano_cores = (uint64_t)((double)(usage_ns - r->usage_ns) * 1e9 / (double)(ts - r->ts));
		r->have_rate = true;
		r->usage_ns = usage_ns;
		r->ts = ts;
	}
	r->seen = now;
	bool ok = r->have_rate;
	*nano_cores = r->nano_cores;
	pthread_mutex_unlock(&g_rates_lock);
	return ok;
}

void cri_stats_rate_reset(void)
{
	pthread_mutex_lock(&g_rates_lock);
	while (g_rates) {
		struct rate *r = g_rates;
		g_rates = r->next;
		rate_free(r);
	}
	pthread_mutex_unlock(&g_rates_lock);
}
