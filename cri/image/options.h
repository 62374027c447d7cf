/* The "image" section of config.json (docs/images.md). */
#ifndef PV_IMAGE_OPTIONS_H
#define PV_IMAGE_OPTIONS_H

#include <jansson.h>

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
};

/* Defaults when cfg is NULL; INVALID_ARGUMENT naming the key on anything unknown or mistyped. */
int image_options_parse(json_t *cfg, struct image_options *out, pv_err_t **err);
void image_options_free(struct image_options *o);
/* Base URLs to try for a registry host: mirrors first, then the registry (http or https). */
char **image_options_endpoints(const struct image_options *o, const char *registry);

#endif
