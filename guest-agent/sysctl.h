/* Sysctls of the pod, applied in the VM (guest-agent/sysctl.c). */
#ifndef PV_AGENT_SYSCTL_H
#define PV_AGENT_SYSCTL_H

#include <stddef.h>

#include "error.h"

/* The /proc/sys path of a sysctl name ("net.ipv4.ip_forward" or kubelet's "a.b/c.d" form). */
int sysctl_path(const char *key, char *out, size_t outlen, pv_err_t **err);
/* Write value to the sysctl; INVALID_ARGUMENT naming it if the kernel has none or refuses. */
int sysctl_apply(const char *key, const char *value, pv_err_t **err);

#endif
