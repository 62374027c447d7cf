/* tap + tc mirred between the CNI veth and QEMU, inside the pod netns (libnl). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/action.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/addr.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/route.h>

#include "cleanup.h"
#include "net/tap.h"
#include "util.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#define INGRESS_HANDLE 0xffff0000U /* ffff: (TC_HANDLE() shifts a signed int) */

/* ---- running on a thread inside the netns ------------------------- */

struct ns_job {
	const char *path;
	int (*fn)(void *, pv_err_t **);
	void *arg;
	int ret;
	pv_err_t *err;
};

static void *ns_thread(void *p)
{
	struct ns_job *job = p;
	struct statfs sfs;
	int fd = open(job->path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		job->ret = pv_err_sys(&job->err, errno == ENOENT ? PV_NOT_FOUND : PV_INTERNAL, "open netns %s",
				      job->path);
		return NULL;
	}
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != NSFS_MAGIC) {
		close(fd);
		job->ret = pv_err_set(&job->err, PV_NOT_FOUND, ENOENT, "%s is not a network namespace", job->path);
		return NULL;
	}
	/* This thread ends right after, so it never needs to switch back. */
	if (setns(fd, CLONE_NEWNET) < 0) {
		job->ret = pv_err_sys(&job->err, PV_INTERNAL, "setns %s", job->path);
		close(fd);
		return NULL;
	}
	close(fd);
	job->ret = job->fn(job->arg, &job->err);
	return NULL;
}

static int in_netns(const char *path, int (*fn)(void *, pv_err_t **), void *arg, pv_err_t **err)
{
	struct ns_job job = { .path = path, .fn = fn, .arg = arg, .ret = -1 };
	pthread_t th;
	int r = pthread_create(&th, NULL, ns_thread, &job);

	if (r != 0)
		return pv_err_set(err, PV_RESOURCE_EXHAUSTED, r, "pthread_create: %s", strerror(r));
	pthread_join(th, NULL);
	pv_err_move(err, job.err);
	return job.ret;
}

static int nl_fail(pv_err_t **err, int nlerr, const char *what, const char *name)
{
	return pv_err_set(err, PV_INTERNAL, 0, "%s %s: %s", what, name, nl_geterror(nlerr));
}

static struct nl_sock *nl_open(pv_err_t **err)
{
	struct nl_sock *sk = nl_socket_alloc();
	int r;

