/* pv_tap_* in a throwaway netns with a veth pair made by the test (root only; skipped otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

#include "net/tap.h"
#include "util.h"

static char g_dir[64];
static char g_ns[128];

/* ---- a netns made the `ip netns add` way, and code run inside it ------- */

static void *mk_thread(void *arg)
{
	if (unshare(CLONE_NEWNET) < 0 || mount("/proc/thread-self/ns/net", g_ns, "none", MS_BIND, NULL) < 0)
		return (void *)1;
	return NULL;
}

static void run_in_ns(void *(*fn)(void *), void *arg)
{
	pthread_t th;
	void *ret;
	assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
	pthread_join(th, &ret);
	assert_null(ret);
}

static int enter(void)
{
	int fd = open(g_ns, O_RDONLY | O_CLOEXEC);
	int r = fd >= 0 ? setns(fd, CLONE_NEWNET) : -1;
	if (fd >= 0)
		close(fd);
	return r;
}

/* eth0 (mtu 1400, 10.9.0.2/24, default via 10.9.0.1) <-> peer0, both in the netns. */
static void *make_veth(void *arg)
{
	struct nl_sock *sk = nl_socket_alloc();
	struct rtnl_link *veth, *l, *ch;
	struct rtnl_addr *a;
	struct nl_addr *local, *dst, *gw;
	struct rtnl_route *rt;
	struct rtnl_nexthop *nh;
	int idx;

	if (enter() < 0 || nl_connect(sk, NETLINK_ROUTE) < 0)
		return (void *)1;
	veth = rtnl_link_veth_alloc();
	rtnl_link_set_name(veth, "eth0");
	struct rtnl_link *peer = rtnl_link_veth_get_peer(veth); /* a new reference */
	rtnl_link_set_name(peer, "peer0");
	rtnl_link_put(peer);
	if (rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL) < 0)
		return (void *)2;
	rtnl_link_veth_release(veth);
	for (int i = 0; i < 2; i++) {
		if (rtnl_link_get_kernel(sk, 0, i ? "peer0" : "eth0", &l) < 0)
			return (void *)3;
		ch = rtnl_link_alloc();
		rtnl_link_set_flags(ch, IFF_UP);
		if (!i)
			rtnl_link_set_mtu(ch, 1400);
		if (rtnl_link_change(sk, l, ch, 0) < 0)
			return (void *)4;
		if (!i)
			idx = rtnl_link_get_ifindex(l);
		rtnl_link_put(ch);
		rtnl_link_put(l);
	}
	a = rtnl_addr_alloc();
	nl_addr_parse("10.9.0.2/24", AF_INET, &local);
	rtnl_addr_set_ifindex(a, idx);
	rtnl_addr_set_local(a, local);
	if (rtnl_addr_add(sk, a, 0) < 0)
		return (void *)5;
	rt = rtnl_route_alloc();
	nh = rtnl_route_nh_alloc();
	nl_addr_parse("0.0.0.0/0", AF_INET, &dst);
	nl_addr_parse("10.9.0.1", AF_INET, &gw);
	rtnl_route_set_dst(rt, dst);
	rtnl_route_nh_set_ifindex(nh, idx);
	rtnl_route_nh_set_gateway(nh, gw);
	rtnl_route_add_nexthop(rt, nh);
	if (rtnl_route_add(sk, rt, NLM_F_CREATE) < 0)
		return (void *)6;
	rtnl_route_put(rt);
	nl_addr_put(dst);
	nl_addr_put(gw);
	nl_addr_put(local);
	rtnl_addr_put(a);
	nl_socket_free(sk);
	return NULL;
}

struct probe {
	const char *name;
	int exists, mtu, up, n_v4;
	unsigned int tap_flags;
};

static void *probe_link(void *arg)
{
	struct probe *p = arg;
	struct nl_sock *sk = nl_socket_alloc();
	struct rtnl_link *l = NULL;
	struct nl_cache *cache;

	if (enter() < 0 || nl_connect(sk, NETLINK_ROUTE) < 0)
		return (void *)1;
	p->exists = rtnl_link_get_kernel(sk, 0, p->name, &l) == 0;
	if (p->exists) {
		p->mtu = (int)rtnl_link_get_mtu(l);
		p->up = !!(rtnl_link_get_flags(l) & IFF_UP);
		p->n_v4 = 0;
		if (rtnl_addr_alloc_cache(sk, &cache) == 0) {
			for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o))
				if (rtnl_addr_get_ifindex((struct rtnl_addr *)o) == rtnl_link_get_ifindex(l) &&
				    rtnl_addr_get_family((struct rtnl_addr *)o) == AF_INET)
					p->n_v4++;
			nl_cache_free(cache);
		}
		rtnl_link_put(l);
	}
	nl_socket_free(sk);
	return NULL;
}

