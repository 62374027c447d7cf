/* The "image" section of config.json (docs/images.md). */
#ifndef PV_IMAGE_OPTIONS_H
#define PV_IMAGE_OPTIONS_H

#include <jansson.h>
#include <stdint.h>

#include "error.h"

struct image_mirror {
	char *registry; /* "docker.io" */
	char **urls;    /* NULL-terminated base URLs, tried in order before the registry itself */
};

struct image_options {
	char *os, *arch, *variant; /* platform picked from indexes */
	struct image_mirror *mirrors;
	size_t n_mirrors;
	char **insecure; /* NULL-terminated hosts spoken to over plain HTTP */
	long timeout_s;
	int max_retries;
	uint64_t max_unpacked_bytes;   /* uncompressed layer bytes of one image (IMAGE_DEFAULT_MAX_UNPACKED) */
	uint64_t max_unpacked_entries; /* files, directories, links of one image's layers */
};

/* 4 GiB: more than language toolchain images unpack to (GPU/ML stacks, the largest images, need
 * devices a pod VM does not get), and a decompression bomb costs at most twice that on disk (the
 * spool file and the ext4 image) before it is stopped. */
#define IMAGE_DEFAULT_MAX_UNPACKED (4ull << 30)
/* About 200 bytes of podvisord's memory each while the ext4 image is built. */
#define IMAGE_DEFAULT_MAX_ENTRIES (1ull << 20)

/* Defaults when cfg is NULL; INVALID_ARGUMENT naming the key on anything unknown or mistyped. */
int image_options_parse(json_t *cfg, struct image_options *out, pv_err_t **err);
void image_options_free(struct image_options *o);
/* Base URLs to try for a registry host: mirrors first, then the registry (http or https). */
char **image_options_endpoints(const struct image_options *o, const char *registry);

#endif
