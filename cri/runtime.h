/*
 * RuntimeService for pods and containers: metadata in cri/store, one
 * podvisor-shim (and so one VM) per pod, images from cri/image.
 *
 *   cri/shims.c       the pod's state directory, its shim handle, its lifecycle lock
 *   cri/pods.c        RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox
 *   cri/containers.c  Create/Start/Stop/Remove/Status/List, UpdateContainerResources, ReopenContainerLog, ExecSync
 *   cri/stats.c       ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats
 *   cri/events.c      GetContainerEvents and the event fan-out
 *   cri/monitor.c     one thread following every pod's shim (Watch): the one writer of
 *                     container state (exits, dead VMs, dead shims) and of their events
 */
#ifndef PV_CRI_RUNTIME_H
#define PV_CRI_RUNTIME_H

#include <stdbool.h>

#include "daemon.h"
#include "server.h"
#include "store.h"

struct shim_client;
struct Podvisor__Shim__StatusResponse;

/* Start-up: open the store, reconnect to the shims of READY pods, start the monitor. */
int cri_runtime_init(struct pv_daemon *d, pv_err_t **err);
void cri_runtime_fini(struct pv_daemon *d);
struct shim_spawn_opts;
/* How a pod of the default handler that sets no limits is spawned (the default VM shape);
 * the strings are the daemon's. */
void cri_pod_default_spawn_opts(struct pv_daemon *d, struct shim_spawn_opts *o);

/* ---- shims.c ---- */
char *cri_pod_dir(struct pv_daemon *d, const char *pod_id);
/* <root>/disks/<pod id>: the pod's containers' writable disks (qcow2 overlays). On the root
 * dir's disk, not the state dir's (a tmpfs under /run: a disk there would cost RAM). */
char *cri_pod_disk_dir(struct pv_daemon *d, const char *pod_id);
/* <pod dir>/volumes: shared with the pod VM over virtio-9p, host-path volumes bound in it. */
char *cri_pod_volumes_dir(struct pv_daemon *d, const char *pod_id);
/* A pod's entry in the shim table, from RunPodSandbox (or recovery) to RemovePodSandbox. */
struct cri_shim_entry;
void cri_pod_register(struct pv_daemon *d, const char *pod_id);
/* Take the pod's lifecycle lock (serialises Run/Stop/Remove of the pod and Create/Remove
 * of its containers), holding a reference to its entry. NULL + NOT_FOUND if the pod was
 * removed (also when it was removed while we waited for the lock). */
struct cri_shim_entry *cri_pod_lock(struct pv_daemon *d, const char *pod_id, pv_err_t **err);
void cri_pod_unlock(struct pv_daemon *d, struct cri_shim_entry *e);
/* Drop the pod from the table (RemovePodSandbox, or a failed Run); the caller holds its lock. */
void cri_pod_unregister(struct pv_daemon *d, struct cri_shim_entry *locked);
/* A reference of the caller's own to the pod's shim handle (shim/client.h: calls on it
 * are concurrent); drop it with shim_client_unref, or declare it `cleanup_shim`.
 * NOT_FOUND if the pod is not registered. */
int cri_pod_shim(struct pv_daemon *d, const char *pod_id, struct shim_client **out, pv_err_t **err);
/* The pod is READY in the store and its shim says READY (a call to it can succeed). */
bool cri_pod_running(struct pv_daemon *d, const char *pod_id);
/* After a call to the pod's shim failed: when the reason is that the pod is not running
 * any more (stopped under our feet, or its VM or shim died), replace *err with
 * FAILED_PRECONDITION saying so, as the caller can do nothing but run a new pod. */
void cri_pod_refine_err(struct pv_daemon *d, const char *pod_id, pv_err_t **err);
void cri_shims_fini(struct pv_daemon *d);

/* ---- events.c ---- */
void cri_events_emit(struct pv_daemon *d, const char *ctr_id, int type);
void cri_events_fini(struct pv_daemon *d);

/* ---- monitor.c: the one writer of container state ---- */
int cri_monitor_start(struct pv_daemon *d, pv_err_t **err);
void cri_monitor_stop(struct pv_daemon *d);
/* Follow the pod's shim (a long-lived Watch); its changes reach the store and events. */
void cri_monitor_follow(struct pv_daemon *d, const char *pod_id);
/* Forget the pod (after RemovePodSandbox). */
void cri_monitor_forget(struct pv_daemon *d, const char *pod_id);
/* Wait until the store holds the pod's state as of shim seq `seq` (the `seq` of a shim
 * answer), or the shim is gone; 0, or -ETIMEDOUT (logged). */
int cri_monitor_wait_seq(struct pv_daemon *d, const char *pod_id, uint64_t seq, int timeout_ms);
/* After the caller stopped the pod's shim: wait until its final state is folded into the
 * store (containers EXITED with their reason). 0, or -ETIMEDOUT (logged). */
int cri_monitor_settle(struct pv_daemon *d, const char *pod_id, int timeout_ms);

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
struct cri_arena;
struct Podvisor__Agent__Process;
/* The process of an exec in container c (its user, env, cwd), argv = cmd (borrowed). */
int cri_ctr_exec_process(struct pv_daemon *d, struct cri_arena *a, const struct pv_ctr *c, char **cmd, size_t n_cmd,
			 bool tty, struct Podvisor__Agent__Process **out, pv_err_t **err);
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

/* ---- streaming.c: Exec, Attach, PortForward (the server is cri/stream/) ---- */
int cri_streaming_start(struct pv_daemon *d, pv_err_t **err);
void cri_streaming_stop(struct pv_daemon *d);
CRI_HANDLER(cri_ctr_exec);
CRI_HANDLER(cri_ctr_attach);
CRI_HANDLER(cri_pod_port_forward);

#endif
