/* Network configuration of the pod VM over rtnetlink, with libnl-route. */
#include "agent.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct nl_sock *nl_open(pv_err_t **err)
{
	struct nl_sock *sk = nl_socket_alloc();
	if (!sk) {
		pv_err_set(err, PV_INTERNAL, ENOMEM, "nl_socket_alloc");
		return NULL;
	}
	int rc = nl_connect(sk, NETLINK_ROUTE);
	if (rc < 0) {
		pv_err_set(err, PV_INTERNAL, EIO, "netlink connect: %s", nl_geterror(rc));
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

static int nl_fail(pv_err_t **err, int rc, const char *what)
{
	return pv_err_set(err, PV_INTERNAL, EIO, "%s: %s", what, nl_geterror(rc));
}

/* Address without prefix, as text ("10.0.0.5", "fd00::1"). */
static char *addr_text(struct nl_addr *a)
{
	char buf[INET6_ADDRSTRLEN] = "";
	if (!a)
		return pv_xstrdup("");
	int fam = nl_addr_get_family(a);
	if ((fam == AF_INET || fam == AF_INET6) && nl_addr_get_len(a))
		inet_ntop(fam, nl_addr_get_binary_addr(a), buf, sizeof(buf));
	return pv_xstrdup(buf);
}

static Podvisor__Agent__Interface *describe_link(struct rtnl_link *l, struct nl_cache *addrs)
{
	Podvisor__Agent__Interface *i = pv_xcalloc(1, sizeof(*i));
	podvisor__agent__interface__init(i);
	char buf[64] = "";
	i->name = pv_xstrdup(rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "");
	struct nl_addr *mac = rtnl_link_get_addr(l);
	i->mac = pv_xstrdup(mac ? nl_addr2str(mac, buf, sizeof(buf)) : "");
	i->new_name = pv_xstrdup("");
	i->mtu = rtnl_link_get_mtu(l);
	i->up = (rtnl_link_get_flags(l) & IFF_UP) != 0;
	i->index = (uint32_t)rtnl_link_get_ifindex(l);
	for (struct nl_object *o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;
		if (rtnl_addr_get_ifindex(a) != rtnl_link_get_ifindex(l))
			continue;
		Podvisor__Agent__IpAddress *ip = pv_xcalloc(1, sizeof(*ip));
		podvisor__agent__ip_address__init(ip);
		ip->address = addr_text(rtnl_addr_get_local(a));
		ip->prefix_len = (uint32_t)rtnl_addr_get_prefixlen(a);
		i->addresses = pv_xrealloc(i->addresses, (i->n_addresses + 1) * sizeof(*i->addresses));
		i->addresses[i->n_addresses++] = ip;
	}
	return i;
}

void net_free_interface(Podvisor__Agent__Interface *i)
{
	if (!i)
		return;
	for (size_t k = 0; k < i->n_addresses; k++) {
		free(i->addresses[k]->address);
		free(i->addresses[k]);
	}
	free(i->addresses);
	free(i->name);
	free(i->mac);
	free(i->new_name);
	free(i);
}

void net_free_interfaces(Podvisor__Agent__ListInterfacesResponse *r)
{
	for (size_t k = 0; k < r->n_interfaces; k++)
		net_free_interface(r->interfaces[k]);
	free(r->interfaces);
}

int net_list_interfaces(Podvisor__Agent__ListInterfacesResponse *out, pv_err_t **err)
{
	struct nl_sock *sk = nl_open(err);
	if (!sk)
		return -1;
	struct nl_cache *links = NULL, *addrs = NULL;
	int rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
	if (rc >= 0)
		rc = rtnl_addr_alloc_cache(sk, &addrs);
	if (rc < 0) {
		nl_fail(err, rc, "dump links");
		goto out;
	}
	for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
		out->interfaces = pv_xrealloc(out->interfaces, (out->n_interfaces + 1) * sizeof(*out->interfaces));
		out->interfaces[out->n_interfaces++] = describe_link((struct rtnl_link *)o, addrs);
	}
	rc = 0;
out:
	if (addrs)
		nl_cache_free(addrs);
	if (links)
		nl_cache_free(links);
	nl_socket_free(sk);
	return rc < 0 ? -1 : 0;
}

static struct rtnl_link *find_link(struct nl_cache *links, const Podvisor__Agent__Interface *want)
{
	char buf[64];
	for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;
		if (*want->mac) {
			struct nl_addr *mac = rtnl_link_get_addr(l);
			if (mac && !strcasecmp(nl_addr2str(mac, buf, sizeof(buf)), want->mac))
				return l;
		} else if (rtnl_link_get_name(l) && !strcmp(rtnl_link_get_name(l), want->name)) {
			return l;
		}
	}
	return NULL;
}

