#include "digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

struct image_hasher {
	EVP_MD_CTX *ctx;
};

int image_digest_valid(const char *s)
{
	if (!s || strncmp(s, "sha256:", 7) || strlen(s) != IMAGE_DIGEST_LEN)
		return 0;
	for (const char *p = s + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

const char *image_digest_hex(const char *digest)
{
	return digest + 7;
}

struct image_hasher *image_hasher_new(void)
{
	struct image_hasher *h = pv_xcalloc(1, sizeof(*h));
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
		abort();
	return h;
}

void image_hasher_update(struct image_hasher *h, const void *buf, size_t len)
{
	if (len && EVP_DigestUpdate(h->ctx, buf, len) != 1)
		abort();
}

void image_hasher_final(struct image_hasher *h, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32)
		abort();
	memcpy(out, "sha256:", 7);
	for (unsigned int i = 0; i < n; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
	image_hasher_free(h);
}

void image_hasher_free(struct image_hasher *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void image_digest_buf(const void *buf, size_t len, char *out)
{
	struct image_hasher *h = image_hasher_new();
	image_hasher_update(h, buf, len);
	image_hasher_final(h, out);
}

int image_digest_file(const char *path, char *out, pv_err_t **err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "open %s", path);
	struct image_hasher *h = image_hasher_new();
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			image_hasher_free(h);
			return pv_err_sys(err, PV_INTERNAL, "read %s", path);
		}
		if (n == 0)
			break;
		image_hasher_update(h, buf, n);
	}
	image_hasher_final(h, out);
	return 0;
}

int image_digest_verify(const void *buf, size_t len, const char *want, pv_err_t **err)
{
	char got[IMAGE_DIGEST_LEN + 1];
	image_digest_buf(buf, len, got);
	if (strcmp(got, want))
		return pv_err_set(err, PV_DATA_LOSS, EIO, "digest mismatch: expected %s, got %s", want, got);
	return 0;
}
