/*
 * podvisor-netctl: drive cri/net (netns + CNI) and sandbox/net (tap + mirred)
 * from the command line, printing JSON. For e2e tests, benchmarks and debugging.
 *
 *   podvisor-netctl [--netns-dir D] [--bin-dirs P] [--timeout-ms N] COMMAND ...
 *     status <confdir>
 *     add <id> <confdir> [--state FILE] [--name N] [--namespace NS] [--uid U] [--port HOST:CONTAINER[/PROTO]]...
 *     del <statefile>
 *     tap-setup <netns> [veth] [tap]
 *     tap-teardown <netns> [veth] [tap]
 *     tap-echo <netns> <tap> <ipv4> <mac> <seconds>   answer ARP and ping on the tap (a stand-in guest)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "net/cni.h"
#include "net/netns.h"
#include "net/podnet.h"
#include "net/tap.h"
#include "util.h"

static struct pv_cni_opts g_opts;

static int fail(pv_err_t *err)
{
	json_t *j = json_pack("{s:b,s:s,s:s}", "ok", 0, "code", pv_status_name(err ? err->status : PV_UNKNOWN),
			      "error", err ? err->msg : "unknown error");
	json_dumpf(j, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(j);
	pv_err_free(err);
	return 1;
}

static void print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_COMPACT);
	putchar('\n');
	fflush(stdout);
	json_decref(j);
}

static int usage(void)
{
	fprintf(stderr, "usage: podvisor-netctl [--netns-dir D] [--bin-dirs P] [--timeout-ms N] "
			"status|add|del|tap-setup|tap-teardown|tap-echo ...\n");
	return 2;
}

static int cmd_status(int argc, char **argv)
{
	char *reason = NULL;
	int ready;

	if (argc != 2)
		return usage();
	ready = pv_cni_status(argv[1], &reason);
	print_json(json_pack("{s:b,s:b,s:s?}", "ok", 1, "ready", ready, "reason", reason));
	free(reason);
	return 0;
}

static int cmd_add(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "state", required_argument, NULL, 's' }, { "name", required_argument, NULL, 'n' },
		{ "namespace", required_argument, NULL, 'N' }, { "uid", required_argument, NULL, 'u' },
		{ "port", required_argument, NULL, 'p' },      { NULL, 0, NULL, 0 },
	};
	struct pv_cni_port_mapping ports[16];
	struct pv_cni_pod pod = { .ports = ports };
	const char *state = NULL;
	char protos[16][8];
	int c;

	optind = 0; /* 0 re-initialises glibc's getopt, so options may follow the arguments */
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 's': state = optarg; break;
		case 'n': pod.name = optarg; break;
		case 'N': pod.namespace = optarg; break;
		case 'u': pod.uid = optarg; break;
		case 'p': {
			struct pv_cni_port_mapping *m = &ports[pod.n_ports];
			if (pod.n_ports == 16)
				return usage();
			memset(m, 0, sizeof(*m));
			strcpy(protos[pod.n_ports], "tcp");
			if (sscanf(optarg, "%d:%d/%7s", &m->host_port, &m->container_port, protos[pod.n_ports]) < 2)
				return usage();
			m->protocol = protos[pod.n_ports++];
			break;
		}
		default: return usage();
		}
	}
	if (argc - optind != 2)
		return usage();
	pod.id = argv[optind];
	struct pv_cni_opts opts = g_opts;
	opts.conf_dir = argv[optind + 1];

	struct pv_podnet *pn = NULL;
	struct pv_cni_result *res = NULL;
	pv_err_t *err = NULL;
	if (pv_podnet_add(&opts, &pod, &pn, &res, &err) < 0)
		return fail(err);
	if (state && pv_podnet_save(pn, state, &err) < 0) {
		pv_podnet_del(&opts, pn, NULL);
		pv_podnet_free(pn);
		pv_cni_result_free(res);
		return fail(err);
	}
	const struct pv_cni_ip *ip4 = pv_cni_result_pod_ip(res, 4, pn->ifname);
	const struct pv_cni_ip *ip6 = pv_cni_result_pod_ip(res, 6, pn->ifname);
	print_json(json_pack("{s:b,s:s,s:s?,s:s?,s:s?,s:s?,s:O,s:o}", "ok", 1, "netns", pn->netns_path, "ip4",
			     ip4 ? ip4->address : NULL, "gateway4", ip4 ? ip4->gateway : NULL, "ip6",
			     ip6 ? ip6->address : NULL, "mac", pv_cni_result_pod_mac(res, pn->ifname), "result", res->json,
			     "attachment", pv_podnet_to_json(pn)));
	pv_podnet_free(pn);
	pv_cni_result_free(res);
	return 0;
}

static int cmd_del(int argc, char **argv)
{
	struct pv_podnet *pn = NULL;
	pv_err_t *err = NULL;

	if (argc != 2)
		return usage();
	if (pv_podnet_load(argv[1], &pn, &err) < 0)
		return fail(err);
	struct pv_cni_opts opts = g_opts;
	if (pv_podnet_del(&opts, pn, &err) < 0) {
		pv_podnet_free(pn);
		return fail(err);
	}
	pv_podnet_free(pn);
	print_json(json_pack("{s:b}", "ok", 1));
	return 0;
}

