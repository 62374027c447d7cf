/* The pod's network on the host side: tap + mirred in the pod netns (sandbox/net),
 * the tap handed to QEMU, and the guest's eth0 configured through the agent. */
#include "shim.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"
#include "net/tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NET_AGENT_TIMEOUT_MS 30000

int shim_net_setup(struct shim *s, int *tap_fd, pv_err_t **err)
{
	*tap_fd = -1;
	if (!s->opts.netns)
		return 0;
	const char *veth = s->opts.veth ? s->opts.veth : PV_TAP_DEFAULT_VETH;
	const char *tap = s->opts.tap ? s->opts.tap : PV_TAP_DEFAULT_NAME;
	if (pv_tap_setup(s->opts.netns, veth, tap, &s->net, err) < 0)
		return -1;
	s->net_up = true;
	int fd = pv_tap_open(s->opts.netns, tap, 1, err);
	if (fd < 0)
		return -1;
	if (!s->opts.mac)
		s->opts.mac = s->net->mac; /* the veth's MAC: what CNI announced */
	pv_info("pod network", "netns=%s veth=%s tap=%s mac=%s addresses=%zu routes=%zu", s->opts.netns, veth, tap,
		s->opts.mac, s->net->n_addrs, s->net->n_routes);
	*tap_fd = fd;
	return 0;
}

static int agent_ok(struct shim *s, Podvisor__Agent__Request *req, Podvisor__Agent__Response **resp,
		    pv_err_t **err)
{
	return pv_agent_call_ok(s->agent, req, NET_AGENT_TIMEOUT_MS, resp, err);
}

int shim_net_configure_guest(struct shim *s, pv_err_t **err)
{
	if (!s->net)
		return 0;
	size_t n = s->net->n_addrs;
	Podvisor__Agent__IpAddress *addrs = pv_xcalloc(n ? n : 1, sizeof(*addrs));
	Podvisor__Agent__IpAddress **paddrs = pv_xcalloc(n ? n : 1, sizeof(*paddrs));
	char (*hosts)[64] = pv_xcalloc(n ? n : 1, 64);
	for (size_t i = 0; i < n; i++) {
		podvisor__agent__ip_address__init(&addrs[i]);
		snprintf(hosts[i], 64, "%s", s->net->addrs[i]);
		char *slash = strchr(hosts[i], '/');
		if (slash) {
			*slash = '\0';
			addrs[i].prefix_len = (uint32_t)atoi(slash + 1);
		}
		addrs[i].address = hosts[i];
		paddrs[i] = &addrs[i];
	}
	Podvisor__Agent__Interface itf = PODVISOR__AGENT__INTERFACE__INIT;
	itf.mac = (char *)s->opts.mac;
	itf.mtu = s->net->mtu > 0 ? (uint32_t)s->net->mtu : 0;
	itf.up = true;
	itf.n_addresses = n;
	itf.addresses = paddrs;
	itf.new_name = "eth0";
	Podvisor__Agent__SetInterfaceRequest si = PODVISOR__AGENT__SET_INTERFACE_REQUEST__INIT;
	si.interface = &itf;
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_SET_INTERFACE;
	req.set_interface = &si;
	Podvisor__Agent__Response *resp = NULL;
	int r = agent_ok(s, &req, &resp, err);
	if (resp)
		podvisor__agent__response__free_unpacked(resp, NULL);
	free(addrs);
	free(paddrs);
	free(hosts);
	if (r < 0) {
		pv_err_prefix(err, "configure guest eth0");
		return -1;
	}
	if (!s->net->n_routes)
		return 0;
	size_t m = s->net->n_routes;
	Podvisor__Agent__Route *routes = pv_xcalloc(m, sizeof(*routes));
	Podvisor__Agent__Route **proutes = pv_xcalloc(m, sizeof(*proutes));
	for (size_t i = 0; i < m; i++) {
		podvisor__agent__route__init(&routes[i]);
		routes[i].destination = s->net->routes[i].dst;
		routes[i].gateway = s->net->routes[i].gw;
		routes[i].device = "eth0";
		proutes[i] = &routes[i];
	}
	Podvisor__Agent__SetRoutesRequest sr = PODVISOR__AGENT__SET_ROUTES_REQUEST__INIT;
	sr.n_routes = m;
	sr.routes = proutes;
	sr.replace = true;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_SET_ROUTES;
	req.set_routes = &sr;
	resp = NULL;
	r = agent_ok(s, &req, &resp, err);
	if (resp)
		podvisor__agent__response__free_unpacked(resp, NULL);
	free(routes);
	free(proutes);
	if (r < 0)
		pv_err_prefix(err, "configure guest routes");
	return r;
}

void shim_net_teardown(struct shim *s)
{
	if (!s->net_up)
		return;
	cleanup_err pv_err_t *err = NULL;
	if (pv_tap_teardown(s->opts.netns, s->opts.veth ? s->opts.veth : PV_TAP_DEFAULT_VETH,
			    s->opts.tap ? s->opts.tap : PV_TAP_DEFAULT_NAME, &err) < 0)
		pv_warn("cannot remove the pod's tap", "error=%s", err->msg);
	s->net_up = false;
}