/* Replace the link's global addresses with the requested ones. */
static int set_addresses(struct nl_sock *sk, struct nl_cache *addrs, int ifindex,
			 const Podvisor__Agent__Interface *want, pv_err_t **err)
{
	for (struct nl_object *o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;
		if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_scope(a) != RT_SCOPE_UNIVERSE)
			continue;
		int rc = rtnl_addr_delete(sk, a, 0);
		if (rc < 0)
			return nl_fail(err, rc, "delete address");
	}
	for (size_t k = 0; k < want->n_addresses; k++) {
		const Podvisor__Agent__IpAddress *ip = want->addresses[k];
		unsigned char bin[16];
		int fam = strchr(ip->address, ':') ? AF_INET6 : AF_INET;
		if (inet_pton(fam, ip->address, bin) != 1 || ip->prefix_len > (fam == AF_INET ? 32u : 128u))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "bad address %.64s/%u", ip->address,
					  ip->prefix_len);
		struct nl_addr *local = nl_addr_build(fam, bin, fam == AF_INET ? 4 : 16);
		nl_addr_set_prefixlen(local, (int)ip->prefix_len);
		struct rtnl_addr *a = rtnl_addr_alloc();
		rtnl_addr_set_ifindex(a, ifindex);
		rtnl_addr_set_local(a, local);
		int rc = rtnl_addr_add(sk, a, 0);
		rtnl_addr_put(a);
		nl_addr_put(local);
		if (rc == -NLE_EXIST)
			continue;
		if (rc < 0)
			return nl_fail(err, rc, "add address");
	}
	return 0;
}

int net_set_interface(const Podvisor__Agent__Interface *want, Podvisor__Agent__Interface **out, pv_err_t **err)
{
	if (!*want->mac && !*want->name)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "interface needs a name or a mac");
	if (strlen(want->new_name) >= IFNAMSIZ || strlen(want->name) >= IFNAMSIZ || strchr(want->new_name, '/'))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "bad interface name");
	struct nl_sock *sk = nl_open(err);
	if (!sk)
		return -1;
	struct nl_cache *links = NULL, *addrs = NULL;
	int ret = -1;
	int rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
	if (rc < 0) {
		nl_fail(err, rc, "dump links");
		goto out;
	}
	struct rtnl_link *l = find_link(links, want);
	if (!l) {
		pv_err_set(err, PV_NOT_FOUND, ENODEV, "no interface %s", *want->mac ? want->mac : want->name);
		goto out;
	}
	int ifindex = rtnl_link_get_ifindex(l);
	struct rtnl_link *chg = rtnl_link_alloc();
	if (*want->new_name && strcmp(want->new_name, rtnl_link_get_name(l))) {
		/* A link must be down to be renamed. */
		struct rtnl_link *down = rtnl_link_alloc();
		rtnl_link_unset_flags(down, IFF_UP);
		rtnl_link_change(sk, l, down, 0);
		rtnl_link_put(down);
		rtnl_link_set_name(chg, want->new_name);
	}
	if (want->mtu)
		rtnl_link_set_mtu(chg, want->mtu);
	if (want->up)
		rtnl_link_set_flags(chg, IFF_UP);
	else
		rtnl_link_unset_flags(chg, IFF_UP);
	rc = rtnl_link_change(sk, l, chg, 0);
	rtnl_link_put(chg);
	if (rc < 0) {
		nl_fail(err, rc, "change link");
		goto out;
	}
	rc = rtnl_addr_alloc_cache(sk, &addrs);
	if (rc < 0) {
		nl_fail(err, rc, "dump addresses");
		goto out;
	}
	if (set_addresses(sk, addrs, ifindex, want, err) < 0)
		goto out;
	/* Read back what the kernel has now. */
	nl_cache_refill(sk, links);
	nl_cache_refill(sk, addrs);
	struct rtnl_link *now = rtnl_link_get(links, ifindex);
	if (!now) {
		pv_err_set(err, PV_INTERNAL, ENODEV, "interface %d vanished", ifindex);
		goto out;
	}
	*out = describe_link(now, addrs);
	rtnl_link_put(now);
	ret = 0;
