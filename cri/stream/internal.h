/*
 * cri/stream internals: one session = one upgraded client connection (SPDY or
 * WebSocket) + one connection to the pod's shim, served by a thread of its own.
 *
 *   transport (spdy_conn.c / ws_conn.c)  client bytes <-> channels
 *   k8s.c                                channel roles, what to ask the shim, Status JSON
 *   shimlink.c                           the shim connection: requests, streams, credit
 *   session.c                            the thread: poll both sockets, shut down
 */
#ifndef PV_STREAM_INTERNAL_H
#define PV_STREAM_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "frame.h"
#include "stream.h"
#include "token.h"

/* Sub-protocol agreed in the upgrade. */
enum k8s_proto {
	K8S_V1,          /* channel.k8s.io: errors as text, no resize */
	K8S_V2,          /* v2.channel.k8s.io */
	K8S_V3,          /* v3: + resize */
	K8S_V4,          /* v4: errors as metav1.Status JSON */
	K8S_V5,          /* v5 (WebSocket): + the client's stream-close signal */
	K8S_PORTFORWARD, /* portforward.k8s.io (SPDY) or the v4 port-forward channels (WebSocket) */
};

enum chan_role { CH_STDIN, CH_STDOUT, CH_STDERR, CH_ERROR, CH_RESIZE, CH_PF_DATA, CH_PF_ERROR, CH_UNKNOWN };

struct lstream;
struct pf;

/* One client-side stream: a SPDY stream, or a WebSocket channel. */
struct chan {
	enum chan_role role;
	uint32_t id;          /* SPDY stream id / WebSocket channel number */
	bool fin_in;          /* the client will send no more */
	bool fin_out;         /* we will send no more */
	struct pf *pf;        /* port-forward: the connection it belongs to */
	struct lstream *ls;   /* the shim stream its data goes to / comes from */
	struct pvs_buf acc;   /* resize: bytes of an unfinished JSON object */
	struct chan *next;
};

/* One forwarded connection: a data and an error channel, one shim stream. */
enum pf_state { PF_WAIT, PF_CONNECTING, PF_OPEN, PF_DONE };
struct pf {
	uint32_t request_id;
	int32_t port;
	struct chan *data, *error;
	struct lstream *ls;
	enum pf_state state;
	struct pf *next;
};

/* One stream id on the shim connection, with the credit of both directions. */
struct lstream {
	uint32_t id;
	struct pv_flow_in in;   /* shim -> us */
	struct pv_flow_out out; /* us -> shim */
	struct pvs_buf pend;    /* client bytes waiting for credit */
	bool eof_pending;       /* the client finished: CLOSE once pend is sent */
	bool closed_out, closed_in;
	struct chan *chan;      /* where the shim's bytes go */
	struct lstream *next;
};

struct sess;

struct xport_ops {
	/* Consume what the client sent (s->in); < 0: protocol error, the session ends. */
	int (*parse)(struct sess *s);
	/* Bytes for the client on a channel. */
	void (*data)(struct sess *s, struct chan *c, const void *buf, size_t len);
	/* No more bytes on a channel. */
	void (*fin)(struct sess *s, struct chan *c);
	/* The session opened (exec/attach running, port-forward channels up). */
	void (*ready)(struct sess *s);
	/* Last words before the connection closes (GOAWAY, close frame). */
	void (*finish)(struct sess *s);
	void (*free)(struct sess *s);
};

enum sess_phase { PH_STREAMS, PH_OPENING, PH_RUNNING, PH_DONE };

struct pending_req;

struct sess {
	struct cri_stream *srv;
	struct stream_req *req;
	enum k8s_proto proto;
	bool base64;              /* WebSocket base64 channel protocols */
	const struct xport_ops *x;
	void *xd;                 /* transport state */
	/* client */
	int fd;
	struct MHD_UpgradeResponseHandle *urh;
	struct pvs_buf in, out;
	bool client_gone;
	/* shim */
	int shim_fd;
	struct pv_frame_reader srd;
	struct pv_frame_writer swr;
	uint32_t next_req, next_ls;
	bool open_sent;           /* stream frames may go to the shim (its session exists) */
	struct pending_req *pending;
	struct lstream *ls;
	/* state */
	struct chan *chans;
	struct pf *pfs;
	enum sess_phase phase;
	int64_t deadline_ns;      /* the client's streams must all be there by then */
	bool exited, failed;
	int32_t exit_code;
	char *error;              /* why the session failed, for the error channel */
	uint16_t resize_cols, resize_rows; /* a size that came before the process ran */
	bool size_wait;           /* a tty exec waits (briefly) for the client's first size */
	bool finishing;           /* last bytes queued: close once they are out */
	pthread_t thread;
	struct sess *next;
};

