/* How big a pod's VM is: the one owner of that policy (podvisord asks, the shim obeys). */
#include "vmm.h"

#include <unistd.h>

void sandbox_sizing_defaults(struct vmm_sizing *s)
{
	s->default_vcpus = 1;
	s->max_vcpus = 0;
	s->default_memory_mib = 256;
	s->memory_overhead_mib = 64;
	s->min_memory_mib = 128;
}

void sandbox_sizing_compute(const struct vmm_sizing *s, int64_t cpu_quota, int64_t cpu_period,
			    int64_t memory_limit, unsigned *vcpus, uint64_t *memory_mib)
{
	unsigned cpus = s->default_vcpus ? s->default_vcpus : 1;
	if (cpu_quota > 0 && cpu_period > 0)
		cpus = (unsigned)((cpu_quota + cpu_period - 1) / cpu_period);
	unsigned cap = s->max_vcpus;
	if (!cap) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cap = n > 0 ? (unsigned)n : 1;
	}
	if (cpus > cap)
		cpus = cap;
	if (cpus < 1)
		cpus = 1;

	uint64_t mem = s->default_memory_mib;
	if (memory_limit > 0)
		mem = ((uint64_t)memory_limit + (1 << 20) - 1) / (1 << 20) + s->memory_overhead_mib;
	if (mem < s->min_memory_mib)
		mem = s->min_memory_mib;
	*vcpus = cpus;
	*memory_mib = mem;
}
