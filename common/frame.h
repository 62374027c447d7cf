/*
 * Agent channel framing, shared by podvisor-agent (guest) and the host side
 * (shim, podvisor-agentctl). See docs/agent-protocol.md.
 *
 * Every frame is a 12-byte header followed by `len` payload bytes:
 *
 *   offset 0  u32 len      payload length, big-endian, <= PV_FRAME_MAX_PAYLOAD
 *   offset 4  u32 stream   request id (REQUEST/RESPONSE) or stdio stream id (DATA/WINDOW/CLOSE)
 *   offset 8  u8  type     enum pv_frame_type
 *   offset 9  u8  flags    PV_FRAME_F_*
 *   offset 10 u16 reserved must be 0
 *
 * REQUEST/RESPONSE payloads are protobuf-c Podvisor__Agent__Request/Response
 * (proto/agent.proto). DATA payloads are raw bytes and count against the
 * receiver's per-stream window; WINDOW carries a big-endian u32 credit increment;
 * CLOSE says "no more DATA from me on this stream" (flag RESET: abort).
 *
 * The code here does no I/O policy and never logs: it returns negative errno
 * and fills pv_err_t.
 */
#ifndef PV_FRAME_H
#define PV_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define PV_AGENT_PROTOCOL_VERSION 1

#define PV_FRAME_HDR_SIZE 12
/* Hard limit on one frame's payload; a larger header is a protocol error. */
#define PV_FRAME_MAX_PAYLOAD (1u << 20)
/* Largest DATA chunk a sender should produce (keeps RPCs interleaved with stdio). */
#define PV_FRAME_MAX_DATA (32u * 1024)
/* Initial credit of each direction of each stdio stream. */
#define PV_FRAME_DEFAULT_WINDOW (256u * 1024)
/* Most credit a stream may ever hold; a WINDOW that overflows it is a protocol error. */
#define PV_FRAME_MAX_WINDOW (16u * 1024 * 1024)

enum pv_frame_type {
	PV_FRAME_REQUEST = 1,
	PV_FRAME_RESPONSE = 2,
	PV_FRAME_DATA = 3,
	PV_FRAME_WINDOW = 4,
	PV_FRAME_CLOSE = 5,
};

/* CLOSE: the stream was aborted (receiver discards what it has queued). */
#define PV_FRAME_F_RESET 0x01

struct pv_frame_hdr {
	uint32_t len;
	uint32_t stream;
	uint8_t type;
	uint8_t flags;
	uint16_t reserved;
};

/* Encode to 12 bytes (big-endian). */
void pv_frame_hdr_encode(const struct pv_frame_hdr *h, uint8_t out[PV_FRAME_HDR_SIZE]);
/*
 * Decode 12 bytes. Returns 0 on a well-formed header, -EMSGSIZE if len is over
 * max_payload, -EPROTO for an unknown type or non-zero reserved bits. *h is
 * filled in every case (so a caller may skip the payload and carry on).
 */
int pv_frame_hdr_decode(const uint8_t in[PV_FRAME_HDR_SIZE], uint32_t max_payload,
			struct pv_frame_hdr *h, pv_err_t **err);

/* ---- incremental reader ------------------------------------------------------ */

/*
 * Accumulates bytes from a stream socket/port and yields whole frames.
 * A frame whose header is bad (oversized, unknown type) is reported once and
 * then its payload is skipped, so one bad frame does not kill the channel.
 * Memory is bounded by one frame (max_payload + header).
 */
struct pv_frame_reader {
	uint8_t *buf;
	size_t len;         /* bytes buffered */
	size_t cap;
	uint32_t max_payload;
	uint64_t skip;      /* payload bytes of a rejected frame still to discard */
	size_t handed;      /* bytes of the frame last returned by _next(), dropped on the next call */
};

void pv_frame_reader_init(struct pv_frame_reader *r, uint32_t max_payload);
void pv_frame_reader_free(struct pv_frame_reader *r);
/* Drop buffered bytes (e.g. after the peer reconnected). */
void pv_frame_reader_reset(struct pv_frame_reader *r);
/* Append bytes received from the peer. */
void pv_frame_reader_feed(struct pv_frame_reader *r, const void *data, size_t len);
/*
 * read() once from fd into the reader. Returns bytes read (> 0), 0 at EOF,
 * -EAGAIN if nothing is there, or another -errno.
 */
int pv_frame_reader_read_fd(struct pv_frame_reader *r, int fd);
/*
 * Take the next frame. Returns 1 and sets *h and *payload (valid until the
 * next call on the reader), 0 if more bytes are needed, or negative (-EMSGSIZE,
 * -EPROTO) with *h filled and *err set for a rejected header: the caller replies
 * with an error and calls again — the reader skips that frame's payload itself.
 */
