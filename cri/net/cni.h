/*
 * CNI client: load the network config, run the plugin chain, parse results.
 *
 * Follows the CNI spec (github.com/containernetworking/cni SPEC.md): plugins
 * are executables found in the bin dirs, called with CNI_* environment
 * variables and the network config on stdin; ADD runs the chain in order
 * passing each result as the next plugin's prevResult, DEL runs it in
 * reverse. Results of versions 0.3.x, 0.4.0 and 1.0.0 are understood.
 */
#ifndef PV_CNI_H
#define PV_CNI_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"

#define PV_CNI_DEFAULT_CONF_DIR "/etc/cni/net.d"
#define PV_CNI_DEFAULT_BIN_DIRS "/opt/cni/bin:/usr/lib/cni"
#define PV_CNI_DEFAULT_IFNAME "eth0"
#define PV_CNI_DEFAULT_TIMEOUT_MS 60000

/* Where to find things; NULL / 0 fields take the defaults above. */
struct pv_cni_opts {
	const char *conf_dir;
	const char *bin_dirs;   /* ':'-separated, becomes CNI_PATH */
	const char *netns_dir;  /* for pv_podnet_*; NULL = PV_NETNS_DEFAULT_DIR */
	const char *ifname;
	int timeout_ms;         /* per plugin call */
};

/* A loaded network configuration list. */
struct pv_cni_net {
	char *name;
	char *cni_version;
	char *source;   /* file it came from ("" when parsed from text) */
	json_t *conf;   /* the conflist: {cniVersion, name, plugins:[...]} */
};

struct pv_cni_port_mapping {
	int host_port;
	int container_port;
	const char *protocol; /* "tcp", "udp", "sctp"; NULL = tcp */
	const char *host_ip;  /* NULL or "" = all */
};

/* What a pod contributes to a plugin call. */
struct pv_cni_pod {
	const char *id;         /* sandbox id: CNI_CONTAINERID, K8S_POD_INFRA_CONTAINER_ID */
	const char *name;       /* K8S_POD_NAME */
	const char *namespace;  /* K8S_POD_NAMESPACE */
	const char *uid;        /* K8S_POD_UID */
	const struct pv_cni_port_mapping *ports;
	size_t n_ports;
};

struct pv_cni_iface {
	char *name;
	char *mac;      /* NULL if not reported */
	char *sandbox;  /* netns path, NULL for host-side interfaces */
};

struct pv_cni_ip {
	int family;      /* 4 or 6 */
	char *address;   /* CIDR, "10.88.0.5/16" */
	char *gateway;   /* NULL if none */
	int interface;   /* index into ifaces, -1 if not given */
};

struct pv_cni_route {
	char *dst;  /* CIDR */
	char *gw;   /* NULL = default gateway of the matching IP */
};

struct pv_cni_dns {
	char **nameservers;
	size_t n_nameservers;
	char *domain;
	char **search;
	size_t n_search;
	char **options;
	size_t n_options;
};

struct pv_cni_result {
	char *cni_version;
	struct pv_cni_iface *ifaces;
	size_t n_ifaces;
	struct pv_cni_ip *ips;
	size_t n_ips;
	struct pv_cni_route *routes;
	size_t n_routes;
	struct pv_cni_dns dns;
	json_t *json;  /* the result as the plugin returned it */
};

/* ---- config ---------------------------------------------------------- */

/* The lexically first *.conflist / *.conf / *.json in conf_dir that is valid.
 * FailedPrecondition with the reasons when there is none. */
int pv_cni_net_load(const char *conf_dir, struct pv_cni_net **out, pv_err_t **err);
/* Parse and validate one file's text; is_list = conflist, else a single plugin config. */
int pv_cni_net_parse(const char *text, int is_list, const char *source, struct pv_cni_net **out,
		     pv_err_t **err);
/* Rebuild from a conflist object (e.g. a saved attachment); validates. */
int pv_cni_net_from_json(json_t *conflist, const char *source, struct pv_cni_net **out, pv_err_t **err);
void pv_cni_net_free(struct pv_cni_net *net);

/* For CRI Status NetworkReady: 1 = a valid config exists, 0 = not, with *reason set (heap). */
int pv_cni_status(const char *conf_dir, char **reason);

/* ---- one plugin call's input -------------------------------------- */

/* stdin for one plugin of the chain: the plugin's object with name and cniVersion
 * injected, prevResult if given, runtimeConfig.portMappings if the plugin has
 * capabilities.portMappings and the pod has port mappings. New reference. */
json_t *pv_cni_plugin_stdin(const struct pv_cni_net *net, size_t index, json_t *prev_result,
			    const struct pv_cni_pod *pod);
/* CNI_ARGS value for a pod. Heap string. */
char *pv_cni_args(const struct pv_cni_pod *pod);

/* ---- results and errors ------------------------------------------- */

int pv_cni_result_parse(const char *text, struct pv_cni_result **out, pv_err_t **err);
int pv_cni_result_from_json(json_t *json, struct pv_cni_result **out, pv_err_t **err);
void pv_cni_result_free(struct pv_cni_result *res);
/* First IP of the given family (4/6) on interface ifname (or any sandbox interface). */
const struct pv_cni_ip *pv_cni_result_pod_ip(const struct pv_cni_result *res, int family, const char *ifname);
/* MAC of the sandbox interface ifname, or NULL. */
const char *pv_cni_result_pod_mac(const struct pv_cni_result *res, const char *ifname);

/* Turn a failed plugin call into an error: the CNI error JSON on stdout
 * ({code, msg, details}) when there is one, else stderr. Always returns -1. */
int pv_cni_plugin_error(const char *plugin, const char *command, int exit_status, const char *out,
			const char *errout, pv_err_t **err);

/* ---- running the chain -------------------------------------------- */

/* Run one plugin binary. *stdout_out gets what it printed (heap) on success.
 * The plugin runs in its own process group (killed as a group on timeout) and is
 * reaped with waitpid(pid): the caller must not ignore SIGCHLD or reap with waitpid(-1). */
int pv_cni_exec(const struct pv_cni_opts *opts, const char *type, const char *command,
		const struct pv_cni_pod *pod, const char *netns_path, json_t *input, char **stdout_out,
		pv_err_t **err);
/* ADD the whole chain; on failure the chain is DELeted again before returning. */
int pv_cni_add(const struct pv_cni_opts *opts, const struct pv_cni_net *net, const struct pv_cni_pod *pod,
	       const char *netns_path, struct pv_cni_result **out, pv_err_t **err);
/* DEL the chain in reverse; prev_result (the ADD result) may be NULL. Runs every
 * plugin even after a failure and reports the first error. */
int pv_cni_del(const struct pv_cni_opts *opts, const struct pv_cni_net *net, const struct pv_cni_pod *pod,
	       const char *netns_path, json_t *prev_result, pv_err_t **err);

#endif
