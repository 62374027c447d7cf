#include "network.h"
#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "net/cni.h"
#include "net/podnet.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

struct net_cfg {
	int enabled;
	char *conf_dir, *bin_dirs, *netns_dir;
	int timeout_ms;
};

static struct net_cfg g_net; /* one daemon per process */

static int net_key_error(const struct pv_config *cfg, const char *key, const char *what, pv_err_t **err)
{
	return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s:%d: key \"network.%s\": %s",
			  cfg->config_path ? cfg->config_path : "config", pv_config_key_line(cfg->source_text, key),
			  key, what);
}

int cri_net_init(struct pv_daemon *d, pv_err_t **err)
{
	const struct pv_config *cfg = d->cfg;
	memset(&g_net, 0, sizeof(g_net));
	g_net.enabled = 1;
	g_net.conf_dir = pv_xstrdup(PV_CNI_DEFAULT_CONF_DIR);
	g_net.bin_dirs = pv_xstrdup(PV_CNI_DEFAULT_BIN_DIRS);
	g_net.netns_dir = pv_xasprintf("%s/netns", cfg->state_dir);
	g_net.timeout_ms = PV_CNI_DEFAULT_TIMEOUT_MS;
	const char *key;
	json_t *v;
	json_object_foreach(cfg->network, key, v) {
		char **dst = !strcmp(key, "cni_conf_dir")	  ? &g_net.conf_dir
			     : !strcmp(key, "cni_bin_dirs")	  ? &g_net.bin_dirs
			     : !strcmp(key, "netns_dir")	  ? &g_net.netns_dir
								  : NULL;
		if (dst) {
			if (!json_is_string(v) || !json_string_length(v))
				return net_key_error(cfg, key, "must be a non-empty string", err);
			free(*dst);
			*dst = pv_xstrdup(json_string_value(v));
		} else if (!strcmp(key, "enabled")) {
			if (!json_is_boolean(v))
				return net_key_error(cfg, key, "must be true or false", err);
			g_net.enabled = json_is_true(v);
		} else if (!strcmp(key, "plugin_timeout_s")) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 3600)
				return net_key_error(cfg, key, "must be an integer from 1 to 3600", err);
			g_net.timeout_ms = (int)json_integer_value(v) * 1000;
		} else {
			return net_key_error(cfg, key, "unknown key", err);
		}
	}
	return 0;
}

void cri_net_fini(struct pv_daemon *d)
{
	free(g_net.conf_dir);
	free(g_net.bin_dirs);
	free(g_net.netns_dir);
	memset(&g_net, 0, sizeof(g_net));
}

static struct pv_cni_opts cni_opts(void)
{
	struct pv_cni_opts o = {
		.conf_dir = g_net.conf_dir,
		.bin_dirs = g_net.bin_dirs,
		.netns_dir = g_net.netns_dir,
		.timeout_ms = g_net.timeout_ms,
	};
	return o;
}

void cri_net_paths(const char **conf_dir, const char **bin_dirs, int *enabled)
{
	*conf_dir = g_net.conf_dir;
	*bin_dirs = g_net.bin_dirs;
	*enabled = g_net.enabled;
}

int cri_net_ready(struct pv_daemon *d, char **reason, char **message)
{
	if (!g_net.enabled) {
		*reason = pv_xstrdup("NetworkDisabled");
		*message = pv_xstrdup("pod networking is turned off in the config (network.enabled=false): pods get "
				      "no network interface");
		return 0;
	}
	char *why = NULL;
	if (pv_cni_status(g_net.conf_dir, &why) == 1) {
		free(why);
		return 1;
	}
	*reason = pv_xstrdup("NetworkPluginNotReady");
	*message = pv_xasprintf("no valid CNI network config in %s: %s (a sample is in manifests/cni/)",
				g_net.conf_dir, why ? why : "none found");
	free(why);
	return 0;
}

