/*
 * Named network namespaces for pods, made the way `ip netns add` makes them:
 * a thread unshare()s a new net namespace and bind-mounts its
 * /proc/thread-self/ns/net onto <dir>/<name>, which keeps the namespace alive
 * after the thread is gone. <dir> is turned into a shared mount point (as
 * iproute2 does with /run/netns) so the bind mount propagates to mount
 * namespaces created later from podvisord's (e.g. a shim's).
 */
#ifndef PV_NETNS_H
#define PV_NETNS_H

#include "error.h"

#define PV_NETNS_DEFAULT_DIR "/run/podvisor/netns"

/* Create <dir>/<name> (dir NULL = default). *path_out is the heap path. AlreadyExists if taken. */
int pv_netns_create(const char *dir, const char *name, char **path_out, pv_err_t **err);
/* Open a namespace file for setns(); returns an O_CLOEXEC fd. NotFound if missing. */
int pv_netns_open(const char *path, pv_err_t **err);
/* setns() the calling thread into the namespace at path. */
int pv_netns_enter(const char *path, pv_err_t **err);
/* Run fn(arg) on a short-lived thread inside the namespace; returns fn's result. */
int pv_netns_run(const char *path, int (*fn)(void *arg, pv_err_t **err), void *arg, pv_err_t **err);
/* Unmount and unlink; a missing or already unmounted path is fine. */
int pv_netns_delete(const char *path, pv_err_t **err);
/* 1 if path is a mounted network namespace, 0 otherwise. */
int pv_netns_exists(const char *path);

#endif
