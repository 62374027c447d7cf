/* RuntimeService calls about the runtime itself: Version, Status, RuntimeConfig, UpdateRuntimeConfig. */
#ifndef PV_CRI_RUNTIME_INFO_H
#define PV_CRI_RUNTIME_INFO_H

#include "daemon.h"
#include "server.h"

#define PV_RUNTIME_NAME "podvisor"
#define PV_RUNTIME_API_VERSION "v1"
/* The CRI "version" field: the kubelet API version this runtime speaks. */
#define PV_KUBE_API_VERSION "0.1.0"
/* Where `make install` puts the guest kernel and initramfs, relative to <bindir>/.. */
#define CRI_ASSET_DIR_REL "lib/podvisor"

/* Resolve VM assets and load persisted runtime config (pod CIDR). */
int cri_runtime_info_init(struct pv_daemon *d, pv_err_t **err);
void cri_runtime_info_fini(struct pv_daemon *d);
/* A VM asset not named in the config: <bindir>/../<build_rel> (make build), else the installed
 * <prefix>/lib/podvisor/<name> (make install). Heap string. */
char *cri_default_asset(const char *build_rel, const char *name);

int cri_runtime_version(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp,
			pv_err_t **err);
int cri_runtime_status(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp,
		       pv_err_t **err);
int cri_runtime_config(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp,
		       pv_err_t **err);
int cri_runtime_update_config(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp,
			      pv_err_t **err);

#endif
