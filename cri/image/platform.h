/*
 * OCI platforms ("linux/arm64/v8") as small values, and choosing among them: which manifest of
 * a multi-arch index a pod gets, and whether a single-platform image suits a pod. A pod's
 * runtime handler gives an ordered list of platforms it can run (docs/arm64.md).
 */
#ifndef PV_IMAGE_PLATFORM_H
#define PV_IMAGE_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "manifest.h"

#define IMAGE_PLATFORM_FIELD 24
#define IMAGE_PLATFORM_STR (3 * IMAGE_PLATFORM_FIELD)
/* At most this many platforms in one list (a pod accepts one or two). */
#define IMAGE_PLATFORMS_MAX 8

struct image_platform {
	char os[IMAGE_PLATFORM_FIELD];
	char arch[IMAGE_PLATFORM_FIELD]; /* OCI names: amd64, arm64 (aliases x86_64, aarch64 accepted) */
	char variant[IMAGE_PLATFORM_FIELD]; /* "" when none */
};

/* "os/arch[/variant]"; INVALID_ARGUMENT naming the text. */
int image_platform_parse(const char *s, struct image_platform *out, pv_err_t **err);
/* Fields as given; arch aliases normalised (x86_64 -> amd64, aarch64 -> arm64). NULLs are "". */
void image_platform_set(struct image_platform *p, const char *os, const char *arch, const char *variant);
/* "os/arch" or "os/arch/variant" into out[IMAGE_PLATFORM_STR]. */
const char *image_platform_format(const struct image_platform *p, char *out);
/* Same os and arch; variants must agree only when both are given (arm64's v8 is its default). */
bool image_platform_match(const struct image_platform *want, const struct image_platform *have);
/* Index of the first of want[0..n) that have matches, or -1. */
int image_platform_find(const struct image_platform *want, size_t n, const struct image_platform *have);
/* "linux/arm64 or linux/amd64", allocated (caller frees). */
char *image_platforms_describe(const struct image_platform *want, size_t n);

/* The index entry for the first of want[0..n) the index offers; NOT_FOUND naming the wanted
 * platforms and every platform the index has. */
int image_doc_select_platforms(const struct image_doc *idx, const struct image_platform *want, size_t n,
			       const struct image_descriptor **out, pv_err_t **err);

#endif
