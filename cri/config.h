/* podvisord configuration: /etc/podvisor/config.json, overridden by flags (docs/configuration.md). */
#ifndef PV_CRI_CONFIG_H
#define PV_CRI_CONFIG_H

#include <jansson.h>
#include <stdint.h>

#include "error.h"
#include "log.h"

struct pv_config {
	char *config_path;   /* file it was read from, NULL if none */
	char *socket_path;   /* "listen": default /run/podvisor/podvisor.sock */
	char *root_dir;      /* "root": default /var/lib/podvisor */
	char *state_dir;     /* "state": default /run/podvisor (sockets, pids) */
	enum pv_log_level log_level; /* "log_level" */
	char *cgroup_driver; /* "cgroup_driver": "cgroupfs" or "systemd" */
	int max_concurrent_calls; /* "max_concurrent_calls" */
	json_t *image;       /* "image" section, validated by cri/image; NULL if absent (borrowed ref owned here) */
	json_t *runtime;     /* "runtime" section (VM defaults), NULL if absent */
	json_t *network;     /* "network" section (CNI), NULL if absent */
	/* "streaming" section: the Exec/Attach/PortForward server (docs/streaming.md) */
	char *stream_address;  /* "address", default 127.0.0.1 */
	int stream_port;       /* "port", default 0: any free port */
	char *stream_tls_cert; /* "tls_cert" + "tls_key": PEM files, both or neither (NULL: plain HTTP) */
	char *stream_tls_key;
	json_t *root_json;   /* the whole document (owns the sections above) */
	char *source_text;   /* the file's text, for pv_config_key_line() in error messages */
};

/* Defaults, then the file (if any), then nothing else: flags are applied by the caller. */
int pv_config_load(const char *path, int path_is_explicit, struct pv_config **out, pv_err_t **err);
/* Parse a config document from memory; `name` is used in error messages. */
int pv_config_parse(const char *name, const char *text, struct pv_config **out, pv_err_t **err);
void pv_config_free(struct pv_config *cfg);
/* A value of the "runtime" section (validated by cri/runtime_info.c): def / NULL when absent. */
int64_t pv_config_runtime_int(const struct pv_config *cfg, const char *key, int64_t def);
const char *pv_config_runtime_str(const struct pv_config *cfg, const char *key);
/* Line (1-based) of the first occurrence of "key" in text, 0 if not found. */
int pv_config_key_line(const char *text, const char *key);

#define PV_DEFAULT_CONFIG "/etc/podvisor/config.json"
#define PV_DEFAULT_SOCKET "/run/podvisor/podvisor.sock"
#define PV_DEFAULT_ROOT "/var/lib/podvisor"
#define PV_DEFAULT_STATE "/run/podvisor"

#endif