out:
	if (addrs)
		nl_cache_free(addrs);
	if (links)
		nl_cache_free(links);
	nl_socket_free(sk);
	return ret;
}

int net_set_mac(const char *name, const char *mac, pv_err_t **err)
{
	struct nl_addr *addr = NULL;
	if (nl_addr_parse(mac, AF_LLC, &addr) < 0 || nl_addr_get_len(addr) != 6) {
		if (addr)
			nl_addr_put(addr);
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "bad MAC address %s", mac);
	}
	struct nl_sock *sk = nl_open(err);
	if (!sk) {
		nl_addr_put(addr);
		return -1;
	}
	struct rtnl_link *l = NULL, *chg = rtnl_link_alloc();
	int ret = -1;
	int rc = rtnl_link_get_kernel(sk, 0, name, &l);
	if (rc < 0) {
		pv_err_set(err, PV_NOT_FOUND, ENODEV, "no interface %s: %s", name, nl_geterror(rc));
		goto out;
	}
	rtnl_link_set_addr(chg, addr);
	rc = rtnl_link_change(sk, l, chg, 0);
	if (rc < 0) {
		nl_fail(err, rc, "change link address");
		goto out;
	}
	ret = 0;
out:
	if (l)
		rtnl_link_put(l);
	rtnl_link_put(chg);
	nl_addr_put(addr);
	nl_socket_free(sk);
	return ret;
}

int net_loopback_up(pv_err_t **err)
{
	Podvisor__Agent__Interface lo = PODVISOR__AGENT__INTERFACE__INIT;
	Podvisor__Agent__IpAddress a4 = PODVISOR__AGENT__IP_ADDRESS__INIT;
	Podvisor__Agent__IpAddress *addrs[1] = { &a4 };
	a4.address = (char *)"127.0.0.1";
	a4.prefix_len = 8;
	lo.name = (char *)"lo";
	lo.up = true;
	lo.addresses = addrs;
	lo.n_addresses = 1;
	Podvisor__Agent__Interface *out = NULL;
	if (net_set_interface(&lo, &out, err) < 0)
		return -1;
	net_free_interface(out);
	return 0;
}

/* ---- routes ------------------------------------------------------------------------------- */

static int parse_prefix(const char *s, int fam_hint, struct nl_addr **out)
{
	if (!*s || !strcmp(s, "default"))
		return nl_addr_parse("default", fam_hint, out);
	return nl_addr_parse(s, fam_hint, out);
}

int net_set_routes(const Podvisor__Agent__SetRoutesRequest *req, pv_err_t **err)
{
	struct nl_sock *sk = nl_open(err);
	if (!sk)
		return -1;
	struct nl_cache *links = NULL, *routes = NULL;
	int ret = -1;
	int rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
	if (rc < 0) {
		nl_fail(err, rc, "dump links");
		goto out;
	}
	if (req->replace) {
		rc = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &routes);
		if (rc < 0) {
			nl_fail(err, rc, "dump routes");
			goto out;
		}
		for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
			struct rtnl_route *r = (struct rtnl_route *)o;
			if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_protocol(r) == RTPROT_KERNEL ||
			    rtnl_route_get_nnexthops(r) < 1)
				continue;
			int idx = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(r, 0));
			for (size_t k = 0; k < req->n_routes; k++) {
				if (idx == rtnl_link_name2i(links, req->routes[k]->device)) {
					rtnl_route_delete(sk, r, 0);
					break;
				}
			}
		}
	}
	for (size_t k = 0; k < req->n_routes; k++) {
		const Podvisor__Agent__Route *rt = req->routes[k];
		int fam = (strchr(rt->destination, ':') || strchr(rt->gateway, ':')) ? AF_INET6 : AF_INET;
		struct nl_addr *dst = NULL, *gw = NULL, *src = NULL;
		if (parse_prefix(rt->destination, fam, &dst) < 0 ||
		    (*rt->gateway && nl_addr_parse(rt->gateway, fam, &gw) < 0) ||
		    (*rt->source && nl_addr_parse(rt->source, fam, &src) < 0)) {
			if (dst)
				nl_addr_put(dst);
			if (gw)
				nl_addr_put(gw);
			pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "route %zu: bad address", k);
			goto out;
		}
		int idx = *rt->device ? rtnl_link_name2i(links, rt->device) : 0;
		if (*rt->device && !idx) {
			nl_addr_put(dst);
			if (gw)
				nl_addr_put(gw);
			if (src)
				nl_addr_put(src);
			pv_err_set(err, PV_NOT_FOUND, ENODEV, "route %zu: no device %.32s", k, rt->device);
			goto out;
		}
		struct rtnl_route *r = rtnl_route_alloc();
		rtnl_route_set_family(r, (uint8_t)fam);
		rtnl_route_set_dst(r, dst);
		rtnl_route_set_table(r, RT_TABLE_MAIN);
		rtnl_route_set_protocol(r, RTPROT_STATIC);
		rtnl_route_set_scope(r, rt->scope ? (uint8_t)rt->scope : (gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK));
		if (rt->metric)
			rtnl_route_set_priority(r, rt->metric);
		if (src)
			rtnl_route_set_pref_src(r, src);
		struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
		if (idx)
			rtnl_route_nh_set_ifindex(nh, idx);
		if (gw)
			rtnl_route_nh_set_gateway(nh, gw);
		rtnl_route_add_nexthop(r, nh);
		rc = rtnl_route_add(sk, r, NLM_F_REPLACE);
		rtnl_route_put(r);
		nl_addr_put(dst);
		if (gw)
			nl_addr_put(gw);
		if (src)
			nl_addr_put(src);
		if (rc < 0) {
			pv_err_set(err, PV_INVALID_ARGUMENT, EIO, "route %zu (%.64s via %.64s): %s", k,
				   rt->destination, rt->gateway, nl_geterror(rc));
			goto out;
		}
	}
	ret = 0;
