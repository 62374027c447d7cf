/* The sandbox: the pod's hostname, DNS settings and sysctls, set once when the pod starts. */
#include "agent.h"
#include "log.h"
#include "sysctl.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Append one resolv.conf line "<key> a b c" when there are items. */
static void resolv_append(char **conf, const char *key, char **items, size_t n)
{
	if (!n)
		return;
	char *line = pv_xasprintf("%s%s", *conf, key);
	for (size_t i = 0; i < n; i++) {
		char *next = pv_xasprintf("%s %s", line, items[i]);
		free(line);
		line = next;
	}
	free(*conf);
	*conf = pv_xasprintf("%s\n", line);
	free(line);
}

int sandbox_create(const Podvisor__Agent__CreateSandboxRequest *req, pv_err_t **err)
{
	if (*req->hostname) {
		if (sethostname(req->hostname, strlen(req->hostname)) < 0)
			return pv_err_sys(err, PV_INVALID_ARGUMENT, "sethostname");
		free(g_agent.sandbox_hostname);
		g_agent.sandbox_hostname = pv_xstrdup(req->hostname);
	}
	if (req->n_dns_servers || req->n_dns_searches || req->n_dns_options) {
		char *conf = pv_xstrdup("");
		for (size_t i = 0; i < req->n_dns_servers; i++) {
			char *n = pv_xasprintf("%snameserver %s\n", conf, req->dns_servers[i]);
			free(conf);
			conf = n;
		}
		resolv_append(&conf, "search", req->dns_searches, req->n_dns_searches);
		resolv_append(&conf, "options", req->dns_options, req->n_dns_options);
		int rc = pv_write_file_atomic(PV_GUEST_RESOLV_CONF, conf, strlen(conf), 0644, err);
		free(conf);
		if (rc < 0)
			return -1;
	}
	for (size_t i = 0; i < req->n_sysctls; i++) {
		if (sysctl_apply(req->sysctls[i]->key, req->sysctls[i]->value, err) < 0)
			return -1;
		pv_info("sysctl set", "name=%s value=%s", req->sysctls[i]->key, req->sysctls[i]->value);
	}
	return 0;
}