	if (!sk) {
		pv_err_set(err, PV_RESOURCE_EXHAUSTED, ENOMEM, "netlink socket");
		return NULL;
	}
	if ((r = nl_connect(sk, NETLINK_ROUTE)) < 0) {
		nl_fail(err, r, "netlink", "connect");
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

/* ---- pieces --------------------------------------------------------- */

static void format_cidr(int family, const struct nl_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned char zero[16] = { 0 };
	const void *bin = a && nl_addr_get_len(a) ? nl_addr_get_binary_addr(a) : zero;

	inet_ntop(family, bin, ip, sizeof(ip));
	snprintf(buf, len, "%s/%u", ip, a ? nl_addr_get_prefixlen(a) : 0);
}

static int is_v6_link_local(struct nl_addr *a)
{
	const unsigned char *b = nl_addr_get_binary_addr(a);
	return nl_addr_get_family(a) == AF_INET6 && b[0] == 0xfe && (b[1] & 0xc0) == 0x80;
}

/* Report the veth's addresses, then (if flush) remove all of them. */
static int take_addrs(struct nl_sock *sk, int ifindex, struct pv_tap_info *info, int flush, pv_err_t **err)
{
	struct nl_cache *cache = NULL;
	struct nl_object *o;
	int r = rtnl_addr_alloc_cache(sk, &cache);

	if (r < 0)
		return nl_fail(err, r, "list", "addresses");
	for (o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;
		struct nl_addr *local = rtnl_addr_get_local(a);
		int family = rtnl_addr_get_family(a);

		if (rtnl_addr_get_ifindex(a) != ifindex || !local || (family != AF_INET && family != AF_INET6))
			continue;
		if (!flush) {
			if (is_v6_link_local(local))
				continue;
			info->addrs = pv_xrealloc(info->addrs, (info->n_addrs + 1) * sizeof(*info->addrs));
			char ip[INET6_ADDRSTRLEN];
			inet_ntop(family, nl_addr_get_binary_addr(local), ip, sizeof(ip));
			snprintf(info->addrs[info->n_addrs++], sizeof(*info->addrs), "%s/%d", ip,
				 rtnl_addr_get_prefixlen(a));
		} else if ((r = rtnl_addr_delete(sk, a, 0)) < 0 && r != -NLE_OBJ_NOTFOUND && r != -NLE_NOADDR) {
			nl_cache_free(cache);
			return nl_fail(err, r, "flush address of", "veth");
		}
	}
	nl_cache_free(cache);
	return 0;
}

static int collect_routes(struct nl_sock *sk, int ifindex, struct pv_tap_info *info, pv_err_t **err)
{
	struct nl_cache *cache = NULL;
	struct nl_object *o;
	int r = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &cache);

	if (r < 0)
		return nl_fail(err, r, "list", "routes");
	for (o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *rt = (struct rtnl_route *)o;
		struct rtnl_nexthop *nh;
		struct nl_addr *gw;
		int family = rtnl_route_get_family(rt);

		/* Kernel-made routes (connected prefixes, fe80::/64) come back by themselves in the guest. */
		if (rtnl_route_get_table(rt) != RT_TABLE_MAIN || rtnl_route_get_type(rt) != RTN_UNICAST ||
		    rtnl_route_get_protocol(rt) == RTPROT_KERNEL || rtnl_route_get_nnexthops(rt) < 1 ||
		    (family != AF_INET && family != AF_INET6))
			continue;
		nh = rtnl_route_nexthop_n(rt, 0);
		if (rtnl_route_nh_get_ifindex(nh) != ifindex)
			continue;
		info->routes = pv_xrealloc(info->routes, (info->n_routes + 1) * sizeof(*info->routes));
		struct pv_tap_route *out = &info->routes[info->n_routes++];
		memset(out, 0, sizeof(*out));
		out->family = family == AF_INET6 ? 6 : 4;
		format_cidr(family, rtnl_route_get_dst(rt), out->dst, sizeof(out->dst));
		gw = rtnl_route_nh_get_gateway(nh);
		if (gw && nl_addr_get_len(gw))
			inet_ntop(family, nl_addr_get_binary_addr(gw), out->gw, sizeof(out->gw));
	}
	nl_cache_free(cache);
	return 0;
}

static int tun_attach(const char *tap, int flags, pv_err_t **err)
{
	struct ifreq ifr = { 0 };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return pv_err_sys(err, PV_FAILED_PRECONDITION, "open /dev/net/tun");
	ifr.ifr_flags = (short)flags;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		pv_err_sys(err, PV_INTERNAL, "TUNSETIFF %s", tap);
		close(fd);
		return -1;
	}
	return fd;
}

static int create_tap(const char *tap, pv_err_t **err)
{
	cleanup_close int fd = tun_attach(tap, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, err);

	if (fd < 0)
		return -1;
	if (ioctl(fd, TUNSETPERSIST, 1) < 0)
		return pv_err_sys(err, PV_INTERNAL, "TUNSETPERSIST %s", tap);
	return 0;
}

static int link_up_mtu(struct nl_sock *sk, const char *name, int mtu, int *ifindex, pv_err_t **err)
{
	struct rtnl_link *link = NULL, *change;
	int r = rtnl_link_get_kernel(sk, 0, name, &link);

	if (r < 0)
		return nl_fail(err, r, "find link", name);
	*ifindex = rtnl_link_get_ifindex(link);
	change = rtnl_link_alloc();
	rtnl_link_set_mtu(change, (unsigned int)mtu);
	rtnl_link_set_flags(change, IFF_UP);
	r = rtnl_link_change(sk, link, change, 0);
	rtnl_link_put(change);
	rtnl_link_put(link);
	return r < 0 ? nl_fail(err, r, "set mtu/up on", name) : 0;
}