static struct probe probe(const char *name)
{
	struct probe p = { .name = name };
	run_in_ns(probe_link, &p);
	return p;
}

static int setup(void **state)
{
	if (geteuid() != 0)
		return 0;
	strcpy(g_dir, "/tmp/pv-test-tap-XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	snprintf(g_ns, sizeof(g_ns), "%s/ns", g_dir);
	int fd = open(g_ns, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	assert_true(fd >= 0);
	close(fd);
	run_in_ns(mk_thread, NULL);
	run_in_ns(make_veth, NULL);
	return 0;
}

static int teardown(void **state)
{
	if (geteuid() != 0)
		return 0;
	umount2(g_ns, MNT_DETACH);
	unlink(g_ns);
	rmdir(g_dir);
	return 0;
}

static void test_setup_open_teardown(void **state)
{
	struct pv_tap_info *info = NULL;
	pv_err_t *err = NULL;

	if (geteuid() != 0)
		skip();
	struct probe before = probe("eth0");
	assert_int_equal(before.n_v4, 1);

	assert_int_equal(pv_tap_setup(g_ns, NULL, NULL, &info, &err), 0);
	assert_null(err);
	assert_int_equal(info->mtu, 1400);
	assert_int_equal(strlen(info->mac), 17);
	assert_int_equal(info->n_addrs, 1);
	assert_string_equal(info->addrs[0], "10.9.0.2/24");
	int found_default = 0;
	for (size_t i = 0; i < info->n_routes; i++)
		if (strcmp(info->routes[i].dst, "0.0.0.0/0") == 0 && strcmp(info->routes[i].gw, "10.9.0.1") == 0)
			found_default = 1;
	assert_true(found_default);

	struct probe tap = probe("tap0"), veth = probe("eth0");
	assert_true(tap.exists);
	assert_true(tap.up);
	assert_int_equal(tap.mtu, 1400);
	assert_int_equal(veth.n_v4, 0); /* the guest owns the address now */
	pv_tap_info_free(info);

	/* QEMU's fd: a queue of the same device. */
	int fd = pv_tap_open(g_ns, "tap0", 1, &err);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);

	/* Again on a set-up pod: fine, addresses already gone. */
	assert_int_equal(pv_tap_setup(g_ns, "eth0", "tap0", &info, &err), 0);
	assert_int_equal(info->n_addrs, 0);
	pv_tap_info_free(info);

	assert_int_equal(pv_tap_teardown(g_ns, NULL, NULL, &err), 0);
	assert_false(probe("tap0").exists);
	assert_true(probe("eth0").exists);
	assert_int_equal(pv_tap_teardown(g_ns, NULL, NULL, &err), 0);
	assert_null(err);
}

static void test_missing_veth_leaves_nothing(void **state)
{
	struct pv_tap_info *info = NULL;
	pv_err_t *err = NULL;

	if (geteuid() != 0)
		skip();
	assert_true(pv_tap_setup(g_ns, "nosuch0", "tap7", &info, &err) < 0);
	assert_null(info);
	assert_non_null(strstr(err->msg, "find veth nosuch0"));
	assert_non_null(strstr(err->msg, g_ns));
	pv_err_free(err);
	err = NULL;
	assert_false(probe("tap7").exists);

	assert_true(pv_tap_setup(g_ns, "eth0", "this-name-is-too-long", &info, &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	pv_err_free(err);
}

static void test_missing_netns(void **state)
{
	struct pv_tap_info *info = NULL;
	pv_err_t *err = NULL;

	assert_true(pv_tap_setup("/nonexistent/netns", NULL, NULL, &info, &err) < 0);
	assert_int_equal(err->status, PV_NOT_FOUND);
	pv_err_free(err);
	err = NULL;
	/* Teardown of a pod whose netns is gone succeeds: its devices went with it. */
	assert_int_equal(pv_tap_teardown("/nonexistent/netns", NULL, NULL, &err), 0);
	assert_true(pv_tap_open("/nonexistent/netns", "tap0", 0, &err) < 0);
	pv_err_free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_setup_open_teardown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_veth_leaves_nothing, setup, teardown),
		cmocka_unit_test(test_missing_netns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
