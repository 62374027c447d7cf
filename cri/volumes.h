/*
 * Host-path volumes (ContainerConfig.mounts) of containers in pod VMs.
 *
 * Every pod VM gets one virtio-9p share of `<pod dir>/volumes` at boot (the shim's
 * --share-dir). At CreateContainer each CRI host_path is bind-mounted on the host at
 * `<pod dir>/volumes/<container id>/<i>`, and the agent binds
 * `/run/podvisor/vol/<container id>/<i>` (the share, as the guest sees it) on the
 * container_path. Those host bind mounts are removed at RemoveContainer, at pod stop,
 * and when CreateContainer fails: none outlives its container or pod.
 */
#ifndef PV_CRI_VOLUMES_H
#define PV_CRI_VOLUMES_H

#include "guest_abi.h"

#include <stddef.h>

#include "error.h"
#include "proto/agent.pb-c.h"
#include "proto/cri.pb-c.h"

/* Where the guest agent mounts the pod's share (see guest-agent/agent.h). */
#define CRI_VOLUMES_GUEST_DIR PV_GUEST_VOL_DIR

/*
 * config.mounts: paths, propagation and unsupported features checked, host paths
 * stat()ed. INVALID_ARGUMENT naming config.mounts[i] on the first bad one.
 * own: NULL-terminated list of podvisor's own directories (root, state). A host path
 * (resolved) in one of them is refused; one above them only when read-only, recursively
 * so, with private propagation (else the pod could write podvisor's state through 9p).
 */
int cri_volumes_check(const Runtime__V1__ContainerConfig *cfg, const char *const *own, pv_err_t **err);
/* The same for a host pod: Bidirectional (rshared) propagation is allowed, and any kind of
 * host path (sockets, devices), as the container is on the node. */
int cri_volumes_check_host(const Runtime__V1__ContainerConfig *cfg, const char *const *own, pv_err_t **err);

/* One container's volumes, set up on the host, and the agent mounts that use them. */
struct cri_volumes {
	size_t n;
	Podvisor__Agent__Mount *mounts; /* n entries, for CreateContainerRequest.mounts */
	char **strings;                 /* owned storage behind mounts */
	size_t nstrings;
};

/*
 * Bind-mount each config.mounts[i].host_path at <share_dir>/<ctr_id>/<i> (read-only on
 * the host too when readonly: the guest cannot write through the share either) and
 * fill *out. Each host path is resolved once and checked against own again (as in
 * cri_volumes_check) before it is bound. On failure what was mounted is undone.
 */
int cri_volumes_setup(const char *share_dir, const char *ctr_id, const Runtime__V1__ContainerConfig *cfg,
		      const char *const *own, struct cri_volumes *out, pv_err_t **err);
void cri_volumes_free(struct cri_volumes *v);
/* A host pod's volumes: the host paths themselves as bind sources, with their propagation
 * ("rprivate", "rslave", "rshared"); nothing is mounted on the host, nothing to release. */
int cri_volumes_direct(const Runtime__V1__ContainerConfig *cfg, struct cri_volumes *out);

/* At pod start, before the VM: create the share directory and make it a private bind mount
 * of itself, so that the volume binds made in it never propagate out of it. */
int cri_volumes_prepare(const char *share_dir, pv_err_t **err);

/* Unmount (detached) and remove everything under <share_dir>/<ctr_id>; ctr_id NULL:
 * every container's, and then the share's own bind mount. Fails if a mount could not be removed (the caller must not then
 * delete the directory tree: it would reach into the host's files). Missing is fine. */
int cri_volumes_release(const char *share_dir, const char *ctr_id, pv_err_t **err);

/* Unmount (detached, children first) whatever is still mounted below dir: what a pod's shim
 * mounted there (a host pod's container layers) when the shim died before it could. */
int cri_volumes_unmount_under(const char *dir, pv_err_t **err);

/* A mount point field of /proc/self/mountinfo with its octal escapes (\040) decoded, in place. */
void cri_volumes_unescape(char *s);

#endif
