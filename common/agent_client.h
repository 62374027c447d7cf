/*
 * Host-side client of the podvisor agent protocol (docs/agent-protocol.md).
 *
 * One pv_agent_t owns one channel fd (the unix socket of QEMU's virtio-serial
 * chardev, or any stream fd). It multiplexes RPCs (each with a request id) and
 * process stdio streams (with per-stream credit) over it.
 *
 * Two ways to use it:
 *  - blocking: pv_agent_call() sends a request and pumps the channel until the
 *    reply arrives (stdio DATA arriving meanwhile goes to the stream callbacks).
 *  - event loop (the shim): make the fd non-blocking, pv_agent_call_async(),
 *    poll pv_agent_fd() for POLLIN (+ POLLOUT when pv_agent_want_write()),
 *    then call pv_agent_on_readable() / pv_agent_flush().
 * Not thread-safe; callbacks run inside pv_agent_on_readable()/pv_agent_call().
 * Callbacks may queue requests (pv_agent_call_async), write stdin and release
 * streams, but must not block in pv_agent_call()/pv_agent_run_until().
 * Messages are the protobuf-c types generated from proto/agent.proto.
 */
#ifndef PV_AGENT_CLIENT_H
#define PV_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "frame.h"
#include "proto/agent.pb-c.h"

typedef struct pv_agent pv_agent_t;

/*
 * Called once per request with the decoded response (NULL if the channel
 * failed before it arrived; `err` then says why). The callback does not own
 * resp: it is freed after the callback returns.
 */
typedef void (*pv_agent_response_cb)(pv_agent_t *a, uint32_t id, const Podvisor__Agent__Response *resp,
				     const pv_err_t *err, void *opaque);

/* Callbacks for one stdio stream opened with pv_agent_stream_open(). */
struct pv_agent_stream_ops {
	/*
	 * Output bytes from the guest process. Return the number of bytes consumed
	 * (normally len): credit for them goes back to the agent. Return less to
	 * apply back-pressure and call pv_agent_stream_consume() later.
	 */
	size_t (*data)(pv_agent_t *a, uint32_t stream, const uint8_t *buf, size_t len, void *opaque);
	/* The agent closed the stream (EOF of the process's stdout/stderr). reset = aborted. */
	void (*closed)(pv_agent_t *a, uint32_t stream, bool reset, void *opaque);
	/* Credit for stdin grew (pv_agent_stdin_write may accept more). Optional. */
	void (*writable)(pv_agent_t *a, uint32_t stream, void *opaque);
};

/* Take ownership of a connected stream fd (closed by pv_agent_free). */
pv_agent_t *pv_agent_new(int fd);
/* Connect to a unix socket path, retrying until timeout_ms (QEMU may not be listening yet). */
int pv_agent_connect_unix(const char *path, int timeout_ms, pv_agent_t **out, pv_err_t **err);
void pv_agent_free(pv_agent_t *a);

int pv_agent_fd(const pv_agent_t *a);
/* True while encoded frames wait to be written (poll for POLLOUT). */
bool pv_agent_want_write(const pv_agent_t *a);
/* Write queued frames. 0 = all written, 1 = some left, negative = channel error. */
int pv_agent_flush(pv_agent_t *a, pv_err_t **err);
/*
 * Read what is available and dispatch responses and stream data. Returns 0,
 * or negative when the channel is dead (EOF: -EPIPE); pending requests then
 * get their callback with resp == NULL.
 */
int pv_agent_on_readable(pv_agent_t *a, pv_err_t **err);

/* Last connection-level error notice from the agent (RESPONSE on id 0), or NULL. */
const char *pv_agent_last_notice(const pv_agent_t *a);

/* ---- RPCs ------------------------------------------------------------------------ */

/* Queue a request; *id_out (optional) gets its id. cb may be NULL (reply ignored). */
int pv_agent_call_async(pv_agent_t *a, const Podvisor__Agent__Request *req, pv_agent_response_cb cb,
			void *opaque, uint32_t *id_out, pv_err_t **err);
/*
 * Send a request and wait for its response (timeout_ms < 0: forever). On
 * success returns 0 and *resp (free with podvisor__agent__response__free_unpacked(resp, NULL)),
 * even when resp->status != 0 — use pv_agent_check() to turn that into an error.
 * Returns -ETIMEDOUT (DEADLINE_EXCEEDED) or a channel error otherwise.
 */
int pv_agent_call(pv_agent_t *a, const Podvisor__Agent__Request *req, int timeout_ms,
		  Podvisor__Agent__Response **resp, pv_err_t **err);
/* 0 if resp->status is OK, else -1 with *err = (resp->status, resp->message). */
int pv_agent_check(const Podvisor__Agent__Response *resp, pv_err_t **err);
/* pv_agent_call + pv_agent_check; *resp (optional) set only on success. */
int pv_agent_call_ok(pv_agent_t *a, const Podvisor__Agent__Request *req, int timeout_ms,
		     Podvisor__Agent__Response **resp, pv_err_t **err);

/*
 * Run the channel until deadline (monotonic ns, pv_now_monotonic_ns()) or until
 * *done becomes true (set by a callback). Returns 0, -ETIMEDOUT, or a channel error.
 */
int pv_agent_run_until(pv_agent_t *a, const bool *done, int64_t deadline_ns, pv_err_t **err);

/*
 * Ping until the agent answers or timeout_ms passes (the VM may still be booting; QEMU
 * holds the bytes until the guest opens its port). The ping is repeated every 1.5 s:
 * the agent drops a frame a previous host connection left half-sent, which could
 * swallow the first one.
 */
int pv_agent_wait_ready(pv_agent_t *a, int timeout_ms, Podvisor__Agent__PingResponse **ping_out,
			pv_err_t **err);

/* ---- stdio streams ----------------------------------------------------------------- */

/* A fresh stream id, unique on this connection (never 0). */
uint32_t pv_agent_stream_alloc(pv_agent_t *a);
/*
 * Register a stream before sending the request that names it (Process.*_stream),
 * so no DATA is lost. ops may be NULL for a stdin-only stream. The agent's
 * credit for this stream starts at PV_FRAME_DEFAULT_WINDOW in both directions.
 */
int pv_agent_stream_open(pv_agent_t *a, uint32_t stream, const struct pv_agent_stream_ops *ops,
			 void *opaque, pv_err_t **err);
/* Forget a stream (after its process is gone). Late DATA for it is dropped. */
void pv_agent_stream_release(pv_agent_t *a, uint32_t stream);
/* Return credit for n bytes a data callback did not consume at the time. */
void pv_agent_stream_consume(pv_agent_t *a, uint32_t stream, size_t n);
/*
 * Queue stdin bytes for the process: returns how many were accepted (bounded
 * by the stream's credit; 0 = wait for the `writable` callback), or negative.
 */
ssize_t pv_agent_stdin_write(pv_agent_t *a, uint32_t stream, const void *buf, size_t len,
			     pv_err_t **err);
/* Send EOF on stdin (CLOSE frame). */
int pv_agent_stdin_close(pv_agent_t *a, uint32_t stream, pv_err_t **err);
/* Abort a stream (CLOSE with RESET: a port-forward connection is dropped at once) and release it. */
void pv_agent_stream_reset(pv_agent_t *a, uint32_t stream);
/* Credit left for stdin on the stream. */
size_t pv_agent_stdin_credit(const pv_agent_t *a, uint32_t stream);

#endif
