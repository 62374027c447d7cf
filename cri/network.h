/*
 * Pod networking in podvisord (docs/networking.md): the config's "network"
 * section, NetworkReady for Status, CNI ADD before a pod's VM starts and DEL
 * when it stops. What DEL needs is saved with the pod (network.json), so it
 * works after a podvisord restart too.
 */
#ifndef PV_CRI_NETWORK_H
#define PV_CRI_NETWORK_H

#include "daemon.h"
#include "error.h"
#include "proto/cri.pb-c.h"

struct pv_podnet;
struct pv_cni_result;

int cri_net_init(struct pv_daemon *d, pv_err_t **err);
void cri_net_fini(struct pv_daemon *d);

/* The CNI config dir, plugin dirs and whether networking is on (after cri_net_init). */
void cri_net_paths(const char **conf_dir, const char **bin_dirs, int *enabled);
/* 1 if pods can get a network now, else 0 with *reason and *message (heap). */
int cri_net_ready(struct pv_daemon *d, char **reason, char **message);

/*
 * Give the pod a network: netns + CNI ADD, recorded in <root>/pods/<id>/network.json.
 * *netns_out: the netns path for the shim (NULL when networking is disabled);
 * *ip_out / *ip6_out: the pod's addresses (NULL if none). Nothing is left on failure.
 */
int cri_net_setup(struct pv_daemon *d, const char *pod_id, const Runtime__V1__PodSandboxConfig *cfg,
		  char **netns_out, char **ip_out, char **ip6_out, pv_err_t **err);
/* CNI DEL + netns removal from the saved record; idempotent (no record: nothing to do). */
int cri_net_teardown(struct pv_daemon *d, const char *pod_id, pv_err_t **err);

#endif
