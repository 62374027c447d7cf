/*
 * Pod and container metadata: in memory for the handlers, on disk so it
 * survives a podvisord restart.
 *
 *   <root>/pods/<id>/config.pb        the CRI PodSandboxConfig as sent (protobuf)
 *   <root>/pods/<id>/state.json       what podvisord learnt since (state, times, IPs)
 *   <root>/containers/<id>/config.pb  the CRI ContainerConfig
 *   <root>/containers/<id>/state.json
 *
 * Every file is written atomically; an object whose directory lacks a
 * parsable config.pb is treated as never created and removed at load.
 * Lookups take a full id or a unique prefix of one, as crictl users expect.
 * The store has one lock; callers get copies of what they read, so a
 * handler never holds the lock while it talks to a shim.
 */
#ifndef PV_CRI_STORE_H
#define PV_CRI_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "proto/cri.pb-c.h"

struct pv_store;

struct pv_pod_state {
	int ready;            /* SANDBOX_READY (1) or SANDBOX_NOTREADY (0) */
	int64_t created_ns;
	char *runtime_handler;
	char *backend;        /* "vm" or "host" (cri/backend.h), chosen at RunPodSandbox; NULL: vm */
	char *ip;             /* primary pod IP, NULL until networking gives one */
	char **extra_ips;     /* NULL-terminated, may be NULL */
	char *netns_path;
	char *reason;         /* why NOTREADY, if known */
};

struct pv_ctr_state {
	int state;            /* Runtime__V1__ContainerState */
	int64_t created_ns, started_ns, finished_ns;
	int exit_code;
	char *reason;
	char *message;
	char *image_id;       /* config digest */
	char *image_ref;      /* repo digest the image was pulled by */
	char *image_name;     /* as the user gave it */
	char *image_chain_id; /* the ext4 image the container's disk is backed by (pinned) */
	char *log_path;       /* absolute: pod log_directory + config log_path */
};

/* A snapshot of a pod: owned by the caller, free with pv_pod_free(). */
struct pv_pod {
	char *id;
	Runtime__V1__PodSandboxConfig *config;
	struct pv_pod_state st;
};

struct pv_ctr {
	char *id;
	char *pod_id;
	Runtime__V1__ContainerConfig *config;
	struct pv_ctr_state st;
};

int pv_store_open(const char *root, struct pv_store **out, pv_err_t **err);
void pv_store_close(struct pv_store *s);

/* Pods. Name = metadata name/namespace/uid/attempt; unique among pods. */
int pv_store_pod_add(struct pv_store *s, const Runtime__V1__PodSandboxConfig *cfg, const struct pv_pod_state *st,
		     char **id_out, pv_err_t **err);
int pv_store_pod_get(struct pv_store *s, const char *id_or_prefix, struct pv_pod **out, pv_err_t **err);
int pv_store_pod_set_state(struct pv_store *s, const char *id, const struct pv_pod_state *st, pv_err_t **err);
/* Only `ready` and `reason` (the rest as stored): the monitor and the handlers both
 * change readiness, and neither may write back a stale copy of the other fields. */
int pv_store_pod_set_ready(struct pv_store *s, const char *id, int ready, const char *reason, pv_err_t **err);
int pv_store_pod_remove(struct pv_store *s, const char *id, pv_err_t **err);
/* All pods, snapshots in creation order; *n set. */
struct pv_pod **pv_store_pod_list(struct pv_store *s, size_t *n);
void pv_pod_free(struct pv_pod *p);
void pv_pod_list_free(struct pv_pod **list, size_t n);

/* Containers. Name = metadata name/attempt; unique within its pod. */
int pv_store_ctr_add(struct pv_store *s, const char *pod_id, const Runtime__V1__ContainerConfig *cfg,
		     const struct pv_ctr_state *st, char **id_out, pv_err_t **err);
int pv_store_ctr_get(struct pv_store *s, const char *id_or_prefix, struct pv_ctr **out, pv_err_t **err);
int pv_store_ctr_set_state(struct pv_store *s, const char *id, const struct pv_ctr_state *st, pv_err_t **err);
int pv_store_ctr_remove(struct pv_store *s, const char *id, pv_err_t **err);
struct pv_ctr **pv_store_ctr_list(struct pv_store *s, size_t *n);
void pv_ctr_free(struct pv_ctr *c);
void pv_ctr_list_free(struct pv_ctr **list, size_t n);

/* Deep copies and frees of the state parts. */
void pv_pod_state_copy(struct pv_pod_state *dst, const struct pv_pod_state *src);
void pv_pod_state_clear(struct pv_pod_state *st);
void pv_ctr_state_copy(struct pv_ctr_state *dst, const struct pv_ctr_state *src);
void pv_ctr_state_clear(struct pv_ctr_state *st);

/* Every protobuf-c map<string,string> entry has this layout, whatever its message. */
struct pv_map_entry {
	ProtobufCMessage base;
	char *key;
	char *value;
};
#define PV_MAP(arr) ((struct pv_map_entry *const *)(arr))

/* Label selector: every key=value of sel is present in labels. */
int pv_labels_match(struct pv_map_entry *const *sel, size_t n_sel, struct pv_map_entry *const *labels,
		    size_t n_labels);
/* Lookup in a map; NULL if absent. */
const char *pv_map_get(struct pv_map_entry *const *map, size_t n, const char *key);

#endif
