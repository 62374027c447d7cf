/*
 * Bounds on every CRI request, as the Kubernetes API server would have validated what
 * kubelet sends (docs/errors.md, "Bounds on requests"): names and namespaces are DNS-1123
 * subdomains and labels, ids are at most 64 hex digits, attempts fit an int32, and every
 * string, list and map has a size limit. podvisord's server checks each request before
 * its handler runs, so no handler, store file, CNI plugin argv or error message sees
 * multi-megabyte input.
 */
#ifndef PV_CRI_BOUNDS_H
#define PV_CRI_BOUNDS_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CRI_MAX_ID 64                   /* podvisor's ids: 64 hex digits; prefixes of them */
#define CRI_MAX_DNS_LABEL 63            /* namespaces, container names */
#define CRI_MAX_DNS_SUBDOMAIN 253       /* pod names, runtime handlers */
#define CRI_MAX_UID 128                 /* pod uid: Kubernetes' are UUIDs (36) */
#define CRI_MAX_ATTEMPT INT32_MAX       /* a restart count is an int32 in Kubernetes */
#define CRI_MAX_PATH 4095               /* PATH_MAX less the NUL */
#define CRI_MAX_IMAGE 1024              /* name <= 255 (distribution), tag <= 128, a digest */
#define CRI_MAX_ARG (128u << 10)        /* MAX_ARG_STRLEN: one argv/env string execve takes */
#define CRI_MAX_PROCESS (768u << 10)    /* command + args + envs: the spec fits a 1 MiB agent frame */
#define CRI_MAX_LABELS (64u << 10)      /* all keys and values of a labels map */
#define CRI_MAX_ANNOTATIONS (512u << 10) /* twice Kubernetes' 256 KiB for a pod's annotations */
#define CRI_MAX_MAP_KEY 317             /* a qualified name: prefix (253) '/' name (63) */
#define CRI_MAX_MOUNTS 256
#define CRI_MAX_ENVS 65536
#define CRI_MAX_DNS_SERVERS 3           /* Kubernetes' MaxDNSNameservers */
#define CRI_MAX_DNS_SEARCHES 32         /* MaxDNSSearchPaths */
#define CRI_MAX_DNS_SEARCH_CHARS 2048   /* MaxDNSSearchListChars */
#define CRI_MAX_STRING (64u << 10)      /* any other string */
#define CRI_MAX_ITEMS 4096              /* any other list or map */

/* INVALID_ARGUMENT naming the first field (path from the request, "config.metadata.name")
 * that is out of bounds, quoting a short prefix of its value. */
int cri_bounds_check(const ProtobufCMessage *req, pv_err_t **err);

/* The formats, for unit tests and handlers. */
/* A pod's or container's name or namespace: [A-Za-z0-9._-]+, a letter or digit first. */
bool cri_bounds_name(const char *s);
bool cri_bounds_dns_label(const char *s);
bool cri_bounds_dns_subdomain(const char *s);
bool cri_bounds_id(const char *s); /* "" or 1..64 lowercase hex digits */

#endif
