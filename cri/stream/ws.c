/* WebSocket frames (RFC 6455, section 5) and the opening handshake's accept key (4.2.2). */
#include "ws.h"
#include "util.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

/* RFC 6455, 1.3: the GUID every server appends to the client's key. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static ssize_t bad(pv_err_t **err, int code, const char *what)
{
	pv_err_set(err, PV_INVALID_ARGUMENT, code, "websocket: %s", what);
	return -code;
}

ssize_t ws_decode(uint8_t *buf, size_t len, size_t max, struct ws_frame *f, pv_err_t **err)
{
	memset(f, 0, sizeof(*f));
	if (len < 2)
		return 0;
	uint8_t b0 = buf[0], b1 = buf[1];
	if (b0 & 0x70)
		return bad(err, EPROTO, "reserved bits set (no extension was agreed)");
	f->fin = (b0 & 0x80) != 0;
	f->opcode = b0 & 0x0f;
	bool control = f->opcode & 0x08;
	if (f->opcode != WS_CONT && f->opcode != WS_TEXT && f->opcode != WS_BINARY && f->opcode != WS_CLOSE &&
	    f->opcode != WS_PING && f->opcode != WS_PONG)
		return bad(err, EPROTO, "unknown opcode");
	if (!(b1 & 0x80))
		return bad(err, EPROTO, "client frame not masked");
	uint64_t plen = b1 & 0x7f;
	size_t off = 2;
	if (plen == 126) {
		if (len < 4)
			return 0;
		plen = (uint64_t)buf[2] << 8 | buf[3];
		off = 4;
	} else if (plen == 127) {
		if (len < 10)
			return 0;
		plen = 0;
		for (int i = 0; i < 8; i++)
			plen = plen << 8 | buf[2 + i];
		off = 10;
		if (plen >> 63)
			return bad(err, EPROTO, "length with the top bit set");
	}
	if (control && (!f->fin || plen > 125))
		return bad(err, EPROTO, "fragmented or oversized control frame");
	if (plen > max)
		return bad(err, EMSGSIZE, "frame larger than the server accepts");
	if (len - off < 4 || len - off - 4 < plen)
		return 0;
	const uint8_t *mask = buf + off;
	off += 4;
	f->payload = buf + off;
	f->len = (size_t)plen;
	for (size_t i = 0; i < f->len; i++)
		f->payload[i] ^= mask[i & 3];
	return (ssize_t)(off + f->len);
}

static void put_header(struct pvs_buf *out, uint8_t first, uint8_t mask_bit, size_t len)
{
	pvs_buf_put_u8(out, first);
	if (len < 126) {
		pvs_buf_put_u8(out, mask_bit | (uint8_t)len);
	} else if (len <= 0xffff) {
		pvs_buf_put_u8(out, mask_bit | 126);
		pvs_buf_put_be16(out, (uint16_t)len);
	} else {
		pvs_buf_put_u8(out, mask_bit | 127);
		pvs_buf_put_be32(out, (uint32_t)((uint64_t)len >> 32));
		pvs_buf_put_be32(out, (uint32_t)len);
	}
}

void ws_put_frame(struct pvs_buf *out, uint8_t opcode, const void *data, size_t len)
{
	put_header(out, 0x80 | opcode, 0, len);
	pvs_buf_put(out, data, len);
}

void ws_put_masked(struct pvs_buf *out, uint8_t opcode, bool fin, const void *data, size_t len, uint32_t mask)
{
	put_header(out, (fin ? 0x80 : 0) | opcode, 0x80, len);
	uint8_t m[4] = { mask >> 24, mask >> 16, mask >> 8, mask };
	pvs_buf_put(out, m, 4);
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++)
		pvs_buf_put_u8(out, p[i] ^ m[i & 3]);
}

void ws_put_close(struct pvs_buf *out, uint16_t code, const char *reason)
{
	uint8_t p[125];
	size_t rl = reason ? strlen(reason) : 0;
	if (rl > sizeof(p) - 2)
		rl = sizeof(p) - 2;
	p[0] = code >> 8;
	p[1] = code & 0xff;
	if (rl)
		memcpy(p + 2, reason, rl);
	ws_put_frame(out, WS_CLOSE, p, rl + 2);
}

char *ws_accept_key(const char *key)
{
	/* The key is 16 random bytes in base64: 24 characters. */
	if (!key || strlen(key) != 24)
		return NULL;
	uint8_t raw[18];
	if (EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18)
		return NULL;
	char *cat = pv_xasprintf("%s%s", key, WS_GUID);
	uint8_t md[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)cat, strlen(cat), md);
	free(cat);
	char *out = pv_xmalloc(4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
	return out;
}
