/* CNI results (0.3.x, 0.4.0, 1.0.0) and CNI error objects. */
#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "net/cni.h"
#include "util.h"

#define CNI_OUTPUT_SHOWN 512

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void pv_cni_result_free(struct pv_cni_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_ifaces; i++) {
		free(res->ifaces[i].name);
		free(res->ifaces[i].mac);
		free(res->ifaces[i].sandbox);
	}
	free(res->ifaces);
	for (size_t i = 0; i < res->n_ips; i++) {
		free(res->ips[i].address);
		free(res->ips[i].gateway);
	}
	free(res->ips);
	for (size_t i = 0; i < res->n_routes; i++) {
		free(res->routes[i].dst);
		free(res->routes[i].gw);
	}
	free(res->routes);
	free_strv(res->dns.nameservers, res->dns.n_nameservers);
	free(res->dns.domain);
	free_strv(res->dns.search, res->dns.n_search);
	free_strv(res->dns.options, res->dns.n_options);
	free(res->cni_version);
	json_decref(res->json);
	free(res);
}

static char *opt_str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s && *s ? pv_xstrdup(s) : NULL;
}

static int parse_strv(json_t *arr, const char *what, char ***out, size_t *n, pv_err_t **err)
{
	size_t i;
	json_t *v;

	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return pv_err_set(err, PV_INTERNAL, EINVAL, "%s is not an array", what);
	*out = pv_xcalloc(json_array_size(arr) + 1, sizeof(char *));
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v))
			return pv_err_set(err, PV_INTERNAL, EINVAL, "%s[%zu] is not a string", what, i);
		(*out)[(*n)++] = pv_xstrdup(json_string_value(v));
	}
	return 0;
}

static int parse_ips(json_t *arr, struct pv_cni_result *res, pv_err_t **err)
{
	size_t i;
	json_t *o;

	res->ips = pv_xcalloc(json_array_size(arr) + 1, sizeof(*res->ips));
	json_array_foreach(arr, i, o) {
		const char *addr = json_string_value(json_object_get(o, "address"));
		json_t *idx = json_object_get(o, "interface");
		struct pv_cni_ip *ip = &res->ips[res->n_ips];

		if (!json_is_object(o) || !addr || !strchr(addr, '/'))
			return pv_err_set(err, PV_INTERNAL, EINVAL, "ips[%zu]: missing or invalid \"address\"", i);
		if (idx && (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
			    (size_t)json_integer_value(idx) >= res->n_ifaces))
			return pv_err_set(err, PV_INTERNAL, EINVAL, "ips[%zu]: \"interface\" out of range", i);
		res->n_ips++;
		ip->address = pv_xstrdup(addr);
		ip->gateway = opt_str(o, "gateway");
		ip->interface = idx ? (int)json_integer_value(idx) : -1;
		ip->family = strchr(addr, ':') ? 6 : 4;
	}
	return 0;
}

int pv_cni_result_from_json(json_t *root, struct pv_cni_result **out, pv_err_t **err)
{
	struct pv_cni_result *res;
	json_t *ifaces, *ips, *routes, *dns, *o;
	size_t i;
	int r = -1;

	if (!json_is_object(root))
		return pv_err_set(err, PV_INTERNAL, EINVAL, "CNI result is not a JSON object");
	if (json_object_get(root, "ip4") || json_object_get(root, "ip6"))
		return pv_err_set(err, PV_UNIMPLEMENTED, ENOTSUP,
				  "CNI result in the pre-0.3.0 format is not supported; use cniVersion 0.4.0 or 1.0.0");
	ifaces = json_object_get(root, "interfaces");
	ips = json_object_get(root, "ips");
	routes = json_object_get(root, "routes");
	dns = json_object_get(root, "dns");
	if ((ifaces && !json_is_array(ifaces)) || (ips && !json_is_array(ips)) || (routes && !json_is_array(routes)) ||
	    (dns && !json_is_object(dns)))
		return pv_err_set(err, PV_INTERNAL, EINVAL, "CNI result: interfaces/ips/routes/dns of the wrong type");

	res = pv_xcalloc(1, sizeof(*res));
	res->json = json_incref(root);
	res->cni_version = opt_str(root, "cniVersion");
	res->ifaces = pv_xcalloc(json_array_size(ifaces) + 1, sizeof(*res->ifaces));
	json_array_foreach(ifaces, i, o) {
		const char *name = json_string_value(json_object_get(o, "name"));
		if (!name) {
			pv_err_set(err, PV_INTERNAL, EINVAL, "interfaces[%zu]: missing \"name\"", i);
			goto out;
		}
		res->ifaces[res->n_ifaces].name = pv_xstrdup(name);
		res->ifaces[res->n_ifaces].mac = opt_str(o, "mac");
		res->ifaces[res->n_ifaces].sandbox = opt_str(o, "sandbox");
		res->n_ifaces++;
	}
	if (parse_ips(ips, res, err) < 0)
		goto out;
	res->routes = pv_xcalloc(json_array_size(routes) + 1, sizeof(*res->routes));
	json_array_foreach(routes, i, o) {
		const char *dst = json_string_value(json_object_get(o, "dst"));
		if (!dst || !strchr(dst, '/')) {
			pv_err_set(err, PV_INTERNAL, EINVAL, "routes[%zu]: missing or invalid \"dst\"", i);
			goto out;
		}
		res->routes[res->n_routes].dst = pv_xstrdup(dst);
		res->routes[res->n_routes].gw = opt_str(o, "gw");
		res->n_routes++;
	}
	if (parse_strv(json_object_get(dns, "nameservers"), "dns.nameservers", &res->dns.nameservers,
		       &res->dns.n_nameservers, err) < 0 ||
	    parse_strv(json_object_get(dns, "search"), "dns.search", &res->dns.search, &res->dns.n_search, err) < 0 ||
	    parse_strv(json_object_get(dns, "options"), "dns.options", &res->dns.options, &res->dns.n_options, err) < 0)
		goto out;
	res->dns.domain = opt_str(dns, "domain");
	*out = steal_pointer(&res);
	r = 0;
out:
	pv_cni_result_free(res);
	return r;
}

