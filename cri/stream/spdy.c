/* SPDY/3 frames and their zlib-compressed header blocks (see spdy.h). */
#include "spdy.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int spdy_codec_init(struct spdy_codec *c, pv_err_t **err)
{
	memset(c, 0, sizeof(*c));
	if (inflateInit(&c->in) != Z_OK)
		return pv_err_set(err, PV_INTERNAL, ENOMEM, "spdy: inflateInit failed");
	c->in_ok = true;
	if (deflateInit(&c->out, Z_DEFAULT_COMPRESSION) != Z_OK ||
	    deflateSetDictionary(&c->out, spdy_dictionary, SPDY_DICTIONARY_SIZE) != Z_OK) {
		spdy_codec_free(c);
		return pv_err_set(err, PV_INTERNAL, ENOMEM, "spdy: deflateInit failed");
	}
	c->out_ok = true;
	return 0;
}

void spdy_codec_free(struct spdy_codec *c)
{
	if (c->in_ok)
		inflateEnd(&c->in);
	if (c->out_ok)
		deflateEnd(&c->out);
	c->in_ok = c->out_ok = false;
}

void spdy_frame_clear(struct spdy_frame *f)
{
	for (size_t i = 0; i < f->nheaders; i++) {
		free(f->headers[i].name);
		free(f->headers[i].value);
	}
	free(f->headers);
	memset(f, 0, sizeof(*f));
}

const char *spdy_header_get(const struct spdy_frame *f, const char *name)
{
	for (size_t i = 0; i < f->nheaders; i++)
		if (!strcasecmp(f->headers[i].name, name))
			return f->headers[i].value;
	return NULL;
}

/* ---- header blocks ----------------------------------------------------------------------- */

static int inflate_block(struct spdy_codec *c, const uint8_t *in, size_t len, uint8_t **out, size_t *out_len,
			 pv_err_t **err)
{
	size_t cap = 1024, n = 0;
	uint8_t *buf = pv_xmalloc(cap);
	c->in.next_in = (uint8_t *)in;
	c->in.avail_in = (uInt)len;
	for (;;) {
		if (n == cap) {
			if (cap >= SPDY_MAX_HEADER_BLOCK) {
				free(buf);
				return pv_err_set(err, PV_INVALID_ARGUMENT, EMSGSIZE, "spdy: header block over %u bytes",
						  SPDY_MAX_HEADER_BLOCK);
			}
			cap *= 2;
			buf = pv_xrealloc(buf, cap);
		}
		c->in.next_out = buf + n;
		c->in.avail_out = (uInt)(cap - n);
		int r = inflate(&c->in, Z_SYNC_FLUSH);
		n = cap - c->in.avail_out;
		if (r == Z_NEED_DICT) {
			if (inflateSetDictionary(&c->in, spdy_dictionary, SPDY_DICTIONARY_SIZE) != Z_OK)
				break;
			continue;
		}
		if (r == Z_BUF_ERROR && c->in.avail_in == 0) {
			*out = buf;
			*out_len = n;
			return 0;
		}
		if (r != Z_OK)
			break;
		if (c->in.avail_in == 0 && c->in.avail_out != 0) {
			*out = buf;
			*out_len = n;
			return 0;
		}
	}
	free(buf);
	return pv_err_set(err, PV_INVALID_ARGUMENT, EPROTO, "spdy: bad compressed header block");
}

static int parse_block(const uint8_t *p, size_t len, struct spdy_frame *f, pv_err_t **err)
{
	if (len < 4)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EPROTO, "spdy: header block too short");
	uint32_t count = pvs_be32(p);
	size_t off = 4;
	if (count > SPDY_MAX_HEADERS)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EPROTO, "spdy: %u headers (at most %d)", count,
				  SPDY_MAX_HEADERS);
	f->headers = pv_xcalloc(count ? count : 1, sizeof(*f->headers));
	for (uint32_t i = 0; i < count; i++) {
		char *parts[2] = { NULL, NULL };
		for (int k = 0; k < 2; k++) {
			if (len - off < 4)
				goto short_block;
			uint32_t l = pvs_be32(p + off);
			off += 4;
			if (l > len - off)
				goto short_block;
			if (k == 0 && (l == 0 || memchr(p + off, 0, l))) {
				free(parts[0]);
				return pv_err_set(err, PV_INVALID_ARGUMENT, EPROTO, "spdy: empty or NUL in header name");
			}
			parts[k] = pv_xstrndup((const char *)p + off, l); /* a value stops at its first NUL */
			off += l;
		}
		f->headers[f->nheaders].name = parts[0];
		f->headers[f->nheaders].value = parts[1];
		f->nheaders++;
		continue;
short_block:
		free(parts[0]);
		return pv_err_set(err, PV_INVALID_ARGUMENT, EPROTO, "spdy: header block truncated");
	}
	return 0;
}

