/* OCI distribution v2 client (libcurl): manifests and blobs of one repository on one endpoint. */
#ifndef PV_IMAGE_REGISTRY_H
#define PV_IMAGE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct registry_auth {
	const char *username, *password; /* basic credentials (also used for token requests) */
	const char *identity_token;      /* OAuth2 refresh token for the token endpoint */
	const char *registry_token;      /* bearer token sent as is */
};

struct registry_opts {
	long timeout_s;  /* connect timeout and longest stall of a transfer */
	int max_retries; /* on 5xx and dropped connections */
};

struct registry_client;

/* base_url: "https://host[:port]" or "http://..."; repo: "library/busybox". */
struct registry_client *registry_client_new(const char *base_url, const char *repo,
					    const struct registry_auth *auth, const struct registry_opts *opts);
void registry_client_free(struct registry_client *c);

/* GET /v2/<repo>/manifests/<ref>; *digest is the digest of the body (verified if ref is a digest). */
int registry_get_manifest(struct registry_client *c, const char *ref, char **body, size_t *len,
			  char **content_type, char **digest, pv_err_t **err);
/* GET a blob into fd; checks size (-1: unknown) and digest. With resume, bytes already in fd are
 * kept and only the rest is asked for (HTTP Range), also when retrying a dropped transfer. */
int registry_get_blob(struct registry_client *c, const char *digest, int64_t size, int fd, int resume,
		      pv_err_t **err);
/* Small blob into memory (config), verified. */
int registry_get_blob_mem(struct registry_client *c, const char *digest, int64_t size, char **body,
			  size_t *len, pv_err_t **err);

/* Parse a WWW-Authenticate header: scheme ("Bearer"/"Basic") and its realm, service and scope. */
struct registry_challenge {
	char *scheme, *realm, *service, *scope;
};
int registry_parse_challenge(const char *hdr, struct registry_challenge *out);
void registry_challenge_free(struct registry_challenge *ch);

#endif
