/*
 * SPDY/3 (3.1 on the wire: kubelet, crictl and kubectl say "SPDY/3.1") frame codec with
 * the zlib header-block compression of the SPDY/3 dictionary. Pure: no I/O, no logging;
 * frames come from the network, so every length is checked (fuzzed: fuzz/fuzz_spdy.c).
 *
 *   control frame: 1 | version(15) | type(16) | flags(8) | length(24) | payload
 *   data frame:    0 | stream id(31)          | flags(8) | length(24) | payload
 *
 * Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are one zlib stream per direction per
 * connection, each block ending with a sync flush: decoding needs the blocks in order.
 */
#ifndef PV_STREAM_SPDY_H
#define PV_STREAM_SPDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zlib.h>

#include "buf.h"
#include "error.h"

#define SPDY_VERSION 3
#define SPDY_HDR_SIZE 8
#define SPDY_DICTIONARY_SIZE 1423
/* Frames larger than this are refused (a data frame of a stdin write is 32 KiB with Go clients). */
#define SPDY_MAX_PAYLOAD (8u << 20)
/* Limits on a decompressed header block. */
#define SPDY_MAX_HEADER_BLOCK (64u << 10)
#define SPDY_MAX_HEADERS 64
/* What we put in one data frame. */
#define SPDY_MAX_DATA (32u << 10)

enum spdy_type {
	SPDY_DATA = 0,
	SPDY_SYN_STREAM = 1,
	SPDY_SYN_REPLY = 2,
	SPDY_RST_STREAM = 3,
	SPDY_SETTINGS = 4,
	SPDY_PING = 6,
	SPDY_GOAWAY = 7,
	SPDY_HEADERS = 8,
	SPDY_WINDOW_UPDATE = 9,
};

enum spdy_rst_status {
	SPDY_PROTOCOL_ERROR = 1,
	SPDY_INVALID_STREAM = 2,
	SPDY_REFUSED_STREAM = 3,
	SPDY_UNSUPPORTED_VERSION = 4,
	SPDY_CANCEL = 5,
	SPDY_INTERNAL_ERROR = 6,
	SPDY_FLOW_CONTROL_ERROR = 7,
	SPDY_STREAM_IN_USE = 8,
	SPDY_STREAM_ALREADY_CLOSED = 9,
	SPDY_FRAME_TOO_LARGE = 11,
};

#define SPDY_FLAG_FIN 0x01
#define SPDY_FLAG_UNIDIRECTIONAL 0x02

extern const unsigned char spdy_dictionary[SPDY_DICTIONARY_SIZE];

struct spdy_header {
	char *name;  /* as received; compare with spdy_header_get (case-insensitive) */
	char *value; /* several values are NUL-separated on the wire: the first is kept */
};

struct spdy_frame {
	uint16_t type;       /* enum spdy_type; SPDY_DATA for data frames; unknown types are passed up */
	uint8_t flags;
	uint32_t stream;     /* DATA, SYN_*, RST_STREAM, HEADERS, WINDOW_UPDATE; GOAWAY: last good id */
	uint32_t assoc;      /* SYN_STREAM */
	uint8_t priority;    /* SYN_STREAM, 0..7 */
	uint32_t value;      /* RST_STREAM / GOAWAY status, PING id, WINDOW_UPDATE delta */
	const uint8_t *data; /* DATA payload, points into the decoded buffer */
	uint32_t len;
	struct spdy_header *headers; /* SYN_STREAM, SYN_REPLY, HEADERS (freed by spdy_frame_clear) */
	size_t nheaders;
};

struct spdy_codec {
	z_stream in, out;
	bool in_ok, out_ok;
};

int spdy_codec_init(struct spdy_codec *c, pv_err_t **err);
void spdy_codec_free(struct spdy_codec *c);

/*
 * Decode the frame at the start of buf. Returns the bytes it took (> 0) and fills *f,
 * 0 if buf holds less than a frame, or -EPROTO / -EMSGSIZE with *err (INVALID_ARGUMENT)
 * for a frame no peer may send: the connection is then beyond repair (GOAWAY).
 */
ssize_t spdy_decode(struct spdy_codec *c, const uint8_t *buf, size_t len, struct spdy_frame *f, pv_err_t **err);
void spdy_frame_clear(struct spdy_frame *f);
/* The first value of a header, NULL if absent. */
const char *spdy_header_get(const struct spdy_frame *f, const char *name);

/* ---- encoders: append one frame to out ---------------------------------------------------- */
void spdy_put_data(struct pvs_buf *out, uint32_t stream, uint8_t flags, const void *data, size_t len);
/* Header names are sent lower-cased, as SPDY/3 requires. */
int spdy_put_syn_stream(struct spdy_codec *c, struct pvs_buf *out, uint32_t stream, uint8_t flags,
			const struct spdy_header *h, size_t n, pv_err_t **err);
int spdy_put_syn_reply(struct spdy_codec *c, struct pvs_buf *out, uint32_t stream, uint8_t flags,
		       const struct spdy_header *h, size_t n, pv_err_t **err);
void spdy_put_rst_stream(struct pvs_buf *out, uint32_t stream, uint32_t status);
void spdy_put_goaway(struct pvs_buf *out, uint32_t last_good, uint32_t status);
void spdy_put_ping(struct pvs_buf *out, uint32_t id);
void spdy_put_window_update(struct pvs_buf *out, uint32_t stream, uint32_t delta);

#endif
