/* Image references: "busybox", "127.0.0.1:5000/a/b:tag", "repo@sha256:..." (docker normalisation). */
#ifndef PV_IMAGE_REF_H
#define PV_IMAGE_REF_H

#include "error.h"

struct image_ref {
	char *registry; /* "docker.io", "127.0.0.1:5000" */
	char *repo;     /* "library/busybox" */
	char *tag;      /* "latest" when neither tag nor digest given; NULL if only a digest */
	char *digest;   /* "sha256:<64 hex>" or NULL */
};

/* Parse and normalise; INVALID_ARGUMENT naming the reference on error. */
int image_ref_parse(const char *s, struct image_ref *out, pv_err_t **err);
void image_ref_free(struct image_ref *r);
/* "registry/repo" */
char *image_ref_name(const struct image_ref *r);
/* "registry/repo:tag" (NULL if no tag) and "registry/repo@digest" for a given digest. */
char *image_ref_tagged(const struct image_ref *r);
char *image_ref_digested(const struct image_ref *r, const char *digest);

#endif
