/*
 * The CRI streaming server: Exec, Attach and PortForward answer with a URL on this
 * server carrying a one-time token; the client (kubelet's proxy, crictl, kubectl)
 * upgrades an HTTP request on it to SPDY/3.1 or WebSocket and speaks the Kubernetes
 * channel protocols there; podvisord relays each session to the pod's shim, which relays
 * it to the guest agent (docs/streaming.md).
 *
 *   cri_stream_start()    bind streaming.address:streaming.port (0: any free port), serve
 *   cri_stream_url_for()  mint a token for an exec/attach/port-forward, give its URL
 *   cri_stream_stop()     close every session, stop serving
 *
 * Files: http.c (HTTP + upgrade negotiation, libmicrohttpd), token.c (one-time tokens),
 * spdy.c (SPDY/3 frames + zlib headers), spdy_conn.c (the SPDY transport), ws.c (WebSocket
 * frames), ws_conn.c (the WebSocket transport), session.c (a session's thread: client <->
 * shim), k8s.c (channel protocols: stream roles, Status JSON, resize), shimlink.c (the
 * shim connection and its credit).
 */
#ifndef PV_CRI_STREAM_H
#define PV_CRI_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum cri_stream_kind { CRI_STREAM_EXEC, CRI_STREAM_ATTACH, CRI_STREAM_PORTFORWARD };

/* Fixed stream ids of exec/attach sessions on the shim connection. */
#define CRI_STREAM_ID_STDIN 1
#define CRI_STREAM_ID_STDOUT 2
#define CRI_STREAM_ID_STDERR 3

/* What a token stands for. The server copies it. */
struct cri_stream_req {
	enum cri_stream_kind kind;
	const char *pod_id;          /* whose shim the session is relayed to */
	bool stdin, stdout, stderr, tty;
	/* exec/attach: the packed podvisor.shim.StreamOpenRequest to send (stream ids as above) */
	const uint8_t *open_req;
	size_t open_len;
	/* port-forward: the ports of the CRI request (WebSocket sessions forward these) */
	const int32_t *ports;
	size_t nports;
};

struct cri_stream_config {
	const char *address;  /* default 127.0.0.1 */
	int port;             /* 0: any free port */
	const char *tls_cert; /* PEM files; both or neither */
	const char *tls_key;
};

/* Connect to the shim of pod_id (a unix stream socket); the fd is the session's. */
typedef int (*cri_stream_dial_fn)(void *opaque, const char *pod_id, int *fd, pv_err_t **err);

struct cri_stream;

int cri_stream_start(const struct cri_stream_config *cfg, cri_stream_dial_fn dial, void *opaque,
		     struct cri_stream **out, pv_err_t **err);
/* Ends every session (clients see their connection close) and the server. NULL is fine. */
void cri_stream_stop(struct cri_stream *s);
/* A fresh one-time URL for req ("http://127.0.0.1:PORT/exec/TOKEN"), heap; NULL + *err if full. */
char *cri_stream_url_for(struct cri_stream *s, const struct cri_stream_req *req, pv_err_t **err);
/* "http://ADDR:PORT" the server answers on. */
const char *cri_stream_base_url(const struct cri_stream *s);

#endif
