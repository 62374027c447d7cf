/* One-time tokens: 16 bytes from getrandom, hex; a token is taken once, or expires. */
#include "token.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct stream_token {
	char id[STREAM_TOKEN_LEN + 1];
	int64_t expires_ns;
	struct stream_req *req;
	struct stream_token *next;
};

void stream_tokens_init(struct stream_tokens *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->ttl_ns = STREAM_TOKEN_TTL_NS;
}

void stream_req_free(struct stream_req *r)
{
	if (!r)
		return;
	free(r->pod_id);
	free(r->open_req);
	free(r->ports);
	free(r);
}

void stream_tokens_fini(struct stream_tokens *t)
{
	while (t->head) {
		struct stream_token *k = t->head;
		t->head = k->next;
		stream_req_free(k->req);
		free(k);
	}
	pthread_mutex_destroy(&t->lock);
}

static struct stream_req *req_copy(const struct cri_stream_req *in)
{
	struct stream_req *r = pv_xcalloc(1, sizeof(*r));
	r->kind = in->kind;
	r->pod_id = pv_xstrdup(in->pod_id);
	r->stdin = in->stdin;
	r->stdout = in->stdout;
	r->stderr = in->stderr;
	r->tty = in->tty;
	if (in->open_len) {
		r->open_req = pv_xmalloc(in->open_len);
		memcpy(r->open_req, in->open_req, in->open_len);
		r->open_len = in->open_len;
	}
	if (in->nports) {
		r->ports = pv_xcalloc(in->nports, sizeof(*r->ports));
		memcpy(r->ports, in->ports, in->nports * sizeof(*r->ports));
		r->nports = in->nports;
	}
	return r;
}

/* Drop expired tokens; called with the lock held. */
static void expire(struct stream_tokens *t, int64_t now)
{
	struct stream_token **pp = &t->head;
	while (*pp) {
		struct stream_token *k = *pp;
		if (k->expires_ns <= now) {
			*pp = k->next;
			stream_req_free(k->req);
			free(k);
			t->n--;
		} else {
			pp = &k->next;
		}
	}
}

int stream_token_add(struct stream_tokens *t, const struct cri_stream_req *req, char *out, pv_err_t **err)
{
	uint8_t rnd[STREAM_TOKEN_LEN / 2];
	size_t got = 0;
	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pv_err_sys(err, PV_INTERNAL, "getrandom");
		got += (size_t)n;
	}
	struct stream_token *k = pv_xcalloc(1, sizeof(*k));
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(k->id + 2 * i, 3, "%02x", rnd[i]);
	int64_t now = pv_now_monotonic_ns();
	pthread_mutex_lock(&t->lock);
	expire(t, now);
	if (t->n >= STREAM_TOKEN_MAX) {
		pthread_mutex_unlock(&t->lock);
		free(k);
		return pv_err_set(err, PV_RESOURCE_EXHAUSTED, EAGAIN,
				  "%d streaming requests are waiting for their client: try again later", STREAM_TOKEN_MAX);
	}
	k->expires_ns = now + t->ttl_ns;
	k->req = req_copy(req);
	k->next = t->head;
	t->head = k;
	t->n++;
	memcpy(out, k->id, sizeof(k->id));
	pthread_mutex_unlock(&t->lock);
	return 0;
}

struct stream_req *stream_token_take(struct stream_tokens *t, const char *token)
{
	if (!token || strlen(token) != STREAM_TOKEN_LEN)
		return NULL;
	struct stream_req *r = NULL;
	pthread_mutex_lock(&t->lock);
	expire(t, pv_now_monotonic_ns());
	for (struct stream_token **pp = &t->head; *pp; pp = &(*pp)->next) {
		struct stream_token *k = *pp;
		if (!strcmp(k->id, token)) {
			*pp = k->next;
			r = k->req;
			free(k);
			t->n--;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}