static int decode_headers(struct spdy_codec *c, const uint8_t *in, size_t len, struct spdy_frame *f,
			  pv_err_t **err)
{
	uint8_t *block = NULL;
	size_t n = 0;
	if (inflate_block(c, in, len, &block, &n, err) < 0)
		return -EPROTO;
	int r = parse_block(block, n, f, err);
	free(block);
	return r < 0 ? -EPROTO : 0;
}

/* ---- frames -------------------------------------------------------------------------------- */

static ssize_t bad(pv_err_t **err, const char *what, uint16_t type)
{
	pv_err_set(err, PV_INVALID_ARGUMENT, EPROTO, "spdy: %s (frame type %u)", what, type);
	return -EPROTO;
}

static ssize_t decode_control(struct spdy_codec *c, const uint8_t *p, uint32_t len, struct spdy_frame *f,
			      pv_err_t **err)
{
	switch (f->type) {
	case SPDY_SYN_STREAM:
		if (len < 10)
			return bad(err, "SYN_STREAM too short", f->type);
		f->stream = pvs_be32(p) & 0x7fffffff;
		f->assoc = pvs_be32(p + 4) & 0x7fffffff;
		f->priority = p[8] >> 5;
		if (!f->stream)
			return bad(err, "stream id 0", f->type);
		return decode_headers(c, p + 10, len - 10, f, err);
	case SPDY_SYN_REPLY:
	case SPDY_HEADERS:
		if (len < 4)
			return bad(err, "frame too short", f->type);
		f->stream = pvs_be32(p) & 0x7fffffff;
		return decode_headers(c, p + 4, len - 4, f, err);
	case SPDY_RST_STREAM:
	case SPDY_GOAWAY:
	case SPDY_WINDOW_UPDATE:
		if (len != 8)
			return bad(err, "wrong length", f->type);
		f->stream = pvs_be32(p) & 0x7fffffff;
		f->value = pvs_be32(p + 4);
		if (f->type == SPDY_WINDOW_UPDATE) {
			f->value &= 0x7fffffff;
			if (!f->value)
				return bad(err, "WINDOW_UPDATE of 0", f->type);
		}
		return 0;
	case SPDY_PING:
		if (len != 4)
			return bad(err, "wrong length", f->type);
		f->value = pvs_be32(p);
		return 0;
	case SPDY_SETTINGS:
		if (len < 4 || (uint64_t)pvs_be32(p) * 8 + 4 != len)
			return bad(err, "SETTINGS length does not match its entries", f->type);
		return 0;
	default:
		return 0; /* unknown control frames are ignored (SPDY/3 2.2.1) */
	}
}

ssize_t spdy_decode(struct spdy_codec *c, const uint8_t *buf, size_t len, struct spdy_frame *f, pv_err_t **err)
{
	memset(f, 0, sizeof(*f));
	if (len < SPDY_HDR_SIZE)
		return 0;
	uint32_t plen = pvs_be24(buf + 5);
	if (plen > SPDY_MAX_PAYLOAD) {
		pv_err_set(err, PV_INVALID_ARGUMENT, EMSGSIZE, "spdy: frame of %u bytes (at most %u)", plen,
			   SPDY_MAX_PAYLOAD);
		return -EMSGSIZE;
	}
	if (len - SPDY_HDR_SIZE < plen)
		return 0;
	f->flags = buf[4];
	f->len = plen;
	const uint8_t *p = buf + SPDY_HDR_SIZE;
	if (!(buf[0] & 0x80)) {
		f->type = SPDY_DATA;
		f->stream = pvs_be32(buf) & 0x7fffffff;
		f->data = p;
		if (!f->stream)
			return bad(err, "data frame on stream 0", 0);
		return SPDY_HDR_SIZE + plen;
	}
	uint16_t version = pvs_be16(buf) & 0x7fff;
	f->type = pvs_be16(buf + 2);
	if (version != SPDY_VERSION) {
		pv_err_set(err, PV_INVALID_ARGUMENT, EPROTO, "spdy: version %u (only 3 is spoken)", version);
		return -EPROTO;
	}
	ssize_t r = decode_control(c, p, plen, f, err);
	if (r < 0) {
		spdy_frame_clear(f);
		return r;
	}
	return SPDY_HDR_SIZE + plen;
}

/* ---- encoders ------------------------------------------------------------------------------- */

