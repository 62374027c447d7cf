#include "registry.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "digest.h"
#include "manifest.h"
#include "util.h"

#define ERRBODY_MAX 4096

struct registry_client {
	char *base, *repo;
	char *user, *pass, *identity_token;
	char *authz; /* "Authorization: ..." header once known */
	struct registry_opts opts;
};

/* Where a response body goes: memory (capped) or a file with a running digest. */
struct sink {
	CURL *curl;
	char *mem;
	size_t len, cap, max;
	int fd;
	struct image_hasher *hasher;
	int64_t written, limit; /* limit < 0: none */
	int64_t resume_from;    /* bytes already in fd that this attempt asks the server to skip */
	int may_resume;
	int overflow, io_error;
	char *errbody;
	size_t errlen;
	/* headers of the last response */
	char *content_type, *www_auth;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct registry_client *registry_client_new(const char *base_url, const char *repo,
					    const struct registry_auth *auth, const struct registry_opts *opts)
{
	pthread_once(&curl_once, curl_init_once);
	struct registry_client *c = pv_xcalloc(1, sizeof(*c));
	c->base = pv_xstrdup(base_url);
	size_t bl = strlen(c->base);
	while (bl && c->base[bl - 1] == '/')
		c->base[--bl] = '\0';
	c->repo = pv_xstrdup(repo);
	c->opts = *opts;
	if (c->opts.timeout_s <= 0)
		c->opts.timeout_s = 30;
	if (auth) {
		c->user = auth->username && *auth->username ? pv_xstrdup(auth->username) : NULL;
		c->pass = auth->password ? pv_xstrdup(auth->password) : NULL;
		c->identity_token =
			auth->identity_token && *auth->identity_token ? pv_xstrdup(auth->identity_token) : NULL;
		if (auth->registry_token && *auth->registry_token)
			c->authz = pv_xasprintf("Authorization: Bearer %s", auth->registry_token);
	}
	return c;
}

void registry_client_free(struct registry_client *c)
{
	if (!c)
		return;
	free(c->base);
	free(c->repo);
	free(c->user);
	if (c->pass)
		explicit_bzero(c->pass, strlen(c->pass));
	free(c->pass);
	free(c->identity_token);
	free(c->authz);
	free(c);
}

/* ---- WWW-Authenticate -------------------------------------------------- */

void registry_challenge_free(struct registry_challenge *ch)
{
	free(ch->scheme);
	free(ch->realm);
	free(ch->service);
	free(ch->scope);
	memset(ch, 0, sizeof(*ch));
}

int registry_parse_challenge(const char *hdr, struct registry_challenge *out)
{
	struct registry_challenge ch = { 0 };
	const char *p = hdr;
	while (isspace((unsigned char)*p))
		p++;
	const char *s = p;
	while (*p && !isspace((unsigned char)*p))
		p++;
	if (p == s)
		return -1;
	ch.scheme = pv_xstrndup(s, p - s);
	for (;;) {
		while (isspace((unsigned char)*p) || *p == ',')
			p++;
		if (!*p)
			break;
		const char *k = p;
		while (*p && *p != '=' && !isspace((unsigned char)*p))
			p++;
		size_t kl = p - k;
		if (*p != '=') {
			registry_challenge_free(&ch);
			return -1;
		}
		p++;
		cleanup_free char *val = pv_xcalloc(1, strlen(p) + 1);
		size_t vl = 0;
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				val[vl++] = *p++;
			}
			if (*p != '"') {
				registry_challenge_free(&ch);
				return -1;
			}
			p++;
		} else {
			while (*p && *p != ',' && !isspace((unsigned char)*p))
				val[vl++] = *p++;
		}
		char **dst = NULL;
		if (kl == 5 && !strncasecmp(k, "realm", 5))
			dst = &ch.realm;
		else if (kl == 7 && !strncasecmp(k, "service", 7))
			dst = &ch.service;
		else if (kl == 5 && !strncasecmp(k, "scope", 5))
			dst = &ch.scope;
		if (dst) {
			free(*dst);
			*dst = steal_pointer(&val);
		}
	}
	*out = ch;
	return 0;
}

