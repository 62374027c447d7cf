/* Checks on requests from the host, before the agent acts on them (host-testable). */
#ifndef PV_AGENT_VALIDATE_H
#define PV_AGENT_VALIDATE_H

#include <stdbool.h>

#include "error.h"
#include "proto/agent.pb-c.h"

/* Container / exec ids: [A-Za-z0-9_.-]{1,64}, not "." or "..". */
int validate_id(const char *id, const char *what, pv_err_t **err);
/* Absolute, valid UTF-8, <= 4095 bytes, no "." or ".." components: cannot escape a root. */
int validate_abs_path(const char *path, const char *what, pv_err_t **err);
/* "H:C:T:L", decimal numbers. */
int validate_scsi_address(const char *addr, pv_err_t **err);
/* RLIMIT_* name -> resource number, or -1. */
int validate_rlimit_name(const char *name);
/* Capability name ("CAP_NET_ADMIN") -> number, or -1. */
int validate_cap_name(const char *name);
/* A seccomp profile: known actions/operators/architectures/flags, sane sizes. */
int validate_seccomp(const Podvisor__Agent__Seccomp *s, pv_err_t **err);
/* Whole-request checks: ids, paths, stream ids, argv. INVALID_ARGUMENT on failure. */
int validate_request(const Podvisor__Agent__Request *req, pv_err_t **err);

#endif
