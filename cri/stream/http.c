/*
 * The streaming server's HTTP side (libmicrohttpd): /exec/TOKEN, /attach/TOKEN and
 * /portforward/TOKEN. The token is taken on the first request that names it (used or
 * not, it is gone, as in kubelet); the request must then be an upgrade to SPDY/3.1 or to
 * WebSocket with a sub-protocol we speak, or it gets 400 with the reason. An unknown,
 * used or expired token gets 404. The upgraded connection becomes a session (session.c).
 */
#include "internal.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"
#include "ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

/* Per HTTP request: what the upgrade will become. */
struct hreq {
	bool seen;
	struct stream_req *req;
	const struct xport_ops *x;
	enum k8s_proto proto;
	bool base64;
};

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *body = pv_xvasprintf(fmt, ap);
	va_end(ap);
	cleanup_free char *line = pv_xasprintf("%s\n", body);
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(line), line, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- header values (a header may repeat, and each may hold a comma-separated list) ---------- */

struct values {
	const char *name;
	char *list[16];
	size_t n;
};

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct values *v = cls;
	if (!key || !value || strcasecmp(key, v->name))
		return MHD_YES;
	cleanup_free char *copy = pv_xstrdup(value);
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok && v->n < 16; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		size_t l = strlen(tok);
		while (l && (tok[l - 1] == ' ' || tok[l - 1] == '\t'))
			tok[--l] = 0;
		if (l)
			v->list[v->n++] = pv_xstrdup(tok);
	}
	return MHD_YES;
}

static void values_get(struct MHD_Connection *conn, const char *name, struct values *v)
{
	memset(v, 0, sizeof(*v));
	v->name = name;
	MHD_get_connection_values(conn, MHD_HEADER_KIND, collect, v);
}

static void values_free(struct values *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->list[i]);
}

static bool values_has(const struct values *v, const char *word)
{
	for (size_t i = 0; i < v->n; i++)
		if (!strcasecmp(v->list[i], word))
			return true;
	return false;
}

/* ---- negotiation ------------------------------------------------------------------------------ */

struct proto_name {
	const char *name;
	enum k8s_proto proto;
	bool base64;
};

static const struct proto_name spdy_exec[] = {
	{ "v4.channel.k8s.io", K8S_V4, false }, { "v3.channel.k8s.io", K8S_V3, false },
	{ "v2.channel.k8s.io", K8S_V2, false }, { "channel.k8s.io", K8S_V1, false },
};
static const struct proto_name spdy_pf[] = { { "portforward.k8s.io", K8S_PORTFORWARD, false } };
static const struct proto_name ws_exec[] = {
	{ "v5.channel.k8s.io", K8S_V5, false },       { "v4.channel.k8s.io", K8S_V4, false },
	{ "v4.base64.channel.k8s.io", K8S_V4, true }, { "base64.channel.k8s.io", K8S_V1, true },
	{ "channel.k8s.io", K8S_V1, false },
};
static const struct proto_name ws_pf[] = {
	{ "v4.channel.k8s.io", K8S_PORTFORWARD, false },
	{ "v4.base64.channel.k8s.io", K8S_PORTFORWARD, true },
};

/* The client's first choice that we speak (the client lists them in its order of preference). */
static const struct proto_name *negotiate(const struct values *client, const struct proto_name *ours, size_t n)
{
	for (size_t i = 0; i < client->n; i++)
		for (size_t k = 0; k < n; k++)
			if (!strcmp(client->list[i], ours[k].name))
				return &ours[k];
	return NULL;
}

static char *names_of(const struct proto_name *p, size_t n)
{
	char *out = pv_xstrdup("");
	for (size_t i = 0; i < n; i++) {
		char *next = pv_xasprintf("%s%s%s", out, i ? ", " : "", p[i].name);
		free(out);
		out = next;
	}
	return out;
}

static void upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra, size_t extra_len,
		     MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct cri_stream *srv = cls;
	struct hreq *h = con_cls;
	struct sess *s = pv_xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->req = steal_pointer(&h->req);
	s->x = h->x;
	s->proto = h->proto;
	s->base64 = h->base64;
	s->fd = sock;
	s->urh = urh;
	pvs_buf_put(&s->in, extra, extra_len);
	sess_start(s);
}