/* ---- transfers ------------------------------------------------------------ */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t n = size * nmemb;
	long code = 0;
	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code >= 300) {
		size_t room = ERRBODY_MAX - s->errlen;
		size_t k = n < room ? n : room;
		if (!s->errbody)
			s->errbody = pv_xcalloc(1, ERRBODY_MAX + 1);
		memcpy(s->errbody + s->errlen, data, k);
		s->errlen += k;
		return n;
	}
	if (s->resume_from > 0 && code == 200) {
		/* the server ignored our Range: take the whole body from the start */
		image_hasher_free(s->hasher);
		s->hasher = image_hasher_new();
		if (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0) {
			s->io_error = errno;
			return 0;
		}
		s->written = s->resume_from = 0;
	}
	if (s->limit >= 0 && s->written + (int64_t)n > s->limit) {
		s->overflow = 1;
		return 0;
	}
	if (s->fd >= 0) {
		if (pv_write_full(s->fd, data, n) < 0) {
			s->io_error = errno ? errno : EIO;
			return 0;
		}
		image_hasher_update(s->hasher, data, n);
	} else {
		if (s->len + n + 1 > s->cap) {
			s->cap = (s->len + n + 1) * 2;
			s->mem = pv_xrealloc(s->mem, s->cap);
		}
		memcpy(s->mem + s->len, data, n);
		s->len += n;
		s->mem[s->len] = '\0';
	}
	s->written += n;
	return n;
}

static char *header_value(const char *line, size_t n, const char *name)
{
	size_t nl = strlen(name);
	if (n <= nl || strncasecmp(line, name, nl) || line[nl] != ':')
		return NULL;
	const char *v = line + nl + 1;
	const char *e = line + n;
	while (v < e && isspace((unsigned char)*v))
		v++;
	while (e > v && isspace((unsigned char)e[-1]))
		e--;
	return pv_xstrndup(v, e - v);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t n = size * nmemb;
	char *v;
	if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
		free(s->content_type);
		free(s->www_auth);
		s->content_type = s->www_auth = NULL;
	} else if ((v = header_value(data, n, "content-type"))) {
		free(s->content_type);
		s->content_type = v;
	} else if ((v = header_value(data, n, "www-authenticate"))) {
		free(s->www_auth);
		s->www_auth = v;
	}
	return n;
}

/* Hash the first n bytes already in the file and leave the offset at its end. */
static int hash_prefix(struct sink *s, int64_t n)
{
	char *buf = pv_xmalloc(1 << 16);
	int64_t off = 0;
	while (off < n) {
		ssize_t r = pread(s->fd, buf, n - off > (1 << 16) ? (1 << 16) : n - off, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		image_hasher_update(s->hasher, buf, r);
		off += r;
	}
	free(buf);
	if (off != n || lseek(s->fd, n, SEEK_SET) < 0)
		return -1;
	return 0;
}

static void sink_reset(struct sink *s)
{
	free(s->mem);
	free(s->errbody);
	free(s->content_type);
	free(s->www_auth);
	s->mem = s->errbody = s->content_type = s->www_auth = NULL;
	s->len = s->cap = s->errlen = 0;
	s->written = 0;
	s->overflow = s->io_error = 0;
	s->resume_from = 0;
	if (s->fd >= 0) {
		image_hasher_free(s->hasher);
		s->hasher = image_hasher_new();
		struct stat st;
		if (s->may_resume && fstat(s->fd, &st) == 0 && st.st_size > 0 &&
		    (s->limit < 0 || st.st_size < s->limit) && hash_prefix(s, st.st_size) == 0) {
			s->written = s->resume_from = st.st_size;
			return;
		}
		image_hasher_free(s->hasher);
		s->hasher = image_hasher_new();
		if (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0)
			s->io_error = errno;
	}
}

static void sink_fini(struct sink *s)
{
	free(s->mem);
	free(s->errbody);
	free(s->content_type);
	free(s->www_auth);
	image_hasher_free(s->hasher);
}

static int retriable(CURLcode rc, long status)
{
	if (rc == CURLE_OK)
		return status >= 500 && status != 501 && status != 505;
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
	       rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE || rc == CURLE_HTTP2 ||
	       rc == CURLE_HTTP2_STREAM;
}

/* One HTTP exchange (redirects followed); status in *status. */
static CURLcode perform(struct registry_client *c, const char *url, struct curl_slist *extra,
			const char *authz, const char *post, struct sink *s, long total_timeout, long *status,
			char *errbuf)
{
	CURL *h = curl_easy_init();
	if (!h)
		abort();
	s->curl = h;
	struct curl_slist *hdrs = NULL;
	for (struct curl_slist *e = extra; e; e = e->next)
		hdrs = curl_slist_append(hdrs, e->data);
	if (authz)
		hdrs = curl_slist_append(hdrs, authz);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->opts.timeout_s);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->opts.timeout_s);
	if (total_timeout > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT, total_timeout);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "podvisor");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (post)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
	if (s->resume_from > 0)
		curl_easy_setopt(h, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)s->resume_from);
	errbuf[0] = '\0';
	CURLcode rc = curl_easy_perform(h);
	*status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	s->curl = NULL;
	return rc;
}