/* Remove an ingress qdisc (and with it its filters); none there is fine. */
static int del_ingress(struct nl_sock *sk, int ifindex, const char *name, pv_err_t **err)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	int r;

	rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
	rtnl_tc_set_handle(TC_CAST(q), INGRESS_HANDLE);
	rtnl_tc_set_kind(TC_CAST(q), "ingress");
	r = rtnl_qdisc_delete(sk, q);
	rtnl_qdisc_put(q);
	if (r < 0 && r != -NLE_OBJ_NOTFOUND && r != -NLE_INVAL && r != -NLE_NOATTR && r != -NLE_NODEV)
		return nl_fail(err, r, "delete ingress qdisc on", name);
	return 0;
}

/* A fresh ingress qdisc: an old one (from an earlier setup) goes first, so filters never pile up. */
static int add_ingress(struct nl_sock *sk, int ifindex, const char *name, pv_err_t **err)
{
	struct rtnl_qdisc *q;
	int r;

	if (del_ingress(sk, ifindex, name, err) < 0)
		return -1;
	q = rtnl_qdisc_alloc();
	rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
	rtnl_tc_set_kind(TC_CAST(q), "ingress");
	rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
	rtnl_tc_set_handle(TC_CAST(q), INGRESS_HANDLE);
	r = rtnl_qdisc_add(sk, q, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_qdisc_put(q);
	return r < 0 ? nl_fail(err, r, "add ingress qdisc on", name) : 0;
}

/*
 * u32 "match u32 0 0 at 0" (every frame) on from's ingress, action mirred egress
 * redirect to `to`, frame stolen. u32 rather than matchall: kernels without
 * CONFIG_NET_CLS_MATCHALL (like these test machines') still have u32.
 */
static int add_redirect(struct nl_sock *sk, int from, int to, const char *name, pv_err_t **err)
{
	struct rtnl_cls *cls = rtnl_cls_alloc();
	struct rtnl_act *act = rtnl_act_alloc();
	int r;

	rtnl_tc_set_ifindex(TC_CAST(cls), from);
	rtnl_tc_set_parent(TC_CAST(cls), INGRESS_HANDLE);
	rtnl_tc_set_kind(TC_CAST(cls), "u32");
	rtnl_cls_set_prio(cls, 1);
	rtnl_cls_set_protocol(cls, ETH_P_ALL);
	rtnl_u32_add_key_uint32(cls, 0, 0, 0, 0);
	rtnl_u32_set_cls_terminal(cls);
	rtnl_tc_set_kind(TC_CAST(act), "mirred");
	rtnl_mirred_set_action(act, TCA_EGRESS_REDIR);
	rtnl_mirred_set_policy(act, TC_ACT_STOLEN);
	rtnl_mirred_set_ifindex(act, (uint32_t)to);
	rtnl_u32_add_action(cls, act);
	r = rtnl_cls_add(sk, cls, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_act_put(act);
	rtnl_cls_put(cls);
	return r < 0 ? nl_fail(err, r, "add mirred redirect on", name) : 0;
}

/* The netns stack is out of the path once the veth's frames are redirected; keep it from
 * sending its own IPv6 (RS, MLD) with the MAC the guest now uses. No IPv6 at all is fine. */
static void veth_ipv6_off(const char *veth)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", veth);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) < 0) {
			/* best effort */
		}
		close(fd);
	}
}

/* ---- setup / teardown ----------------------------------------------- */

struct setup_job {
	const char *veth, *tap;
	struct pv_tap_info *info;
};

static int do_setup(void *arg, pv_err_t **err)
{
	struct setup_job *job = arg;
	struct pv_tap_info *info = job->info;
	struct rtnl_link *veth = NULL;
	struct nl_sock *sk = nl_open(err);
	int r = -1;

	if (!sk)
		return -1;
	if ((r = rtnl_link_get_kernel(sk, 0, job->veth, &veth)) < 0) {
		r = nl_fail(err, r, "find veth", job->veth);
		goto out;
	}
	info->veth_ifindex = rtnl_link_get_ifindex(veth);
	info->mtu = (int)rtnl_link_get_mtu(veth);
	nl_addr2str(rtnl_link_get_addr(veth), info->mac, sizeof(info->mac));
	r = -1;
	if (take_addrs(sk, info->veth_ifindex, info, 0, err) < 0 ||
	    collect_routes(sk, info->veth_ifindex, info, err) < 0 || create_tap(job->tap, err) < 0)
		goto out;
	if (link_up_mtu(sk, job->tap, info->mtu, &info->tap_ifindex, err) < 0 ||
	    add_ingress(sk, info->veth_ifindex, job->veth, err) < 0 ||
	    add_ingress(sk, info->tap_ifindex, job->tap, err) < 0 ||
	    add_redirect(sk, info->veth_ifindex, info->tap_ifindex, job->veth, err) < 0 ||
	    add_redirect(sk, info->tap_ifindex, info->veth_ifindex, job->tap, err) < 0 ||
	    take_addrs(sk, info->veth_ifindex, info, 1, err) < 0)
		goto out;
	veth_ipv6_off(job->veth);
	r = 0;
out:
	if (veth)
		rtnl_link_put(veth);
	nl_socket_free(sk);
	return r;
}

