/* sha256 content digests ("sha256:<64 hex>") over OpenSSL's EVP interface. */
#ifndef PV_IMAGE_DIGEST_H
#define PV_IMAGE_DIGEST_H

#include <stddef.h>

#include "error.h"

#define IMAGE_DIGEST_LEN 71 /* "sha256:" + 64 hex */

struct image_hasher;

/* 1 if s is "sha256:" followed by exactly 64 lowercase hex digits. */
int image_digest_valid(const char *s);
/* Hex part of a valid digest. */
const char *image_digest_hex(const char *digest);

struct image_hasher *image_hasher_new(void);
void image_hasher_update(struct image_hasher *h, const void *buf, size_t len);
/* Writes "sha256:<hex>" into out (IMAGE_DIGEST_LEN + 1 bytes) and frees h. */
void image_hasher_final(struct image_hasher *h, char *out);
void image_hasher_free(struct image_hasher *h);

void image_digest_buf(const void *buf, size_t len, char *out);
/* Digest of a file's contents; -errno on I/O error. */
int image_digest_file(const char *path, char *out, pv_err_t **err);
/* DATA_LOSS error unless buf hashes to want. */
int image_digest_verify(const void *buf, size_t len, const char *want, pv_err_t **err);

#endif
