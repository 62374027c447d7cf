/* One-time tokens of the streaming server: random, single use, expire after 60 s (as kubelet's). */
#ifndef PV_STREAM_TOKEN_H
#define PV_STREAM_TOKEN_H

#include <pthread.h>
#include <stdint.h>

#include "error.h"
#include "stream.h"

#define STREAM_TOKEN_TTL_NS (60LL * 1000 * 1000 * 1000)
#define STREAM_TOKEN_MAX 4096
#define STREAM_TOKEN_LEN 32 /* hex characters */

/* A deep copy of a cri_stream_req, owned by the token table or a session. */
struct stream_req {
	enum cri_stream_kind kind;
	char *pod_id;
	bool stdin, stdout, stderr, tty;
	uint8_t *open_req;
	size_t open_len;
	int32_t *ports;
	size_t nports;
};

struct stream_tokens {
	pthread_mutex_t lock;
	struct stream_token *head;
	size_t n;
	int64_t ttl_ns;
};

void stream_tokens_init(struct stream_tokens *t);
void stream_tokens_fini(struct stream_tokens *t);
/* Store a copy of req under a new token (out: STREAM_TOKEN_LEN chars + NUL). */
int stream_token_add(struct stream_tokens *t, const struct cri_stream_req *req, char *out, pv_err_t **err);
/* Take the request of a token (it is gone afterwards); NULL if unknown, used or expired. */
struct stream_req *stream_token_take(struct stream_tokens *t, const char *token);
void stream_req_free(struct stream_req *r);

#endif