void pv_tap_info_free(struct pv_tap_info *info)
{
	if (!info)
		return;
	free(info->addrs);
	free(info->routes);
	free(info);
}

int pv_tap_setup(const char *netns_path, const char *veth, const char *tap, struct pv_tap_info **out,
		 pv_err_t **err)
{
	struct setup_job job = { .veth = veth ? veth : PV_TAP_DEFAULT_VETH, .tap = tap ? tap : PV_TAP_DEFAULT_NAME };

	if (strlen(job.tap) >= IFNAMSIZ)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "tap name '%s' too long", job.tap);
	job.info = pv_xcalloc(1, sizeof(*job.info));
	if (in_netns(netns_path, do_setup, &job, err) < 0) {
		pv_tap_info_free(job.info);
		/* Leave nothing half made behind. */
		pv_tap_teardown(netns_path, job.veth, job.tap, NULL);
		pv_err_prefix(err, "tap setup in %s", netns_path);
		return -1;
	}
	*out = job.info;
	return 0;
}

struct open_job {
	const char *tap;
	int flags;
};

static int do_open(void *arg, pv_err_t **err)
{
	struct open_job *job = arg;
	return tun_attach(job->tap, job->flags, err);
}

int pv_tap_open(const char *netns_path, const char *tap, int vnet_hdr, pv_err_t **err)
{
	struct open_job job = { .tap = tap ? tap : PV_TAP_DEFAULT_NAME,
				.flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0) };
	int fd = in_netns(netns_path, do_open, &job, err);

	if (fd < 0)
		pv_err_prefix(err, "open tap in %s", netns_path);
	return fd;
}

static int do_teardown(void *arg, pv_err_t **err)
{
	struct setup_job *job = arg;
	struct nl_sock *sk = nl_open(err);
	struct rtnl_link *link = NULL;
	int r;

	if (!sk)
		return -1;
	/* The veth's ingress qdisc takes its filters with it; the tap's go with the tap. */
	if (rtnl_link_get_kernel(sk, 0, job->veth, &link) == 0) {
		r = del_ingress(sk, rtnl_link_get_ifindex(link), job->veth, err);
		rtnl_link_put(link);
		link = NULL;
		if (r < 0) {
			nl_socket_free(sk);
			return -1;
		}
	}
	if (rtnl_link_get_kernel(sk, 0, job->tap, &link) == 0) {
		r = rtnl_link_delete(sk, link);
		rtnl_link_put(link);
		if (r < 0 && r != -NLE_OBJ_NOTFOUND && r != -NLE_NODEV) {
			nl_socket_free(sk);
			return nl_fail(err, r, "delete tap", job->tap);
		}
	}
	nl_socket_free(sk);
	return 0;
}

int pv_tap_teardown(const char *netns_path, const char *veth, const char *tap, pv_err_t **err)
{
	struct setup_job job = { .veth = veth ? veth : PV_TAP_DEFAULT_VETH, .tap = tap ? tap : PV_TAP_DEFAULT_NAME };
	pv_err_t *e = NULL;
	int r = in_netns(netns_path, do_teardown, &job, &e);

	if (r < 0 && e && e->status == PV_NOT_FOUND) {
		/* No netns, no devices: nothing to undo. */
		pv_err_free(e);
		return 0;
	}
	pv_err_move(err, e);
	if (r < 0)
		pv_err_prefix(err, "tap teardown in %s", netns_path);
	return r;
}
