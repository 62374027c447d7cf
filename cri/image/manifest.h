/* OCI / Docker schema2 manifests, image indexes / manifest lists and image configs (untrusted JSON). */
#ifndef PV_IMAGE_MANIFEST_H
#define PV_IMAGE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

#define IMAGE_MAX_MANIFEST (4 << 20)
#define IMAGE_MAX_CONFIG (8 << 20)

enum image_doc_kind { IMAGE_DOC_MANIFEST = 1, IMAGE_DOC_INDEX = 2 };
enum image_compression { IMAGE_COMP_NONE, IMAGE_COMP_GZIP, IMAGE_COMP_ZSTD };

struct image_descriptor {
	char *media_type;
	char *digest;
	int64_t size;
	char *os, *arch, *variant; /* index entries only, else NULL */
	enum image_compression comp; /* layers only */
};

struct image_doc {
	enum image_doc_kind kind;
	char *media_type;
	/* manifest */
	struct image_descriptor config;
	struct image_descriptor *layers;
	size_t n_layers;
	/* index */
	struct image_descriptor *manifests;
	size_t n_manifests;
};

struct image_config {
	char *os, *arch;
	char *user, *workdir, *stop_signal;
	char **env, **entrypoint, **cmd, **exposed_ports; /* NULL-terminated, NULL if unset */
	char **diff_ids;                                  /* NULL-terminated, never NULL */
	size_t n_diff_ids;
};

/* content_type is the HTTP Content-Type (may be NULL); the JSON mediaType wins when present. */
int image_doc_parse(const char *buf, size_t len, const char *content_type, struct image_doc *out,
		    pv_err_t **err);
void image_doc_free(struct image_doc *d);
/* Pick the index entry for os/arch[/variant]; NOT_FOUND listing what is there. */
int image_doc_select(const struct image_doc *idx, const char *os, const char *arch, const char *variant,
		     const struct image_descriptor **out, pv_err_t **err);

int image_config_parse(const char *buf, size_t len, struct image_config *out, pv_err_t **err);
void image_config_free(struct image_config *c);

/* Chain ID of diff IDs (OCI image spec): "sha256:<hex>" into out[IMAGE_DIGEST_LEN+1]. */
void image_chain_id(char *const *diff_ids, size_t n, char *out);

/* Host platform in OCI terms ("linux", "amd64", variant or NULL). */
void image_host_platform(const char **os, const char **arch, const char **variant);

void image_strv_free(char **v);

#endif