static char *record_path(struct pv_daemon *d, const char *pod_id)
{
	return pv_xasprintf("%s/pods/%s/network.json", d->cfg->root_dir, pod_id);
}

static const char *protocol_name(int p)
{
	return p == RUNTIME__V1__PROTOCOL__UDP ? "udp" : p == RUNTIME__V1__PROTOCOL__SCTP ? "sctp" : "tcp";
}

/* Strip the prefix length: "10.88.0.5/16" -> "10.88.0.5". */
static char *bare_ip(const char *cidr)
{
	const char *slash = strchr(cidr, '/');
	return slash ? pv_xstrndup(cidr, (size_t)(slash - cidr)) : pv_xstrdup(cidr);
}

int cri_net_setup(struct pv_daemon *d, const char *pod_id, const Runtime__V1__PodSandboxConfig *cfg,
		  char **netns_out, char **ip_out, char **ip6_out, pv_err_t **err)
{
	*netns_out = *ip_out = *ip6_out = NULL;
	if (!g_net.enabled)
		return 0;
	cleanup_free struct pv_cni_port_mapping *ports = pv_xcalloc(cfg->n_port_mappings, sizeof(*ports));
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_port_mappings; i++) {
		const Runtime__V1__PortMapping *pm = cfg->port_mappings[i];
		if (pm->container_port <= 0 || pm->container_port > 65535 || pm->host_port < 0 || pm->host_port > 65535)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "config.port_mappings[%zu]: ports must be in 1..65535", i);
		ports[n].container_port = pm->container_port;
		ports[n].host_port = pm->host_port;
		ports[n].protocol = protocol_name(pm->protocol);
		ports[n].host_ip = pm->host_ip;
		n++;
	}
	struct pv_cni_pod pod = {
		.id = pod_id,
		.name = cfg->metadata->name,
		.namespace = cfg->metadata->namespace_,
		.uid = cfg->metadata->uid,
		.ports = ports,
		.n_ports = n,
	};
	struct pv_cni_opts o = cni_opts();
	struct pv_podnet *pn = NULL;
	struct pv_cni_result *res = NULL;
	if (pv_podnet_add(&o, &pod, &pn, &res, err) < 0) {
		pv_err_prefix(err, "pod network (CNI ADD)");
		return -1;
	}
	cleanup_free char *path = record_path(d, pod_id);
	if (pv_podnet_save(pn, path, err) < 0) {
		pv_podnet_del(&o, pn, NULL);
		pv_podnet_free(pn);
		pv_cni_result_free(res);
		return -1;
	}
	const struct pv_cni_ip *ip4 = pv_cni_result_pod_ip(res, 4, NULL);
	const struct pv_cni_ip *ip6 = pv_cni_result_pod_ip(res, 6, NULL);
	if (ip4)
		*ip_out = bare_ip(ip4->address);
	if (ip6)
		*ip6_out = bare_ip(ip6->address);
	*netns_out = pv_xstrdup(pn->netns_path);
	pv_info("pod network added", "pod=%s netns=%s ip=%s ip6=%s", pod_id, pn->netns_path, *ip_out ? *ip_out : "",
		*ip6_out ? *ip6_out : "");
	pv_podnet_free(pn);
	pv_cni_result_free(res);
	return 0;
}

int cri_net_teardown(struct pv_daemon *d, const char *pod_id, pv_err_t **err)
{
	cleanup_free char *path = record_path(d, pod_id);
	if (access(path, F_OK) < 0)
		return 0;
	struct pv_podnet *pn = NULL;
	if (pv_podnet_load(path, &pn, err) < 0)
		return -1;
	struct pv_cni_opts o = cni_opts();
	int r = pv_podnet_del(&o, pn, err);
	pv_podnet_free(pn);
	if (r < 0) {
		pv_err_prefix(err, "pod network (CNI DEL)");
		return -1;
	}
	/* Forget the record only once DEL has worked, so a retry can still do it. */
	unlink(path);
	pv_info("pod network removed", "pod=%s", pod_id);
	return 0;
}