int pv_frame_reader_next(struct pv_frame_reader *r, struct pv_frame_hdr *h,
			 const uint8_t **payload, pv_err_t **err);

/* ---- outgoing queue ---------------------------------------------------------- */

/* A byte queue of encoded frames, flushed to a (non-blocking) fd. */
struct pv_frame_writer {
	uint8_t *buf;
	size_t off;         /* first unsent byte */
	size_t len;         /* end of queued bytes */
	size_t cap;
};

void pv_frame_writer_init(struct pv_frame_writer *w);
void pv_frame_writer_free(struct pv_frame_writer *w);
void pv_frame_writer_reset(struct pv_frame_writer *w);
/* Queue one frame; len must be <= PV_FRAME_MAX_PAYLOAD (asserted). */
void pv_frame_writer_put(struct pv_frame_writer *w, uint8_t type, uint32_t stream,
			 uint8_t flags, const void *payload, size_t len);
/* Queue a WINDOW frame granting `increment` bytes of credit on stream. */
void pv_frame_writer_put_window(struct pv_frame_writer *w, uint32_t stream, uint32_t increment);
/* Bytes queued and not yet written. */
size_t pv_frame_writer_pending(const struct pv_frame_writer *w);
/*
 * write() as much as the fd takes. Returns 0 when the queue is empty, 1 if
 * bytes remain (fd would block: wait for POLLOUT), or -errno.
 */
int pv_frame_writer_flush(struct pv_frame_writer *w, int fd);

/* Parse a WINDOW payload. Returns 0 or -EPROTO (wrong size, zero increment). */
int pv_frame_parse_window(const uint8_t *payload, uint32_t len, uint32_t *increment);

/* ---- per-stream flow control -------------------------------------------------- */

/*
 * Receiving side of one stream: the peer may send `avail` more bytes. The
 * receiver calls pv_flow_in_consume() when it has handed bytes on (written to a
 * pipe, a log, ...); it returns the credit to send back in a WINDOW frame, or 0
 * to wait and batch (credit is returned once half the window is consumed).
 */
struct pv_flow_in {
	uint32_t window;
	uint32_t avail;
	uint32_t consumed;  /* consumed, not yet returned */
};
void pv_flow_in_init(struct pv_flow_in *f, uint32_t window);
/* Account n received bytes; -EPROTO if the peer exceeded its credit. */
int pv_flow_in_receive(struct pv_flow_in *f, uint32_t n);
uint32_t pv_flow_in_consume(struct pv_flow_in *f, uint32_t n);

/* Sending side of one stream: may send up to `credit` bytes of DATA. */
struct pv_flow_out {
	uint32_t credit;
};
void pv_flow_out_init(struct pv_flow_out *f, uint32_t window);
/* How much of `want` may be sent now (also capped at PV_FRAME_MAX_DATA). */
uint32_t pv_flow_out_sendable(const struct pv_flow_out *f, size_t want);
void pv_flow_out_sent(struct pv_flow_out *f, uint32_t n);
/* Add credit from a WINDOW frame; -EPROTO if it would exceed PV_FRAME_MAX_WINDOW. */
int pv_flow_out_grant(struct pv_flow_out *f, uint32_t increment);

/* ---- protobuf messages -------------------------------------------------------- */

/* Forward declarations so this header does not need the generated code. */
struct Podvisor__Agent__Request;
struct Podvisor__Agent__Response;

/* Pack a message into a REQUEST/RESPONSE frame; -EMSGSIZE if it is too big. */
int pv_frame_put_request(struct pv_frame_writer *w, uint32_t id,
			 const struct Podvisor__Agent__Request *req, pv_err_t **err);
int pv_frame_put_response(struct pv_frame_writer *w, uint32_t id,
			  const struct Podvisor__Agent__Response *resp, pv_err_t **err);
/* Queue an error-only RESPONSE (status = enum pv_status, message text). */
void pv_frame_put_error(struct pv_frame_writer *w, uint32_t id, int status, const char *msg);
/* The same for an error object: its status, errno (Response.errnum) and message. */
void pv_frame_put_err(struct pv_frame_writer *w, uint32_t id, const pv_err_t *err);

/*
 * Unpack a payload. Returns 0 and a message to free with
 * podvisor__agent__request__free_unpacked(m, NULL) (resp. response), or
 * -EBADMSG with *err set (INVALID_ARGUMENT). Every string in the message
 * tree is checked to be valid UTF-8 without NULs (protobuf-c does not).
 */
int pv_frame_decode_request(const uint8_t *payload, size_t len,
			    struct Podvisor__Agent__Request **out, pv_err_t **err);
int pv_frame_decode_response(const uint8_t *payload, size_t len,
			     struct Podvisor__Agent__Response **out, pv_err_t **err);

/* True if s[0..len) is valid UTF-8 with no NUL. */
bool pv_utf8_valid(const char *s, size_t len);

#endif