static int cmd_tap_setup(int argc, char **argv)
{
	struct pv_tap_info *info = NULL;
	pv_err_t *err = NULL;

	if (argc < 2 || argc > 4)
		return usage();
	if (pv_tap_setup(argv[1], argc > 2 ? argv[2] : NULL, argc > 3 ? argv[3] : NULL, &info, &err) < 0)
		return fail(err);
	json_t *addrs = json_array(), *routes = json_array();
	for (size_t i = 0; i < info->n_addrs; i++)
		json_array_append_new(addrs, json_string(info->addrs[i]));
	for (size_t i = 0; i < info->n_routes; i++)
		json_array_append_new(routes, json_pack("{s:s,s:s?}", "dst", info->routes[i].dst, "gw",
							*info->routes[i].gw ? info->routes[i].gw : NULL));
	print_json(json_pack("{s:b,s:s,s:i,s:i,s:i,s:o,s:o}", "ok", 1, "mac", info->mac, "mtu", info->mtu,
			     "veth_ifindex", info->veth_ifindex, "tap_ifindex", info->tap_ifindex, "addrs", addrs,
			     "routes", routes));
	pv_tap_info_free(info);
	return 0;
}

static int cmd_tap_teardown(int argc, char **argv)
{
	pv_err_t *err = NULL;

	if (argc < 2 || argc > 4)
		return usage();
	if (pv_tap_teardown(argv[1], argc > 2 ? argv[2] : NULL, argc > 3 ? argv[3] : NULL, &err) < 0)
		return fail(err);
	print_json(json_pack("{s:b}", "ok", 1));
	return 0;
}

/* ---- tap-echo: the smallest "guest" that answers ARP and ICMP echo -------- */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	g_stop = 1;
}

static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)(p[n - 1] << 8);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Turn a request in f (len n) into its reply in place; returns 1 if it is one to answer. */
static int answer(uint8_t *f, size_t n, const uint8_t ip[4], const uint8_t mac[6], int *kind)
{
	uint16_t type;

	if (n < 14)
		return 0;
	type = (uint16_t)(f[12] << 8 | f[13]);
	if (type == 0x0806 && n >= 42 && f[20] == 0 && f[21] == 1 && memcmp(f + 38, ip, 4) == 0) {
		uint8_t sha[6], spa[4];
		memcpy(sha, f + 22, 6);
		memcpy(spa, f + 28, 4);
		f[21] = 2;
		memcpy(f + 22, mac, 6);
		memcpy(f + 28, ip, 4);
		memcpy(f + 32, sha, 6);
		memcpy(f + 38, spa, 4);
		memcpy(f, sha, 6);
		memcpy(f + 6, mac, 6);
		*kind = 0;
		return 1;
	}
	if (type == 0x0800 && n >= 34) {
		uint8_t *iph = f + 14, tmp[6];
		size_t ihl = (size_t)(iph[0] & 0xf) * 4;
		if (iph[9] != 1 || memcmp(iph + 16, ip, 4) != 0 || n < 14 + ihl + 8 || iph[ihl] != 8)
			return 0;
		uint16_t tot = (uint16_t)(iph[2] << 8 | iph[3]);
		if (tot < ihl + 8 || 14 + (size_t)tot > n)
			return 0;
		uint8_t *icmp = iph + ihl;
		memcpy(tmp, iph + 12, 4);
		memcpy(iph + 12, iph + 16, 4);
		memcpy(iph + 16, tmp, 4);
		icmp[0] = 0;
		icmp[2] = icmp[3] = 0;
		uint16_t c = csum(icmp, tot - ihl);
		icmp[2] = (uint8_t)(c >> 8);
		icmp[3] = (uint8_t)c;
		memcpy(tmp, f + 6, 6);
		memcpy(f, tmp, 6);
		memcpy(f + 6, mac, 6);
		*kind = 1;
		return 1;
	}
	return 0;
}

static int cmd_tap_echo(int argc, char **argv)
{
	uint8_t ip[4], mac[6], frame[65536];
	long frames = 0, arp = 0, icmp = 0;
	pv_err_t *err = NULL;

	if (argc != 6 || inet_pton(AF_INET, argv[3], ip) != 1 ||
	    sscanf(argv[4], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) != 6)
		return usage();
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)atoi(argv[5]) * 1000000000LL;
	cleanup_close int fd = pv_tap_open(argv[1], argv[2], 0, &err);
	if (fd < 0)
		return fail(err);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	print_json(json_pack("{s:b}", "ready", 1));
	while (!g_stop && pv_now_monotonic_ns() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0)
			continue;
		ssize_t n = read(fd, frame, sizeof(frame));
		if (n <= 0)
			continue;
		frames++;
		int kind;
		if (answer(frame, (size_t)n, ip, mac, &kind) && write(fd, frame, (size_t)n) == n)
			kind == 0 ? arp++ : icmp++;
	}
	print_json(json_pack("{s:b,s:I,s:I,s:I}", "ok", 1, "frames", (json_int_t)frames, "arp_replies",
			     (json_int_t)arp, "icmp_replies", (json_int_t)icmp));
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "netns-dir", required_argument, NULL, 'd' },
		{ "bin-dirs", required_argument, NULL, 'b' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "+", lopts, NULL)) != -1) {
		switch (c) {
		case 'd': g_opts.netns_dir = optarg; break;
		case 'b': g_opts.bin_dirs = optarg; break;
		case 't': g_opts.timeout_ms = atoi(optarg); break;
		default: return usage();
		}
	}
	if (optind >= argc)
		return usage();
	argc -= optind;
	argv += optind;
	if (strcmp(argv[0], "status") == 0)
		return cmd_status(argc, argv);
	if (strcmp(argv[0], "add") == 0)
		return cmd_add(argc, argv);
	if (strcmp(argv[0], "del") == 0)
		return cmd_del(argc, argv);
	if (strcmp(argv[0], "tap-setup") == 0)
		return cmd_tap_setup(argc, argv);
	if (strcmp(argv[0], "tap-teardown") == 0)
		return cmd_tap_teardown(argc, argv);
	if (strcmp(argv[0], "tap-echo") == 0)
		return cmd_tap_echo(argc, argv);
	return usage();
}