static char *form_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	if (!e)
		abort();
	char *r = pv_xstrdup(e);
	curl_free(e);
	return r;
}

/* Get a bearer token for a challenge; sets c->authz. */
static int fetch_token(struct registry_client *c, const struct registry_challenge *ch, pv_err_t **err)
{
	if (!ch->realm || strncmp(ch->realm, "http", 4))
		return pv_err_set(err, PV_UNAUTHENTICATED, EACCES, "registry asked for a token without a usable realm");
	cleanup_free char *scope = ch->scope ? pv_xstrdup(ch->scope) : pv_xasprintf("repository:%s:pull", c->repo);
	cleanup_free char *esc_scope = form_escape(scope);
	cleanup_free char *esc_service = form_escape(ch->service ? ch->service : "");
	cleanup_free char *url = NULL, *post = NULL, *basic = NULL;
	if (c->identity_token) {
		cleanup_free char *esc_tok = form_escape(c->identity_token);
		url = pv_xstrdup(ch->realm);
		post = pv_xasprintf("grant_type=refresh_token&refresh_token=%s&service=%s&scope=%s&client_id=podvisor",
				    esc_tok, esc_service, esc_scope);
	} else {
		url = pv_xasprintf("%s%cservice=%s&scope=%s", ch->realm, strchr(ch->realm, '?') ? '&' : '?',
				   esc_service, esc_scope);
		if (c->user) {
			cleanup_free char *up = pv_xasprintf("%s:%s", c->user, c->pass ? c->pass : "");
			size_t n = strlen(up);
			cleanup_free char *b64 = pv_xcalloc(1, 4 * ((n + 2) / 3) + 1);
			EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)up, n);
			basic = pv_xasprintf("Authorization: Basic %s", b64);
			explicit_bzero(up, n);
		}
	}
	struct sink s = { .fd = -1, .limit = 1 << 20 };
	char errbuf[CURL_ERROR_SIZE];
	long status;
	CURLcode rc = perform(c, url, NULL, basic, post, &s, c->opts.timeout_s * 2, &status, errbuf);
	int r = 0;
	if (rc != CURLE_OK) {
		r = pv_err_set(err, PV_UNAVAILABLE, EIO, "token request to %s: %s", ch->realm,
			       errbuf[0] ? errbuf : curl_easy_strerror(rc));
	} else if (status == 401 || status == 403) {
		r = pv_err_set(err, PV_UNAUTHENTICATED, EACCES, "token request to %s: HTTP %ld (bad credentials?)",
			       ch->realm, status);
	} else if (status != 200) {
		r = pv_err_set(err, PV_UNAVAILABLE, EIO, "token request to %s: HTTP %ld", ch->realm, status);
	} else {
		json_t *j = json_loadb(s.mem ? s.mem : "", s.len, 0, NULL);
		json_t *t = json_object_get(j, "token");
		if (!json_is_string(t))
			t = json_object_get(j, "access_token");
		if (!json_is_string(t) || !*json_string_value(t))
			r = pv_err_set(err, PV_UNAUTHENTICATED, EACCES, "token request to %s: no token in reply",
				       ch->realm);
		else {
			free(c->authz);
			c->authz = pv_xasprintf("Authorization: Bearer %s", json_string_value(t));
		}
		json_decref(j);
	}
	sink_fini(&s);
	return r;
}