static enum MHD_Result upgrade_spdy(struct cri_stream *srv, struct MHD_Connection *conn, struct hreq *h)
{
	bool pf = h->req->kind == CRI_STREAM_PORTFORWARD;
	const struct proto_name *ours = pf ? spdy_pf : spdy_exec;
	size_t n = pf ? PV_ARRAY_SIZE(spdy_pf) : PV_ARRAY_SIZE(spdy_exec);
	struct values client;
	values_get(conn, "X-Stream-Protocol-Version", &client);
	const struct proto_name *p = negotiate(&client, ours, n);
	size_t offered = client.n;
	values_free(&client);
	if (!p) {
		cleanup_free char *names = names_of(ours, n);
		if (!offered)
			return reply_text(conn, MHD_HTTP_BAD_REQUEST,
					  "unable to upgrade: X-Stream-Protocol-Version is required (one of %s)", names);
		return reply_text(conn, MHD_HTTP_BAD_REQUEST,
				  "unable to upgrade: unable to negotiate protocol: the server speaks %s", names);
	}
	h->x = &spdy_xport;
	h->proto = p->proto;
	struct MHD_Response *r = MHD_create_response_for_upgrade(upgraded, srv);
	MHD_add_response_header(r, "Connection", "Upgrade");
	MHD_add_response_header(r, "Upgrade", "SPDY/3.1");
	MHD_add_response_header(r, "X-Stream-Protocol-Version", p->name);
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result upgrade_ws(struct cri_stream *srv, struct MHD_Connection *conn, struct hreq *h)
{
	const char *version = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
	if (!version || strcmp(version, "13"))
		return reply_text(conn, MHD_HTTP_BAD_REQUEST, "websocket: Sec-WebSocket-Version must be 13");
	cleanup_free char *accept =
		ws_accept_key(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key"));
	if (!accept)
		return reply_text(conn, MHD_HTTP_BAD_REQUEST, "websocket: missing or malformed Sec-WebSocket-Key");
	bool pf = h->req->kind == CRI_STREAM_PORTFORWARD;
	const struct proto_name *ours = pf ? ws_pf : ws_exec;
	size_t n = pf ? PV_ARRAY_SIZE(ws_pf) : PV_ARRAY_SIZE(ws_exec);
	struct values client;
	values_get(conn, "Sec-WebSocket-Protocol", &client);
	const struct proto_name *p = negotiate(&client, ours, n);
	size_t offered = client.n;
	values_free(&client);
	if (!p && offered) {
		cleanup_free char *names = names_of(ours, n);
		return reply_text(conn, MHD_HTTP_BAD_REQUEST,
				  "websocket: none of the offered sub-protocols is spoken here (%s)", names);
	}
	/* No sub-protocol offered: the plain binary channel protocol, as kubelet. */
	h->x = &ws_xport;
	h->proto = p ? p->proto : pf ? K8S_PORTFORWARD : K8S_V1;
	h->base64 = p && p->base64;
	struct MHD_Response *r = MHD_create_response_for_upgrade(upgraded, srv);
	MHD_add_response_header(r, "Connection", "Upgrade");
	MHD_add_response_header(r, "Upgrade", "websocket");
	MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
	if (p)
		MHD_add_response_header(r, "Sec-WebSocket-Protocol", p->name);
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result route(struct cri_stream *srv, struct MHD_Connection *conn, const char *url, struct hreq *h)
{
	static const struct {
		const char *prefix;
		enum cri_stream_kind kind;
	} routes[] = { { "/exec/", CRI_STREAM_EXEC },
		       { "/attach/", CRI_STREAM_ATTACH },
		       { "/portforward/", CRI_STREAM_PORTFORWARD } };
	const char *token = NULL;
	enum cri_stream_kind kind = CRI_STREAM_EXEC;
	for (size_t i = 0; i < PV_ARRAY_SIZE(routes); i++) {
		if (pv_str_has_prefix(url, routes[i].prefix)) {
			token = url + strlen(routes[i].prefix);
			kind = routes[i].kind;
		}
	}
	if (!token)
		return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: %s", url);
	h->req = stream_token_take(&srv->tokens, token);
	if (!h->req || h->req->kind != kind)
		return reply_text(conn, MHD_HTTP_NOT_FOUND, "unknown, used or expired streaming token");
	struct values conn_hdr, upgrade;
	values_get(conn, "Connection", &conn_hdr);
	values_get(conn, "Upgrade", &upgrade);
	bool is_upgrade = values_has(&conn_hdr, "upgrade");
	bool spdy = values_has(&upgrade, "SPDY/3.1"), ws = values_has(&upgrade, "websocket");
	values_free(&conn_hdr);
	values_free(&upgrade);
	if (!is_upgrade || (!spdy && !ws))
		return reply_text(conn, MHD_HTTP_BAD_REQUEST,
				  "unable to upgrade: the request must carry \"Connection: Upgrade\" and \"Upgrade: "
				  "SPDY/3.1\" or \"Upgrade: websocket\"");
	return spdy ? upgrade_spdy(srv, conn, h) : upgrade_ws(srv, conn, h);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct hreq *h = *con_cls;
	if (!h) {
		*con_cls = pv_xcalloc(1, sizeof(struct hreq));
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* a body (POST) has no meaning here */
		return MHD_YES;
	}
	if (h->seen)
		return MHD_NO;
	h->seen = true;
	if (strcmp(method, "GET") && strcmp(method, "POST"))
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed", method);
	return route(cls, conn, url, h);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode t)
{
	struct hreq *h = *con_cls;
	if (!h)
		return;
	stream_req_free(h->req);
	free(h);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	cleanup_free char *msg = pv_xvasprintf(fmt, ap);
	size_t l = strlen(msg);
	while (l && msg[l - 1] == '\n')
		msg[--l] = 0;
	pv_debug("streaming http", "detail=%s", msg);
}

/* ---- start / stop --------------------------------------------------------------------------------- */

static int bind_listener(const char *address, int port, int *fd_out, char **url_host, int *port_out, int *family,
			 pv_err_t **err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_PASSIVE };
	struct addrinfo *ai = NULL;
	char service[16];
	snprintf(service, sizeof(service), "%d", port);
	int r = getaddrinfo(address, service, &hints, &ai);
	if (r)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "streaming.address %s: %s", address, gai_strerror(r));
	cleanup_close int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		freeaddrinfo(ai);
		return pv_err_sys(err, PV_UNAVAILABLE, "streaming server: listen on %s port %d", address, port);
	}
	*family = ai->ai_family;
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	char host[INET6_ADDRSTRLEN];
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		*port_out = ntohs(a->sin6_port);
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		/* A wildcard address is no place to send a client: loopback reaches us. */
		*url_host = pv_xasprintf("[%s]", IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr) ? "::1" : host);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		*port_out = ntohs(a->sin_port);
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		*url_host = pv_xstrdup(a->sin_addr.s_addr == htonl(INADDR_ANY) ? "127.0.0.1" : host);
	}
	*fd_out = steal_fd(&fd);
	return 0;
}

