/* CNI network configuration: find, parse, validate; build a plugin's stdin. */
#include <dirent.h>
#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "net/cni.h"
#include "util.h"

#define CNI_CONF_MAX (1 << 20)

void pv_cni_net_free(struct pv_cni_net *net)
{
	if (!net)
		return;
	free(net->name);
	free(net->cni_version);
	free(net->source);
	json_decref(net->conf);
	free(net);
}

static int valid_type(const char *t)
{
	/* A type names a binary in the bin dirs, never a path. */
	return *t && !strchr(t, '/') && strcmp(t, ".") != 0 && strcmp(t, "..") != 0;
}

int pv_cni_net_from_json(json_t *conf, const char *source, struct pv_cni_net **out, pv_err_t **err)
{
	const char *name, *version;
	json_t *plugins, *p;
	size_t i;

	if (!json_is_object(conf))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "config is not a JSON object");
	name = json_string_value(json_object_get(conf, "name"));
	if (!name || !*name)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "missing or empty \"name\"");
	version = json_string_value(json_object_get(conf, "cniVersion"));
	if (!version || !*version)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "missing or empty \"cniVersion\"");
	plugins = json_object_get(conf, "plugins");
	if (!json_is_array(plugins) || json_array_size(plugins) == 0)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "\"plugins\" must be a non-empty array");
	json_array_foreach(plugins, i, p) {
		const char *type = json_string_value(json_object_get(p, "type"));
		if (!json_is_object(p))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "plugins[%zu] is not an object", i);
		if (!type || !valid_type(type))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "plugins[%zu]: missing or invalid \"type\"", i);
	}
	struct pv_cni_net *net = pv_xcalloc(1, sizeof(*net));
	net->name = pv_xstrdup(name);
	net->cni_version = pv_xstrdup(version);
	net->source = pv_xstrdup(source ? source : "");
	net->conf = json_incref(conf);
	*out = net;
	return 0;
}

int pv_cni_net_parse(const char *text, int is_list, const char *source, struct pv_cni_net **out,
		     pv_err_t **err)
{
	json_error_t jerr;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	int r;

	if (!root)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "invalid JSON at line %d: %s", jerr.line, jerr.text);
	if (!is_list && json_is_object(root)) {
		/* A single plugin config: wrap it into a list of one, as libcni does. */
		json_t *list = json_object();
		json_t *v;
		if ((v = json_object_get(root, "name")))
			json_object_set(list, "name", v);
		if ((v = json_object_get(root, "cniVersion")))
			json_object_set(list, "cniVersion", v);
		json_object_set_new(list, "plugins", json_pack("[O]", root));
		json_decref(root);
		root = list;
	}
	r = pv_cni_net_from_json(root, source, out, err);
	json_decref(root);
	return r;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int conf_kind(const char *name)
{
	size_t n = strlen(name);
	if (n > 9 && strcmp(name + n - 9, ".conflist") == 0)
		return 1;
	if ((n > 5 && strcmp(name + n - 5, ".conf") == 0) || (n > 5 && strcmp(name + n - 5, ".json") == 0))
		return 0;
	return -1;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int pv_cni_net_load(const char *conf_dir, struct pv_cni_net **out, pv_err_t **err)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	if (!conf_dir)
		conf_dir = PV_CNI_DEFAULT_CONF_DIR;
	d = opendir(conf_dir);
	if (!d)
		return pv_err_sys(err, PV_FAILED_PRECONDITION, "no CNI config: cannot read %s", conf_dir);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || conf_kind(de->d_name) < 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			names = pv_xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = pv_xstrdup(de->d_name);
	}
	closedir(d);
	if (n == 0) {
		free(names);
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOENT,
				  "no CNI config: no *.conflist, *.conf or *.json file in %s", conf_dir);
	}
	qsort(names, n, sizeof(*names), name_cmp);

	/* Remember why each file was skipped so the final error says what to fix. */
	cleanup_free char *reasons = pv_xstrdup("");
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *path = pv_xasprintf("%s/%s", conf_dir, names[i]);
		cleanup_free char *text = NULL;
		pv_err_t *e = NULL;
		char *tmp;

		if (pv_read_file(path, CNI_CONF_MAX, &text, NULL, &e) == 0 &&
		    pv_cni_net_parse(text, conf_kind(names[i]) == 1, path, out, &e) == 0) {
			free_names(names, n);
			return 0;
		}
		tmp = pv_xasprintf("%s%s%s: %s", reasons, *reasons ? "; " : "", names[i], e ? e->msg : "?");
		free(reasons);
		reasons = tmp;
		pv_err_free(e);
	}
	free_names(names, n);
	return pv_err_set(err, PV_FAILED_PRECONDITION, EINVAL, "no valid CNI config in %s: %s", conf_dir, reasons);
}

int pv_cni_status(const char *conf_dir, char **reason)
{
	struct pv_cni_net *net = NULL;
	pv_err_t *e = NULL;

	if (pv_cni_net_load(conf_dir, &net, &e) < 0) {
		*reason = pv_xstrdup(e->msg);
		pv_err_free(e);
		return 0;
	}
	pv_cni_net_free(net);
	return 1;
}

static json_t *port_mappings_json(const struct pv_cni_pod *pod)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < pod->n_ports; i++) {
		const struct pv_cni_port_mapping *pm = &pod->ports[i];
		json_t *o;
		/* CRI leaves hostPort 0 for "not published": portmap must not see those. */
		if (pm->host_port <= 0)
			continue;
		o = json_pack("{s:i,s:i,s:s}", "hostPort", pm->host_port, "containerPort", pm->container_port,
			      "protocol", pm->protocol && *pm->protocol ? pm->protocol : "tcp");
		if (pm->host_ip && *pm->host_ip)
			json_object_set_new(o, "hostIP", json_string(pm->host_ip));
		json_array_append_new(arr, o);
	}
	return arr;
}

json_t *pv_cni_plugin_stdin(const struct pv_cni_net *net, size_t index, json_t *prev_result,
			    const struct pv_cni_pod *pod)
{
	json_t *plugin = json_array_get(json_object_get(net->conf, "plugins"), index);
	json_t *in = json_deep_copy(plugin);
	json_t *caps = json_object_get(plugin, "capabilities");

	json_object_set_new(in, "name", json_string(net->name));
	json_object_set_new(in, "cniVersion", json_string(net->cni_version));
	if (prev_result)
		json_object_set(in, "prevResult", prev_result);
	else
		json_object_del(in, "prevResult");
	json_object_del(in, "runtimeConfig");
	if (pod && json_is_true(json_object_get(caps, "portMappings"))) {
		json_t *pm = port_mappings_json(pod);
		if (json_array_size(pm) > 0)
			json_object_set_new(in, "runtimeConfig", json_pack("{s:o}", "portMappings", pm));
		else
			json_decref(pm);
	}
	return in;
}

char *pv_cni_args(const struct pv_cni_pod *pod)
{
	return pv_xasprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;"
			    "K8S_POD_UID=%s",
			    pod->namespace ? pod->namespace : "", pod->name ? pod->name : "", pod->id ? pod->id : "",
			    pod->uid ? pod->uid : "");
}
