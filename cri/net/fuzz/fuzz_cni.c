/*
 * libFuzzer target: what a broken or hostile CNI plugin or config file can hand
 * podvisord. The first byte picks the parser: a plugin's result, a plugin's
 * error output, a conflist or a single-plugin config (then stdin building on it),
 * or a saved pod network record. Each must fail cleanly, never crash or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "net/cni.h"
#include "net/podnet.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pv_err_t *err = NULL;

	if (size < 1 || size > 65536)
		return 0;
	char *text = pv_xstrndup((const char *)data + 1, size - 1);
	switch (data[0] % 4) {
	case 0: {
		struct pv_cni_result *res = NULL;
		if (pv_cni_result_parse(text, &res, &err) == 0) {
			pv_cni_result_pod_ip(res, 4, "eth0");
			pv_cni_result_pod_ip(res, 6, NULL);
			pv_cni_result_pod_mac(res, "eth0");
			pv_cni_result_free(res);
		}
		break;
	}
	case 1:
		pv_cni_plugin_error("fuzz", "ADD", 1, text, text, &err);
		break;
	case 2: {
		struct pv_cni_net *net = NULL;
		struct pv_cni_port_mapping pm = { .host_port = 80, .container_port = 8080 };
		struct pv_cni_pod pod = { .id = "x", .ports = &pm, .n_ports = 1 };
		if (pv_cni_net_parse(text, data[0] & 4, "fuzz", &net, &err) == 0) {
			size_t n = json_array_size(json_object_get(net->conf, "plugins"));
			for (size_t i = 0; i < n; i++)
				json_decref(pv_cni_plugin_stdin(net, i, NULL, &pod));
			pv_cni_net_free(net);
		}
		break;
	}
	case 3: {
		json_t *j = json_loads(text, 0, NULL);
		struct pv_podnet *pn = NULL;
		if (j && pv_podnet_from_json(j, &pn, &err) == 0) {
			json_decref(pv_podnet_to_json(pn));
			pv_podnet_free(pn);
		}
		json_decref(j);
		break;
	}
	}
	pv_err_free(err);
	free(text);
	return 0;
}