static void put_control_hdr(struct pvs_buf *out, uint16_t type, uint8_t flags, uint32_t len)
{
	pvs_buf_put_be16(out, 0x8000 | SPDY_VERSION);
	pvs_buf_put_be16(out, type);
	pvs_buf_put_u8(out, flags);
	pvs_buf_put_be24(out, len);
}

void spdy_put_data(struct pvs_buf *out, uint32_t stream, uint8_t flags, const void *data, size_t len)
{
	pvs_buf_put_be32(out, stream & 0x7fffffff);
	pvs_buf_put_u8(out, flags);
	pvs_buf_put_be24(out, (uint32_t)len);
	pvs_buf_put(out, data, len);
}

static int compress_headers(struct spdy_codec *c, const struct spdy_header *h, size_t n, struct pvs_buf *z,
			    pv_err_t **err)
{
	struct pvs_buf plain = { 0 };
	pvs_buf_put_be32(&plain, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(h[i].name), vl = strlen(h[i].value);
		pvs_buf_put_be32(&plain, (uint32_t)nl);
		for (size_t k = 0; k < nl; k++) {
			char ch = h[i].name[k];
			pvs_buf_put_u8(&plain, (uint8_t)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch));
		}
		pvs_buf_put_be32(&plain, (uint32_t)vl);
		pvs_buf_put(&plain, h[i].value, vl);
	}
	c->out.next_in = (uint8_t *)pvs_buf_data(&plain);
	c->out.avail_in = (uInt)pvs_buf_size(&plain);
	uint8_t chunk[1024];
	int r;
	do {
		c->out.next_out = chunk;
		c->out.avail_out = sizeof(chunk);
		r = deflate(&c->out, Z_SYNC_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR) {
			pvs_buf_free(&plain);
			return pv_err_set(err, PV_INTERNAL, EIO, "spdy: deflate failed (%d)", r);
		}
		pvs_buf_put(z, chunk, sizeof(chunk) - c->out.avail_out);
	} while (c->out.avail_out == 0);
	pvs_buf_free(&plain);
	return 0;
}

static int put_headers_frame(struct spdy_codec *c, struct pvs_buf *out, uint16_t type, uint32_t stream,
			     uint8_t flags, const struct spdy_header *h, size_t n, pv_err_t **err)
{
	struct pvs_buf z = { 0 };
	if (compress_headers(c, h, n, &z, err) < 0)
		return -1;
	uint32_t fixed = type == SPDY_SYN_STREAM ? 10 : 4;
	put_control_hdr(out, type, flags, fixed + (uint32_t)pvs_buf_size(&z));
	pvs_buf_put_be32(out, stream & 0x7fffffff);
	if (type == SPDY_SYN_STREAM) {
		pvs_buf_put_be32(out, 0); /* associated stream */
		pvs_buf_put_be16(out, 0); /* priority, slot */
	}
	pvs_buf_put(out, pvs_buf_data(&z), pvs_buf_size(&z));
	pvs_buf_free(&z);
	return 0;
}

int spdy_put_syn_stream(struct spdy_codec *c, struct pvs_buf *out, uint32_t stream, uint8_t flags,
			const struct spdy_header *h, size_t n, pv_err_t **err)
{
	return put_headers_frame(c, out, SPDY_SYN_STREAM, stream, flags, h, n, err);
}

int spdy_put_syn_reply(struct spdy_codec *c, struct pvs_buf *out, uint32_t stream, uint8_t flags,
		       const struct spdy_header *h, size_t n, pv_err_t **err)
{
	return put_headers_frame(c, out, SPDY_SYN_REPLY, stream, flags, h, n, err);
}

void spdy_put_rst_stream(struct pvs_buf *out, uint32_t stream, uint32_t status)
{
	put_control_hdr(out, SPDY_RST_STREAM, 0, 8);
	pvs_buf_put_be32(out, stream & 0x7fffffff);
	pvs_buf_put_be32(out, status);
}

void spdy_put_goaway(struct pvs_buf *out, uint32_t last_good, uint32_t status)
{
	put_control_hdr(out, SPDY_GOAWAY, 0, 8);
	pvs_buf_put_be32(out, last_good & 0x7fffffff);
	pvs_buf_put_be32(out, status);
}

void spdy_put_ping(struct pvs_buf *out, uint32_t id)
{
	put_control_hdr(out, SPDY_PING, 0, 4);
	pvs_buf_put_be32(out, id);
}

void spdy_put_window_update(struct pvs_buf *out, uint32_t stream, uint32_t delta)
{
	put_control_hdr(out, SPDY_WINDOW_UPDATE, 0, 8);
	pvs_buf_put_be32(out, stream & 0x7fffffff);
	pvs_buf_put_be32(out, delta & 0x7fffffff);
}
