/*
 * WebSocket (RFC 6455) framing for the server side: client frames are masked and are
 * unmasked in place; server frames go out unmasked with FIN set. Pure: no I/O.
 */
#ifndef PV_STREAM_WS_H
#define PV_STREAM_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "error.h"

enum ws_opcode {
	WS_CONT = 0x0,
	WS_TEXT = 0x1,
	WS_BINARY = 0x2,
	WS_CLOSE = 0x8,
	WS_PING = 0x9,
	WS_PONG = 0xa,
};

/* Close codes we send. */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_TOO_BIG 1009

struct ws_frame {
	uint8_t opcode;
	bool fin;
	uint8_t *payload; /* points into the decoded buffer, unmasked */
	size_t len;
};

/*
 * Decode the frame at the start of buf (unmasking its payload in place). Returns the
 * bytes it took, 0 if more are needed, or -EPROTO / -EMSGSIZE with *err: an unmasked
 * client frame, reserved bits, an unknown opcode, a fragmented or long control frame,
 * a payload over max.
 */
ssize_t ws_decode(uint8_t *buf, size_t len, size_t max, struct ws_frame *f, pv_err_t **err);
/* One unmasked frame with FIN (server to client). */
void ws_put_frame(struct pvs_buf *out, uint8_t opcode, const void *data, size_t len);
/* A masked frame (client to server: tests and the fuzzer's seeds). */
void ws_put_masked(struct pvs_buf *out, uint8_t opcode, bool fin, const void *data, size_t len, uint32_t mask);
void ws_put_close(struct pvs_buf *out, uint16_t code, const char *reason);
/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (heap), NULL if the key is not 16 bytes in base64. */
char *ws_accept_key(const char *key);

#endif