/* ---- server (http.c) ---- */
struct cri_stream {
	struct MHD_Daemon *mhd;
	int listen_fd;
	char *base_url;
	bool tls;
	struct stream_tokens tokens;
	cri_stream_dial_fn dial;
	void *dial_opaque;
	pthread_mutex_t lock;
	pthread_cond_t cv;        /* a session ended */
	struct sess *sessions;
	bool stopping;
	int stop_fd;              /* eventfd: readable once stopping */
};

/* ---- session.c ---- */
/* Start the session's thread; it owns s from here on. */
void sess_start(struct sess *s);
struct chan *sess_chan_new(struct sess *s, enum chan_role role, uint32_t id);
struct chan *sess_chan_find(struct sess *s, uint32_t id);
void sess_fail(struct sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queue the end: output FINs, the error channel's status, the transport's goodbye. */
void sess_finish(struct sess *s);

/* ---- transports ---- */
extern const struct xport_ops spdy_xport;
extern const struct xport_ops ws_xport;
int spdy_xport_init(struct sess *s, pv_err_t **err);
/* WebSocket: the channels are fixed by the request (made here). */
int ws_xport_init(struct sess *s, pv_err_t **err);

/* ---- k8s.c ---- */
enum chan_role k8s_role(const char *stream_type);
/* SPDY: a client stream arrived (role from its headers); port-forward: port, request id. */
void k8s_chan_opened(struct sess *s, struct chan *c);
void k8s_pf_chan_opened(struct sess *s, struct chan *c, const char *port, const char *request_id);
void k8s_client_data(struct sess *s, struct chan *c, const uint8_t *buf, size_t len);
void k8s_client_fin(struct sess *s, struct chan *c, bool reset);
/* Every expected channel is there (WebSocket: at once). */
void k8s_streams_ready(struct sess *s);
void k8s_shim_open_reply(struct sess *s, int status, const char *msg);
void k8s_shim_wait_reply(struct sess *s, int status, const char *msg, int32_t exit_code);
void k8s_shim_port_reply(struct sess *s, struct pf *pf, int status, const char *msg);
/* The shim closed a stream (its output ended). */
void k8s_shim_closed(struct sess *s, struct lstream *ls);
/* The error channel's text for the end of a session (heap, NULL: nothing to send). */
char *k8s_status_text(const struct sess *s);
/* A port-forward connection's error line as kubelet words it (heap). */
char *k8s_port_error(const char *pod_id, int32_t port, const char *why);
/* Free the port-forward connections both ends are done with (called between events). */
void k8s_reap(struct sess *s);
/* Parse resize JSON ({"Width":W,"Height":H}) objects from a channel's bytes. */
int k8s_parse_resize(struct pvs_buf *acc, const uint8_t *buf, size_t len, uint16_t *cols, uint16_t *rows);

/* ---- shimlink.c ---- */
int shimlink_open(struct sess *s, pv_err_t **err);
void shimlink_close(struct sess *s);
struct lstream *shimlink_stream(struct sess *s, uint32_t id, struct chan *c);
/* Drop a stream the session is done with (late frames for its id are ignored). */
void shimlink_forget(struct sess *s, struct lstream *l);
void shimlink_send_open(struct sess *s);
void shimlink_send_wait(struct sess *s);
void shimlink_send_resize(struct sess *s, uint16_t cols, uint16_t rows);
void shimlink_send_port(struct sess *s, struct pf *pf);
/* Client bytes for the shim (buffered beyond the credit). */
void shimlink_write(struct sess *s, struct lstream *ls, const uint8_t *buf, size_t len);
void shimlink_eof(struct sess *s, struct lstream *ls, bool reset);
/* Read and dispatch what the shim sent; < 0: connection gone. */
int shimlink_on_readable(struct sess *s);
int shimlink_flush(struct sess *s);
/* Bytes of client data held back for want of credit (stop reading the client past a bound). */
size_t shimlink_backlog(const struct sess *s);

#endif