static int set_basic(struct registry_client *c, pv_err_t **err)
{
	if (!c->user)
		return pv_err_set(err, PV_UNAUTHENTICATED, EACCES, "registry requires credentials and none were given");
	cleanup_free char *up = pv_xasprintf("%s:%s", c->user, c->pass ? c->pass : "");
	size_t n = strlen(up);
	cleanup_free char *b64 = pv_xcalloc(1, 4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)up, n);
	explicit_bzero(up, n);
	free(c->authz);
	c->authz = pv_xasprintf("Authorization: Basic %s", b64);
	return 0;
}

static char *short_body(const struct sink *s)
{
	if (!s->errbody)
		return pv_xstrdup("");
	cleanup_free char *b = pv_xstrndup(s->errbody, s->errlen > 200 ? 200 : s->errlen);
	for (char *p = b; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	return pv_xasprintf(": %s", b);
}

/*
 * GET with auth negotiation and retries. On success the body is in s (memory or fd)
 * and 0 is returned; what names the object for messages.
 */
static int get(struct registry_client *c, const char *url, struct curl_slist *extra, struct sink *s,
	       long total_timeout, const char *what, pv_err_t **err)
{
	int auth_tries = 0;
	for (int attempt = 0;; attempt++) {
		sink_reset(s);
		if (s->io_error)
			return pv_err_set(err, PV_INTERNAL, s->io_error, "%s: resetting download: %s", what,
					  strerror(s->io_error));
		char errbuf[CURL_ERROR_SIZE];
		long status = 0;
		CURLcode rc = perform(c, url, extra, c->authz, NULL, s, total_timeout, &status, errbuf);
		if (s->overflow)
			return pv_err_set(err, PV_DATA_LOSS, EFBIG, "%s: larger than the expected %lld bytes", what,
					  (long long)s->limit);
		if (s->io_error)
			return pv_err_set(err, PV_INTERNAL, s->io_error, "%s: writing: %s", what,
					  strerror(s->io_error));
		if (rc == CURLE_OK && status == 401 && s->www_auth && auth_tries++ < 1) {
			struct registry_challenge ch;
			if (registry_parse_challenge(s->www_auth, &ch) < 0)
				return pv_err_set(err, PV_UNAUTHENTICATED, EACCES, "%s: bad WWW-Authenticate header",
						  what);
			int r;
			if (!strcasecmp(ch.scheme, "bearer"))
				r = fetch_token(c, &ch, err);
			else if (!strcasecmp(ch.scheme, "basic"))
				r = set_basic(c, err);
			else
				r = pv_err_set(err, PV_UNAUTHENTICATED, EACCES, "%s: unsupported auth scheme %s",
					       what, ch.scheme);
			registry_challenge_free(&ch);
			if (r < 0) {
				pv_err_prefix(err, "%s", what);
				return r;
			}
			attempt--;
			continue;
		}
		if (rc == CURLE_OK && status >= 200 && status < 300)
			return 0;
		if (s->resume_from > 0 && (rc == CURLE_RANGE_ERROR || (rc == CURLE_OK && status == 416))) {
			s->may_resume = 0; /* the server will not resume: fetch it whole */
			attempt--;
			continue;
		}
		if (attempt < c->opts.max_retries && retriable(rc, status)) {
			struct timespec ts = { 0, (250L << attempt) * 1000000L };
			while (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			nanosleep(&ts, NULL);
			continue;
		}
		cleanup_free char *body = short_body(s);
		if (rc == CURLE_OPERATION_TIMEDOUT)
			return pv_err_set(err, PV_DEADLINE_EXCEEDED, ETIMEDOUT, "%s: registry timed out: %s", what,
					  errbuf[0] ? errbuf : curl_easy_strerror(rc));
		if (rc == CURLE_PARTIAL_FILE)
			return pv_err_set(err, PV_DATA_LOSS, EIO, "%s: truncated transfer: %s", what,
					  errbuf[0] ? errbuf : curl_easy_strerror(rc));
		if (rc != CURLE_OK)
			return pv_err_set(err, PV_UNAVAILABLE, EIO, "%s: %s", what,
					  errbuf[0] ? errbuf : curl_easy_strerror(rc));
		if (status == 401)
			return pv_err_set(err, PV_UNAUTHENTICATED, EACCES, "%s: unauthorized (HTTP 401)%s", what,
					  body);
		if (status == 403)
			return pv_err_set(err, PV_PERMISSION_DENIED, EACCES, "%s: denied (HTTP 403)%s", what, body);
		if (status == 404)
			return pv_err_set(err, PV_NOT_FOUND, ENOENT, "%s: not found (HTTP 404)%s", what, body);
		if (status == 429 || status >= 500)
			return pv_err_set(err, PV_UNAVAILABLE, EIO, "%s: registry error HTTP %ld%s", what, status,
					  body);
		return pv_err_set(err, PV_UNKNOWN, EIO, "%s: unexpected HTTP %ld%s", what, status, body);
	}
}

int registry_get_manifest(struct registry_client *c, const char *ref, char **body, size_t *len,
			  char **content_type, char **digest, pv_err_t **err)
{
	cleanup_free char *url = pv_xasprintf("%s/v2/%s/manifests/%s", c->base, c->repo, ref);
	cleanup_free char *what = pv_xasprintf("manifest %s:%s from %s", c->repo, ref, c->base);
	struct curl_slist *hdrs = curl_slist_append(
		NULL, "Accept: " MT_OCI_MANIFEST ", " MT_OCI_INDEX ", " MT_DOCKER_MANIFEST ", " MT_DOCKER_LIST);
	struct sink s = { .fd = -1, .limit = IMAGE_MAX_MANIFEST };
	int r = get(c, url, hdrs, &s, c->opts.timeout_s * 4, what, err);
	curl_slist_free_all(hdrs);
	if (r < 0) {
		sink_fini(&s);
		return r;
	}
	char dg[IMAGE_DIGEST_LEN + 1];
	image_digest_buf(s.mem ? s.mem : "", s.len, dg);
	if (image_digest_valid(ref) && strcmp(dg, ref)) {
		sink_fini(&s);
		return pv_err_set(err, PV_DATA_LOSS, EIO, "%s: digest mismatch (got %s)", what, dg);
	}
	*body = s.mem ? steal_pointer(&s.mem) : pv_xstrdup("");
	*len = s.len;
	*content_type = s.content_type ? steal_pointer(&s.content_type) : NULL;
	*digest = pv_xstrdup(dg);
	sink_fini(&s);
	return 0;
}

static int check_blob(struct sink *s, const char *digest, int64_t size, const char *what, char *got,
		      pv_err_t **err)
{
	if (size >= 0 && s->written != size)
		return pv_err_set(err, PV_DATA_LOSS, EIO, "%s: truncated (got %lld of %lld bytes)", what,
				  (long long)s->written, (long long)size);
	if (strcmp(got, digest))
		return pv_err_set(err, PV_DATA_LOSS, EIO, "%s: digest mismatch (got %s)", what, got);
	return 0;
}

int registry_get_blob(struct registry_client *c, const char *digest, int64_t size, int fd, int resume,
		      pv_err_t **err)
{
	cleanup_free char *url = pv_xasprintf("%s/v2/%s/blobs/%s", c->base, c->repo, digest);
	cleanup_free char *what = pv_xasprintf("blob %s", digest);
	struct sink s = { .fd = fd, .limit = size, .hasher = image_hasher_new(), .may_resume = resume };
	int r = get(c, url, NULL, &s, 0, what, err);
	if (r == 0) {
		char got[IMAGE_DIGEST_LEN + 1];
		image_hasher_final(s.hasher, got);
		s.hasher = NULL;
		r = check_blob(&s, digest, size, what, got, err);
	}
	sink_fini(&s);
	return r;
}

int registry_get_blob_mem(struct registry_client *c, const char *digest, int64_t size, char **body,
			  size_t *len, pv_err_t **err)
{
	cleanup_free char *url = pv_xasprintf("%s/v2/%s/blobs/%s", c->base, c->repo, digest);
	cleanup_free char *what = pv_xasprintf("blob %s", digest);
	struct sink s = { .fd = -1, .limit = size };
	int r = get(c, url, NULL, &s, c->opts.timeout_s * 4, what, err);
	if (r == 0) {
		char got[IMAGE_DIGEST_LEN + 1];
		image_digest_buf(s.mem ? s.mem : "", s.len, got);
		r = check_blob(&s, digest, size, what, got, err);
	}
	if (r == 0) {
		*body = s.mem ? steal_pointer(&s.mem) : pv_xstrdup("");
		*len = s.len;
	}
	sink_fini(&s);
	return r;
}
