/* Pod network attachment: netns + CNI chain, persisted for DEL after a restart. */
#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "net/netns.h"
#include "net/podnet.h"
#include "util.h"

#define PODNET_FILE_MAX (1 << 20)

static char *dup_or_null(const char *s)
{
	return s ? pv_xstrdup(s) : NULL;
}

void pv_podnet_free(struct pv_podnet *pn)
{
	if (!pn)
		return;
	free(pn->id);
	free(pn->name);
	free(pn->namespace);
	free(pn->uid);
	free(pn->netns_path);
	free(pn->ifname);
	json_decref(pn->conf);
	json_decref(pn->result);
	for (size_t i = 0; i < pn->n_ports; i++) {
		free((char *)pn->ports[i].protocol);
		free((char *)pn->ports[i].host_ip);
	}
	free(pn->ports);
	free(pn);
}

static void pod_of(const struct pv_podnet *pn, struct pv_cni_pod *pod)
{
	*pod = (struct pv_cni_pod){ .id = pn->id, .name = pn->name, .namespace = pn->namespace, .uid = pn->uid,
				    .ports = pn->ports, .n_ports = pn->n_ports };
}

int pv_podnet_add(const struct pv_cni_opts *opts, const struct pv_cni_pod *pod, struct pv_podnet **out,
		  struct pv_cni_result **result, pv_err_t **err)
{
	struct pv_cni_net *net = NULL;
	struct pv_cni_result *res = NULL;
	char *netns = NULL;
	struct pv_podnet *pn;

	if (!pod->id || !*pod->id)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "pod network: empty sandbox id");
	if (pv_cni_net_load(opts->conf_dir, &net, err) < 0)
		return -1;
	if (pv_netns_create(opts->netns_dir, pod->id, &netns, err) < 0) {
		pv_cni_net_free(net);
		return -1;
	}
	if (pv_cni_add(opts, net, pod, netns, &res, err) < 0) {
		/* pv_cni_add has already DELeted the chain. */
		pv_netns_delete(netns, NULL);
		free(netns);
		pv_cni_net_free(net);
		return -1;
	}
	pn = pv_xcalloc(1, sizeof(*pn));
	pn->id = pv_xstrdup(pod->id);
	pn->name = dup_or_null(pod->name);
	pn->namespace = dup_or_null(pod->namespace);
	pn->uid = dup_or_null(pod->uid);
	pn->netns_path = netns;
	pn->ifname = pv_xstrdup(opts->ifname ? opts->ifname : PV_CNI_DEFAULT_IFNAME);
	pn->conf = json_incref(net->conf);
	pn->result = json_incref(res->json);
	pn->ports = pv_xcalloc(pod->n_ports + 1, sizeof(*pn->ports));
	for (size_t i = 0; i < pod->n_ports; i++) {
		pn->ports[i] = pod->ports[i];
		pn->ports[i].protocol = dup_or_null(pod->ports[i].protocol);
		pn->ports[i].host_ip = dup_or_null(pod->ports[i].host_ip);
	}
	pn->n_ports = pod->n_ports;
	pv_cni_net_free(net);
	*out = pn;
	if (result)
		*result = res;
	else
		pv_cni_result_free(res);
	return 0;
}

int pv_podnet_del(const struct pv_cni_opts *opts, const struct pv_podnet *pn, pv_err_t **err)
{
	struct pv_cni_opts o = *opts;
	struct pv_cni_net *net = NULL;
	struct pv_cni_pod pod;
	int r;

	if (pv_cni_net_from_json(pn->conf, "saved attachment", &net, err) < 0) {
		pv_err_prefix(err, "pod network of %s", pn->id);
		return -1;
	}
	o.ifname = pn->ifname;
	pod_of(pn, &pod);
	/* The spec lets DEL run without a netns; plugins reject a path that is no longer one. */
	r = pv_cni_del(&o, net, &pod, pv_netns_exists(pn->netns_path) ? pn->netns_path : "", pn->result, err);
	pv_cni_net_free(net);
	if (r < 0)
		return r;
	return pv_netns_delete(pn->netns_path, err);
}

json_t *pv_podnet_to_json(const struct pv_podnet *pn)
{
	json_t *ports = json_array();

	for (size_t i = 0; i < pn->n_ports; i++) {
		const struct pv_cni_port_mapping *p = &pn->ports[i];
		json_array_append_new(ports, json_pack("{s:i,s:i,s:s?,s:s?}", "hostPort", p->host_port, "containerPort",
						       p->container_port, "protocol", p->protocol, "hostIP", p->host_ip));
	}
	return json_pack("{s:s,s:s?,s:s?,s:s?,s:s,s:s,s:O,s:O?,s:o}", "id", pn->id, "name", pn->name, "namespace",
			 pn->namespace, "uid", pn->uid, "netns", pn->netns_path, "ifname", pn->ifname, "config",
			 pn->conf, "result", pn->result, "portMappings", ports);
}

static char *get_str(json_t *o, const char *key)
{
	return dup_or_null(json_string_value(json_object_get(o, key)));
}

int pv_podnet_from_json(json_t *obj, struct pv_podnet **out, pv_err_t **err)
{
	json_t *ports = json_object_get(obj, "portMappings"), *p;
	struct pv_podnet *pn;
	size_t i;

	if (!json_is_string(json_object_get(obj, "id")) || !json_is_string(json_object_get(obj, "netns")) ||
	    !json_is_string(json_object_get(obj, "ifname")) || !json_is_object(json_object_get(obj, "config")))
		return pv_err_set(err, PV_DATA_LOSS, EINVAL, "pod network record lacks id, netns, ifname or config");
	pn = pv_xcalloc(1, sizeof(*pn));
	pn->id = get_str(obj, "id");
	pn->name = get_str(obj, "name");
	pn->namespace = get_str(obj, "namespace");
	pn->uid = get_str(obj, "uid");
	pn->netns_path = get_str(obj, "netns");
	pn->ifname = get_str(obj, "ifname");
	pn->conf = json_incref(json_object_get(obj, "config"));
	pn->result = json_is_object(json_object_get(obj, "result")) ? json_incref(json_object_get(obj, "result")) : NULL;
	pn->ports = pv_xcalloc(json_array_size(ports) + 1, sizeof(*pn->ports));
	json_array_foreach(ports, i, p) {
		struct pv_cni_port_mapping *m = &pn->ports[pn->n_ports++];
		m->host_port = (int)json_integer_value(json_object_get(p, "hostPort"));
		m->container_port = (int)json_integer_value(json_object_get(p, "containerPort"));
		m->protocol = get_str(p, "protocol");
		m->host_ip = get_str(p, "hostIP");
	}
	*out = pn;
	return 0;
}

int pv_podnet_save(const struct pv_podnet *pn, const char *path, pv_err_t **err)
{
	json_t *j = pv_podnet_to_json(pn);
	cleanup_free char *text = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(j);
	return pv_write_file_atomic(path, text, strlen(text), 0600, err);
}

int pv_podnet_load(const char *path, struct pv_podnet **out, pv_err_t **err)
{
	cleanup_free char *text = NULL;
	json_error_t jerr;
	json_t *j;
	int r;

	if (pv_read_file(path, PODNET_FILE_MAX, &text, NULL, err) < 0)
		return -1;
	j = json_loads(text, 0, &jerr);
	if (!j)
		return pv_err_set(err, PV_DATA_LOSS, EINVAL, "%s: invalid JSON: %s", path, jerr.text);
	r = pv_podnet_from_json(j, out, err);
	json_decref(j);
	if (r < 0)
		pv_err_prefix(err, "%s", path);
	return r;
}
