/*
 * The image store under <root>/images: verified blobs by digest, image records, and one
 * read-only ext4 image per chain ID. This is the API podvisord's handlers and the
 * pod/container code use (docs/images.md).
 *
 *   <root>/images/blobs/sha256/<hex>   content (manifests, configs, layers), renamed in once verified
 *   <root>/images/records/<hex>.json   one per image (id = config digest), written atomically
 *   <root>/images/ext4/<hex>.ext4      root filesystem of a chain ID, read-only
 *   <root>/images/tmp/                 partial downloads, locks (wiped at open)
 */
#ifndef PV_IMAGE_STORE_H
#define PV_IMAGE_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "platform.h"
#include "registry.h"

struct image_store;

struct image_info {
	char *id;            /* "sha256:<config digest hex>" */
	char **repo_tags;    /* NULL-terminated: "docker.io/library/busybox:latest" */
	char **repo_digests; /* NULL-terminated: "docker.io/library/busybox@sha256:..." */
	uint64_t size;       /* config + compressed layers, bytes */
	int has_uid;         /* config User is numeric: uid is set, else username (may be NULL) */
	int64_t uid;
	char *username;
	char *chain_id;
	char *ext4_path;     /* read-only root filesystem image */
	char *platform;      /* "linux/arm64": what the image runs on */
	int64_t created_ns;  /* when it was pulled */
	/* from the image config */
	char *user, *workdir, *stop_signal;
	char **env, **entrypoint, **cmd, **exposed_ports; /* NULL-terminated or NULL */
};

/* Opens (creating) the store; cfg is the "image" section of config.json or NULL. */
int image_store_open(const char *root_dir, json_t *cfg, struct image_store **out, pv_err_t **err);
void image_store_close(struct image_store *s);

/* Pull ref (with auth or NULL); *image_id = id of the image, caller frees. */
int image_store_pull(struct image_store *s, const char *ref, const struct registry_auth *auth, char **image_id,
		     pv_err_t **err);
/* Pull for the first of want[0..n_want) that the reference offers (an index's entries in that order
 * of preference); a single-platform image must be one of them. NOT_FOUND names the platforms
 * wanted and those the image has. n_want 0: the configured platform (image.platform or the host),
 * and a single-platform image of any platform is taken. */
int image_store_pull_for(struct image_store *s, const char *ref, const struct registry_auth *auth,
			 const struct image_platform *want, size_t n_want, char **image_id, pv_err_t **err);
/* Look up by id (full or unique prefix of >= 12 hex), tag or digest reference. NOT_FOUND if absent. */
int image_store_resolve(struct image_store *s, const char *name, struct image_info **out, pv_err_t **err);
/* The same; a tag or digest pulled for several platforms gives the first of want that has one
 * (else any: the caller checks info->platform). n_want 0: the configured platform. */
int image_store_resolve_for(struct image_store *s, const char *name, const struct image_platform *want,
			    size_t n_want, struct image_info **out, pv_err_t **err);
/* Resolve like image_store_resolve and pin the image's ext4 file: it survives RemoveImage and GC
 * until every acquire is matched by image_store_release(chain_id). Pins live in memory only: a
 * restarted podvisord re-acquires for the containers it recovers. */
int image_store_acquire(struct image_store *s, const char *name, struct image_info **out, pv_err_t **err);
int image_store_acquire_for(struct image_store *s, const char *name, const struct image_platform *want,
			    size_t n_want, struct image_info **out, pv_err_t **err);
void image_store_release(struct image_store *s, const char *chain_id);
/* All images, sorted by id. */
int image_store_list(struct image_store *s, struct image_info ***out, size_t *n, pv_err_t **err);
/* Remove the image name resolves to (all its tags) and collect unreferenced blobs and ext4 images.
 * An unknown name is not an error (*removed = 0). */
int image_store_remove(struct image_store *s, const char *name, int *removed, pv_err_t **err);
/* Space and inodes used by the store. */
int image_store_usage(struct image_store *s, uint64_t *bytes, uint64_t *inodes, pv_err_t **err);
const char *image_store_dir(const struct image_store *s);

void image_info_free(struct image_info *i);
void image_info_list_free(struct image_info **v, size_t n);

#endif
