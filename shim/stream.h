/*
 * Streaming sessions of the shim (Exec / Attach / PortForward of the CRI streaming
 * server), private to shim/stream.c and shim/stream_relay.c.
 *
 * A session is bound to one control connection (ctl.c). Each of its byte streams is a
 * relay between a stream id on that connection (the host's, podvisord's) and a stream
 * on the agent channel, with the agent protocol's credit on both legs: bytes the agent
 * sends are held until the host has credit for them and credited back to the agent only
 * once sent on; bytes the host sends are credited back once the agent took them.
 */
#ifndef PV_SHIM_STREAM_H
#define PV_SHIM_STREAM_H

#include "shim.h"

enum stream_kind { STREAM_EXEC, STREAM_ATTACH, STREAM_PORTFWD };

struct stream_sess;

struct relay {
	struct stream_sess *ss;
	uint32_t host_id;       /* on the control connection */
	uint32_t agent_id;      /* on the agent channel; 0 = none (attach output is fed from the log) */
	bool owns_agent;        /* the agent stream is ours to release (exec, port); attach stdin is the container's */
	bool up, down;          /* guest -> host, host -> guest */
	bool connected;         /* down bytes may go to the agent (a port stream: once connected) */
	/* guest -> host */
	struct pv_flow_out host_out;
	uint8_t *ubuf;
	size_t ulen;
	bool up_eof, up_closed;
	bool dropping;          /* attach: the host fell too far behind, output dropped */
	/* host -> guest */
	struct pv_flow_in host_in;
	uint8_t *dbuf;
	size_t dlen;
	bool down_eof, down_closed;
	struct shim_call *port_call; /* stream_port waiting for the agent's connect */
};

struct stream_sess {
	struct shim *s;
	struct ctl_client *client;
	int refs;               /* the session list + each agent callback pending */
	enum stream_kind kind;
	bool open, gone;
	char *ctr_id, *exec_id; /* exec_id "" for attach */
	bool stdin_once;        /* attach: close the container's stdin when this session's stdin ends */
	struct relay *in, *out, *err;
	struct relay **ports;
	size_t nports;
	bool exited;
	int32_t exit_code, signal;
	struct shim_call *waiter;
	struct stream_sess *next;
};

/* stream_relay.c */
struct relay *relay_new(struct stream_sess *ss, uint32_t host_id, uint32_t agent_id, bool up, bool down);
void relay_free(struct relay *r);
/* Open the agent side of a relay that owns its agent stream (output callbacks). */
int relay_open_agent(struct relay *r, pv_err_t **err);
void relay_push_up(struct relay *r);
void relay_push_down(struct relay *r);
/* Bytes for the host (attach output from the log); bounded, beyond it they are dropped. */
void relay_queue_up(struct relay *r, const uint8_t *buf, size_t len);
void relay_up_eof(struct relay *r);
/* Host frames for this relay. */
void relay_host_data(struct relay *r, const uint8_t *buf, uint32_t len);
void relay_host_window(struct relay *r, uint32_t inc);
void relay_host_close(struct relay *r, bool reset);
/* Session gone or agent lost: drop what is queued, abort the agent side (port streams). */
void relay_abort(struct relay *r);
bool relay_done(const struct relay *r);

/* stream.c, for the relays */
/* Keep a session (and its relays) alive across a call that may end it. */
void stream_sess_hold(struct stream_sess *ss);
void stream_sess_release(struct stream_sess *ss);
void stream_sess_changed(struct stream_sess *ss);
void stream_send(struct stream_sess *ss, uint8_t type, uint32_t id, uint8_t flags, const void *buf, size_t len);

#endif
