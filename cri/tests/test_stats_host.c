/* Stats worked out on the node: /proc of a process, CPU rates in nano-cores from two samples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stats_host.h"

#define S 1000000000LL

static void test_proc_usage_of_self(void **state)
{
	/* Burn a little CPU and touch some memory so the figures cannot be 0. */
	volatile uint64_t x = 0;
	struct timespec t0, t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	do {
		for (int i = 0; i < 100000; i++)
			x += (uint64_t)i;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	} while ((t.tv_sec - t0.tv_sec) * S + (t.tv_nsec - t0.tv_nsec) < 30000000);
	struct cri_host_usage u = { 0 };
	assert_true(cri_stats_proc_usage(getpid(), &u));
	assert_true(u.cpu_ns >= 10000000);  /* ticks are 10 ms */
	assert_true(u.rss > 1 << 20);
	assert_true(u.anon > 0 && u.anon <= u.rss);
	assert_true(u.minflt > 0);
	/* A second process adds up. */
	struct cri_host_usage two = u;
	assert_true(cri_stats_proc_usage(getppid(), &two));
	assert_true(two.rss > u.rss);
	/* No such process: false, nothing added. */
	struct cri_host_usage none = { 0 };
	assert_false(cri_stats_proc_usage(0, &none));
	assert_false(cri_stats_proc_usage(1 << 30, &none));
	assert_int_equal(none.cpu_ns, 0);
	assert_int_equal(none.rss, 0);
}

static void test_rate(void **state)
{
	uint64_t nc = 77;
	cri_stats_rate_reset();
	/* First sample: no rate yet. */
	assert_false(cri_stats_rate_update("ctr", "a", 1000, 10 * S, &nc));
	/* Half a core over 2 s. */
	assert_true(cri_stats_rate_update("ctr", "a", 1000 + S, 12 * S, &nc));
	assert_int_equal(nc, 500000000);
	/* A sample 0.5 s later is too close: the last rate stands, the window does not move. */
	assert_true(cri_stats_rate_update("ctr", "a", 1000 + 2 * S, 12 * S + S / 2, &nc));
	assert_int_equal(nc, 500000000);
	/* From the window start (12 s): 2 cores' worth over 1 s. */
	assert_true(cri_stats_rate_update("ctr", "a", 1000 + 3 * S, 13 * S, &nc));
	assert_int_equal(nc, 2000000000);
	/* Another kind with the same id is another key. */
	assert_false(cri_stats_rate_update("pod", "a", 5, 13 * S, &nc));
	/* A counter that went back (a new process behind the same id) starts over. */
	assert_false(cri_stats_rate_update("ctr", "a", 10, 14 * S, &nc));
	assert_true(cri_stats_rate_update("ctr", "a", 10 + S / 4, 15 * S, &nc));
	assert_int_equal(nc, 250000000);
	/* Idle: 0 nano-cores is a rate. */
	assert_true(cri_stats_rate_update("ctr", "a", 10 + S / 4, 17 * S, &nc));
	assert_int_equal(nc, 0);
	cri_stats_rate_reset();
	assert_false(cri_stats_rate_update("ctr", "a", 10 + S, 18 * S, &nc));
	cri_stats_rate_reset();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proc_usage_of_self),
		cmocka_unit_test(test_rate),
	};
	return cmocka_run_group_tests_name("cri_stats_host", tests, NULL, NULL);
}
