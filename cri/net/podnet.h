/*
 * A pod's network attachment: netns + CNI ADD in one call, undone in one call.
 *
 * struct pv_podnet is everything DEL needs later (the exact conflist used, the
 * ids, the netns path, the port mappings, the ADD result), so it survives a
 * podvisord restart when the caller stores it with the pod (pv_podnet_save /
 * _load, or _to_json / _from_json to embed it in the pod's own metadata).
 */
#ifndef PV_PODNET_H
#define PV_PODNET_H

#include <jansson.h>

#include "error.h"
#include "net/cni.h"

struct pv_podnet {
	char *id, *name, *namespace, *uid;
	char *netns_path;
	char *ifname;
	json_t *conf;    /* conflist used for ADD */
	json_t *result;  /* ADD result, NULL if ADD did not complete */
	struct pv_cni_port_mapping *ports;  /* strings owned */
	size_t n_ports;
};

/* Create the netns <netns_dir>/<pod->id>, load the config, run ADD. On any
 * failure nothing is left: the chain is DELeted and the netns removed. */
int pv_podnet_add(const struct pv_cni_opts *opts, const struct pv_cni_pod *pod, struct pv_podnet **out,
		  struct pv_cni_result **result, pv_err_t **err);
/* DEL the chain with the saved config, then remove the netns. Idempotent; a
 * netns that is already gone is fine. */
int pv_podnet_del(const struct pv_cni_opts *opts, const struct pv_podnet *pn, pv_err_t **err);

json_t *pv_podnet_to_json(const struct pv_podnet *pn);
int pv_podnet_from_json(json_t *obj, struct pv_podnet **out, pv_err_t **err);
int pv_podnet_save(const struct pv_podnet *pn, const char *path, pv_err_t **err);
int pv_podnet_load(const char *path, struct pv_podnet **out, pv_err_t **err);
void pv_podnet_free(struct pv_podnet *pn);

#endif
