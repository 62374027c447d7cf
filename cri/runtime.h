/*
 * RuntimeService for pods and containers: metadata in cri/store, one
 * podvisor-shim (and so one VM) per pod, images from cri/image.
 *
 *   cri/shims.c       the pod's state directory, its shim connection, its lifecycle lock
 *   cri/pods.c        RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox
 *   cri/containers.c  Create/Start/Stop/Remove/Status/List, UpdateContainerResources, ReopenContainerLog, ExecSync
 *   cri/stats.c       ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats
 *   cri/events.c      GetContainerEvents and the event fan-out
 *   cri/monitor.c     a thread that follows every pod's shim: exits, dead VMs, dead shims
 */
#ifndef PV_CRI_RUNTIME_H
#define PV_CRI_RUNTIME_H

#include "daemon.h"
#include "server.h"
#include "store.h"

struct shim_client;
struct Podvisor__Shim__StatusResponse;

/* Start-up: open the store, reconnect to the shims of READY pods, start the monitor. */
int cri_runtime_init(struct pv_daemon *d, pv_err_t **err);
void cri_runtime_fini(struct pv_daemon *d);

/* ---- shims.c ---- */
char *cri_pod_dir(struct pv_daemon *d, const char *pod_id);
/* <pod dir>/volumes: shared with the pod VM over virtio-9p, host-path volumes bound in it. */
char *cri_pod_volumes_dir(struct pv_daemon *d, const char *pod_id);
/* A shared connection to the pod's shim (calls on it are serialised). */
int cri_pod_shim(struct pv_daemon *d, const char *pod_id, struct shim_client **out, pv_err_t **err);
/* A connection of the caller's own, for calls that block (Wait, Exec); close it after. */
int cri_pod_shim_private(struct pv_daemon *d, const char *pod_id, struct shim_client **out, pv_err_t **err);
/* Forget the pod's connection and lock (after RemovePodSandbox). */
void cri_pod_shim_forget(struct pv_daemon *d, const char *pod_id);
/* Serialises Run/Stop/Remove of one pod and Create/Remove of its containers. */
void cri_pod_lock(struct pv_daemon *d, const char *pod_id);
void cri_pod_unlock(struct pv_daemon *d, const char *pod_id);
/* Serialises status syncs of one pod (never held across pods: a slow shim stalls only its own). */
void cri_pod_sync_lock(struct pv_daemon *d, const char *pod_id);
void cri_pod_sync_unlock(struct pv_daemon *d, const char *pod_id);
void cri_shims_fini(struct pv_daemon *d);

/* ---- events.c ---- */
void cri_events_emit(struct pv_daemon *d, const char *ctr_id, int type);
void cri_events_fini(struct pv_daemon *d);

/* ---- monitor.c ---- */
/* Bring the store in line with what the pod's shim (or its last state file) reports. */
void cri_monitor_sync_pod(struct pv_daemon *d, const char *pod_id);
int cri_monitor_start(struct pv_daemon *d, pv_err_t **err);
void cri_monitor_stop(struct pv_daemon *d);

/* ---- shared by pods.c and containers.c ---- */
/* Copy a map<string,string> into the call's arena as entries of the given map-entry type. */
void *cri_copy_map(struct cri_call *call, struct pv_map_entry *const *src, size_t n,
		   const ProtobufCMessageDescriptor *desc, size_t *n_out);
#define COPY_MAP(call, dst, src, entry_desc)                                                               \
	((dst)->labels = cri_copy_map(call, PV_MAP((src)->labels), (src)->n_labels, entry_desc, &(dst)->n_labels))
#define COPY_ANNOTATIONS(call, dst, src, entry_desc)                                                       \
	((dst)->annotations = cri_copy_map(call, PV_MAP((src)->annotations), (src)->n_annotations, entry_desc, \
					   &(dst)->n_annotations))

Runtime__V1__ContainerMetadata *cri_ctr_metadata(struct cri_call *call, const Runtime__V1__ContainerConfig *cfg);
Runtime__V1__PodSandboxMetadata *cri_pod_metadata(struct cri_call *call, const Runtime__V1__PodSandboxMetadata *m);
/* Fill a CRI ContainerStatus from a container snapshot. */
Runtime__V1__ContainerStatus *cri_ctr_status_msg(struct cri_call *call, const struct pv_ctr *c);
Runtime__V1__PodSandboxStatus *cri_pod_status_msg(struct cri_call *call, const struct pv_pod *p);
/* Stop (signal, wait, then SIGKILL) a container; already stopped is fine. */
int cri_ctr_stop_now(struct pv_daemon *d, const struct pv_ctr *c, int64_t timeout_s, pv_err_t **err);

#define CRI_HANDLER(name)                                                                                    \
	int name(struct cri_call *call, const ProtobufCMessage *req, ProtobufCMessage **resp, pv_err_t **err)

CRI_HANDLER(cri_pod_run);
CRI_HANDLER(cri_pod_stop);
CRI_HANDLER(cri_pod_remove);
CRI_HANDLER(cri_pod_status);
CRI_HANDLER(cri_pod_list);
CRI_HANDLER(cri_ctr_create);
CRI_HANDLER(cri_ctr_start);
CRI_HANDLER(cri_ctr_stop);
CRI_HANDLER(cri_ctr_remove);
CRI_HANDLER(cri_ctr_status);
CRI_HANDLER(cri_ctr_list);
CRI_HANDLER(cri_ctr_update_resources);
CRI_HANDLER(cri_ctr_reopen_log);
CRI_HANDLER(cri_ctr_exec_sync);
CRI_HANDLER(cri_ctr_stats);
CRI_HANDLER(cri_ctr_list_stats);
CRI_HANDLER(cri_pod_stats);
CRI_HANDLER(cri_pod_list_stats);
CRI_HANDLER(cri_events_get);

#endif