int pv_cni_result_parse(const char *text, struct pv_cni_result **out, pv_err_t **err)
{
	json_error_t jerr;
	json_t *root = json_loads(text, 0, &jerr);
	int r;

	if (!root)
		return pv_err_set(err, PV_INTERNAL, EINVAL, "CNI result is not JSON (line %d: %s)", jerr.line, jerr.text);
	r = pv_cni_result_from_json(root, out, err);
	json_decref(root);
	return r;
}

static int iface_matches(const struct pv_cni_result *res, int idx, const char *ifname)
{
	const struct pv_cni_iface *ifc;

	if (idx < 0 || (size_t)idx >= res->n_ifaces)
		return ifname == NULL;
	ifc = &res->ifaces[idx];
	if (ifname)
		return ifc->sandbox && strcmp(ifc->name, ifname) == 0;
	return ifc->sandbox != NULL;
}

const struct pv_cni_ip *pv_cni_result_pod_ip(const struct pv_cni_result *res, int family, const char *ifname)
{
	/* Prefer an IP tied to the pod's interface; fall back to one with no interface index. */
	for (size_t i = 0; i < res->n_ips; i++)
		if (res->ips[i].family == family && iface_matches(res, res->ips[i].interface, ifname))
			return &res->ips[i];
	for (size_t i = 0; i < res->n_ips; i++)
		if (res->ips[i].family == family && res->ips[i].interface < 0)
			return &res->ips[i];
	return NULL;
}

const char *pv_cni_result_pod_mac(const struct pv_cni_result *res, const char *ifname)
{
	for (size_t i = 0; i < res->n_ifaces; i++)
		if (res->ifaces[i].sandbox && (!ifname || strcmp(res->ifaces[i].name, ifname) == 0))
			return res->ifaces[i].mac;
	return NULL;
}

/* The last line-ish part of a plugin's output, bounded, for messages. */
static char *tail(const char *s)
{
	size_t n;

	if (!s)
		return pv_xstrdup("");
	while (*s == ' ' || *s == '\n' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n > CNI_OUTPUT_SHOWN)
		return pv_xasprintf("...%.*s", CNI_OUTPUT_SHOWN, s + n - CNI_OUTPUT_SHOWN);
	return pv_xstrndup(s, n);
}

int pv_cni_plugin_error(const char *plugin, const char *command, int exit_status, const char *out,
			const char *errout, pv_err_t **err)
{
	json_t *root = out && *out ? json_loads(out, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(root, "msg"));
	const char *details = json_string_value(json_object_get(root, "details"));
	json_t *code = json_object_get(root, "code");

	if (msg) {
		/* Code 11 ("try again later") and 6/7 (bad input) map to gRPC codes kubelet acts on. */
		int c = json_is_integer(code) ? (int)json_integer_value(code) : 0;
		int status = c == 11 ? PV_UNAVAILABLE : (c == 6 || c == 7) ? PV_INVALID_ARGUMENT : PV_UNKNOWN;
		pv_err_set(err, status, 0, "CNI plugin %s %s failed (code %d): %s%s%s", plugin, command, c, msg,
			   details && *details ? ": " : "", details && *details ? details : "");
	} else {
		cleanup_free char *e = tail(errout);
		cleanup_free char *o = tail(out);
		pv_err_set(err, PV_UNKNOWN, 0, "CNI plugin %s %s failed (%s %d)%s%s%s%s", plugin, command,
			   exit_status >= 0 ? "exit status" : "signal", exit_status >= 0 ? exit_status : -exit_status,
			   *e ? ": " : "", e, *o ? "; stdout: " : "", o);
	}
	json_decref(root);
	return -1;
}
