/*
 * Host side of a pod's network: a tap device in the pod's netns joined to the
 * CNI veth with tc ingress `mirred` redirects both ways, built with libnl.
 *
 *   bridge ── veth(host) ══ eth0 (CNI veth, pod netns) ─ingress→ mirred → tap0 ─→ QEMU virtio-net
 *                             ↑                                               │
 *                             └──────── mirred ←─ingress── tap0 ←─────────────┘
 *
 * The veth keeps its MAC; QEMU's virtio-net must use that same MAC
 * (-device virtio-net-device,mac=<info->mac>) so the bridge and the peers'
 * ARP caches keep seeing the address CNI announced. The veth's IP addresses
 * are flushed on the netns side: the guest owns them (set through the agent).
 *
 * The tap is made persistent (TUNSETPERSIST) so it outlives the process that
 * set it up. QEMU should get it as an fd opened by pv_tap_open() in the
 * pod netns (-netdev tap,id=net0,fd=N), so QEMU itself can stay in the host
 * netns; opening it by name (-netdev tap,ifname=tap0,script=no,downscript=no)
 * only works when QEMU runs inside the pod netns.
 */
#ifndef PV_TAP_H
#define PV_TAP_H

#include <stddef.h>

#include "error.h"

#define PV_TAP_DEFAULT_NAME "tap0"
#define PV_TAP_DEFAULT_VETH "eth0"

struct pv_tap_route {
	int family;      /* 4 or 6 */
	char dst[64];    /* CIDR; "0.0.0.0/0" or "::/0" for the default route */
	char gw[64];     /* "" for on-link */
};

struct pv_tap_info {
	char mac[18];    /* the veth's MAC, "aa:bb:cc:dd:ee:ff": give it to virtio-net and the agent */
	int mtu;
	int veth_ifindex;
	int tap_ifindex;
	char (*addrs)[64];  /* CIDRs that were on the veth (IPv6 link-local left out) */
	size_t n_addrs;
	struct pv_tap_route *routes;  /* routes through the veth, minus kernel-made ones */
	size_t n_routes;
};

/* In netns_path: find veth, create tap, copy MTU, bring it up, add the
 * redirects, flush the veth's addresses. Running it again on a pod that is
 * already set up is fine (the addresses are then reported empty). */
int pv_tap_setup(const char *netns_path, const char *veth, const char *tap, struct pv_tap_info **out,
		 pv_err_t **err);
/* Open a queue of the tap for QEMU (O_CLOEXEC: clear it on the fd you pass). */
int pv_tap_open(const char *netns_path, const char *tap, int vnet_hdr, pv_err_t **err);
/* Delete the tap and the veth's ingress qdisc (and so the redirects). Idempotent;
 * a netns that is gone is fine (its devices went with it). */
int pv_tap_teardown(const char *netns_path, const char *veth, const char *tap, pv_err_t **err);
void pv_tap_info_free(struct pv_tap_info *info);

#endif