int cri_stream_start(const struct cri_stream_config *cfg, cri_stream_dial_fn dial, void *opaque,
		     struct cri_stream **out, pv_err_t **err)
{
	const char *address = cfg->address && *cfg->address ? cfg->address : "127.0.0.1";
	bool tls = cfg->tls_cert && *cfg->tls_cert;
	cleanup_free char *cert = NULL, *key = NULL;
	if (tls) {
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
			return pv_err_set(err, PV_FAILED_PRECONDITION, ENOTSUP, "streaming: libmicrohttpd has no TLS");
		if (pv_read_file(cfg->tls_cert, 1 << 20, &cert, NULL, err) < 0 ||
		    pv_read_file(cfg->tls_key, 1 << 20, &key, NULL, err) < 0) {
			pv_err_prefix(err, "streaming TLS");
			return -1;
		}
	}
	int fd = -1, port = 0, family = AF_INET;
	cleanup_free char *host = NULL;
	if (bind_listener(address, cfg->port, &fd, &host, &port, &family, err) < 0)
		return -1;
	struct cri_stream *s = pv_xcalloc(1, sizeof(*s));
	s->listen_fd = fd;
	s->dial = dial;
	s->dial_opaque = opaque;
	s->tls = tls;
	s->base_url = pv_xasprintf("%s://%s:%d", tls ? "https" : "http", host, port);
	stream_tokens_init(&s->tokens);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (tls)
		flags |= MHD_USE_TLS;
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
				  MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END,
				  key, MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_END);
	if (!s->mhd) {
		close(fd);
		s->listen_fd = -1;
		cri_stream_stop(s);
		return pv_err_set(err, PV_INTERNAL, EIO, "streaming server: libmicrohttpd did not start%s",
				  tls ? " (check streaming.tls_cert and tls_key)" : "");
	}
	*out = s;
	return 0;
}

void cri_stream_stop(struct cri_stream *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	uint64_t one = 1;
	if (write(s->stop_fd, &one, sizeof(one)) < 0) {
		/* an eventfd write fails only on overflow */
	}
	while (s->sessions)
		pthread_cond_wait(&s->cv, &s->lock);
	pthread_mutex_unlock(&s->lock);
	if (s->mhd)
		MHD_stop_daemon(s->mhd); /* closes the listening socket */
	stream_tokens_fini(&s->tokens);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->lock);
	close(s->stop_fd);
	free(s->base_url);
	free(s);
}

char *cri_stream_url_for(struct cri_stream *s, const struct cri_stream_req *req, pv_err_t **err)
{
	static const char *paths[] = { [CRI_STREAM_EXEC] = "exec", [CRI_STREAM_ATTACH] = "attach",
				       [CRI_STREAM_PORTFORWARD] = "portforward" };
	char token[STREAM_TOKEN_LEN + 1];
	if (stream_token_add(&s->tokens, req, token, err) < 0)
		return NULL;
	return pv_xasprintf("%s/%s/%s", s->base_url, paths[req->kind], token);
}

const char *cri_stream_base_url(const struct cri_stream *s)
{
	return s->base_url;
}