out:
	if (routes)
		nl_cache_free(routes);
	if (links)
		nl_cache_free(links);
	nl_socket_free(sk);
	return ret;
}

void net_free_routes(Podvisor__Agent__ListRoutesResponse *r)
{
	for (size_t k = 0; k < r->n_routes; k++) {
		Podvisor__Agent__Route *rt = r->routes[k];
		free(rt->destination);
		free(rt->gateway);
		free(rt->device);
		free(rt->source);
		free(rt);
	}
	free(r->routes);
}

int net_list_routes(Podvisor__Agent__ListRoutesResponse *out, pv_err_t **err)
{
	struct nl_sock *sk = nl_open(err);
	if (!sk)
		return -1;
	struct nl_cache *links = NULL, *routes = NULL;
	int rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
	if (rc >= 0)
		rc = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &routes);
	if (rc < 0) {
		nl_fail(err, rc, "dump routes");
		goto out;
	}
	for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *r = (struct rtnl_route *)o;
		if (rtnl_route_get_table(r) != RT_TABLE_MAIN)
			continue;
		Podvisor__Agent__Route *rt = pv_xcalloc(1, sizeof(*rt));
		podvisor__agent__route__init(rt);
		struct nl_addr *dst = rtnl_route_get_dst(r);
		if (!dst || nl_addr_get_prefixlen(dst) == 0) {
			rt->destination = pv_xstrdup("default");
		} else {
			char *a = addr_text(dst);
			rt->destination = pv_xasprintf("%s/%u", a, nl_addr_get_prefixlen(dst));
			free(a);
		}
		rt->gateway = pv_xstrdup("");
		rt->device = pv_xstrdup("");
		if (rtnl_route_get_nnexthops(r) > 0) {
			struct rtnl_nexthop *nh = rtnl_route_nexthop_n(r, 0);
			if (rtnl_route_nh_get_gateway(nh)) {
				free(rt->gateway);
				rt->gateway = addr_text(rtnl_route_nh_get_gateway(nh));
			}
			char name[IFNAMSIZ + 1] = "";
			rtnl_link_i2name(links, rtnl_route_nh_get_ifindex(nh), name, sizeof(name));
			free(rt->device);
			rt->device = pv_xstrdup(name);
		}
		rt->source = addr_text(rtnl_route_get_pref_src(r));
		rt->metric = rtnl_route_get_priority(r);
		rt->scope = rtnl_route_get_scope(r);
		rt->ipv6 = rtnl_route_get_family(r) == AF_INET6;
		out->routes = pv_xrealloc(out->routes, (out->n_routes + 1) * sizeof(*out->routes));
		out->routes[out->n_routes++] = rt;
	}
	rc = 0;
out:
	if (routes)
		nl_cache_free(routes);
	if (links)
		nl_cache_free(links);
	nl_socket_free(sk);
	return rc < 0 ? -1 : 0;
}
