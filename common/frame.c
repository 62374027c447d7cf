/* Agent channel framing and flow control (see frame.h). */
#include "frame.h"
#include "util.h"


#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void pv_frame_hdr_encode(const struct pv_frame_hdr *h, uint8_t out[PV_FRAME_HDR_SIZE])
{
	put_be32(out, h->len);
	put_be32(out + 4, h->stream);
	out[8] = h->type;
	out[9] = h->flags;
	out[10] = (uint8_t)(h->reserved >> 8);
	out[11] = (uint8_t)h->reserved;
}

int pv_frame_hdr_decode(const uint8_t in[PV_FRAME_HDR_SIZE], uint32_t max_payload,
			struct pv_frame_hdr *h, pv_err_t **err)
{
	h->len = get_be32(in);
	h->stream = get_be32(in + 4);
	h->type = in[8];
	h->flags = in[9];
	h->reserved = (uint16_t)((in[10] << 8) | in[11]);
	if (h->len > max_payload)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EMSGSIZE,
				  "frame of %u bytes exceeds the %u byte limit", h->len, max_payload);
	if (h->type < PV_FRAME_REQUEST || h->type > PV_FRAME_CLOSE)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EPROTO, "unknown frame type %u", h->type);
	if (h->reserved != 0)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EPROTO, "reserved header bits set");
	return 0;
}

/* ---- reader ---------------------------------------------------------------------- */

void pv_frame_reader_init(struct pv_frame_reader *r, uint32_t max_payload)
{
	memset(r, 0, sizeof(*r));
	r->max_payload = max_payload;
}

void pv_frame_reader_free(struct pv_frame_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = r->cap = 0;
	r->skip = 0;
	r->handed = 0;
}

void pv_frame_reader_reset(struct pv_frame_reader *r)
{
	r->len = 0;
	r->skip = 0;
	r->handed = 0;
}

/* Drop bytes of a rejected frame's payload from the front of the buffer. */
static void reader_skip(struct pv_frame_reader *r)
{
	if (!r->skip || !r->len || r->handed)
		return;
	size_t n = r->skip < r->len ? (size_t)r->skip : r->len;
	memmove(r->buf, r->buf + n, r->len - n);
	r->len -= n;
	r->skip -= n;
}

static void reader_reserve(struct pv_frame_reader *r, size_t extra)
{
	if (r->len + extra <= r->cap)
		return;
	size_t cap = r->cap ? r->cap : 4096;
	while (cap < r->len + extra)
		cap *= 2;
	r->buf = pv_xrealloc(r->buf, cap);
	r->cap = cap;
}

void pv_frame_reader_feed(struct pv_frame_reader *r, const void *data, size_t len)
{
	const uint8_t *p = data;
	/* Skipped payload never enters the buffer, so memory stays bounded. */
	if (r->skip && !r->len && !r->handed) {
		size_t n = r->skip < len ? (size_t)r->skip : len;
		p += n;
		len -= n;
		r->skip -= n;
	}
	if (!len)
		return;
	reader_reserve(r, len);
	memcpy(r->buf + r->len, p, len);
	r->len += len;
	reader_skip(r);
}

int pv_frame_reader_read_fd(struct pv_frame_reader *r, int fd)
{
	/* Read at most what completes the current frame plus a bit, to bound the buffer. */
	size_t want = 64 * 1024;
	if (r->skip && !r->len && !r->handed) {
		uint8_t scratch[16384];
		size_t n = r->skip < sizeof(scratch) ? (size_t)r->skip : sizeof(scratch);
		ssize_t got;
		do
			got = read(fd, scratch, n);
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		r->skip -= (size_t)got;
		return (int)got;
	}
	reader_reserve(r, want);
	ssize_t got;
	do
		got = read(fd, r->buf + r->len, want);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	r->len += (size_t)got;
	reader_skip(r);
	return (int)got;
}

/* Bytes of the previous frame handed out by _next(), consumed on the next call. */
static void reader_consume(struct pv_frame_reader *r, size_t n)
{
	memmove(r->buf, r->buf + n, r->len - n);
	r->len -= n;
}

int pv_frame_reader_next(struct pv_frame_reader *r, struct pv_frame_hdr *h,
			 const uint8_t **payload, pv_err_t **err)
{
	/* The frame handed out last time stays in place until now. */
	if (r->handed) {
		reader_consume(r, r->handed);
		r->handed = 0;
		reader_skip(r);
	}
	if (r->skip || r->len < PV_FRAME_HDR_SIZE)
		return 0;
	int rc = pv_frame_hdr_decode(r->buf, r->max_payload, h, err);
	if (rc < 0) {
		/* Reject this frame: drop the header, discard its payload as it arrives. */
		reader_consume(r, PV_FRAME_HDR_SIZE);
		r->skip = h->len;
		reader_skip(r);
		return rc;
	}
	if (r->len < PV_FRAME_HDR_SIZE + (size_t)h->len)
		return 0;
	*payload = r->buf + PV_FRAME_HDR_SIZE;
	r->handed = PV_FRAME_HDR_SIZE + (size_t)h->len;
	return 1;
}

/* ---- writer ---------------------------------------------------------------------- */

void pv_frame_writer_init(struct pv_frame_writer *w)
{
	memset(w, 0, sizeof(*w));
}

void pv_frame_writer_free(struct pv_frame_writer *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

void pv_frame_writer_reset(struct pv_frame_writer *w)
{
	w->off = w->len = 0;
}

static uint8_t *writer_reserve(struct pv_frame_writer *w, size_t n)
{
	if (w->off && w->off == w->len)
		w->off = w->len = 0;
	if (w->len + n > w->cap && w->off) {
		memmove(w->buf, w->buf + w->off, w->len - w->off);
		w->len -= w->off;
		w->off = 0;
	}
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + n)
			cap *= 2;
		w->buf = pv_xrealloc(w->buf, cap);
		w->cap = cap;
	}
	uint8_t *p = w->buf + w->len;
	w->len += n;
	return p;
}

void pv_frame_writer_put(struct pv_frame_writer *w, uint8_t type, uint32_t stream,
			 uint8_t flags, const void *payload, size_t len)
{
	assert(len <= PV_FRAME_MAX_PAYLOAD);
	struct pv_frame_hdr h = { .len = (uint32_t)len, .stream = stream, .type = type, .flags = flags };
	uint8_t *p = writer_reserve(w, PV_FRAME_HDR_SIZE + len);
	pv_frame_hdr_encode(&h, p);
	if (len)
		memcpy(p + PV_FRAME_HDR_SIZE, payload, len);
}

void pv_frame_writer_put_window(struct pv_frame_writer *w, uint32_t stream, uint32_t increment)
{
	uint8_t b[4];
	put_be32(b, increment);
	pv_frame_writer_put(w, PV_FRAME_WINDOW, stream, 0, b, sizeof(b));
}

size_t pv_frame_writer_pending(const struct pv_frame_writer *w)
{
	return w->len - w->off;
}

int pv_frame_writer_flush(struct pv_frame_writer *w, int fd)
{
	while (w->off < w->len) {
		ssize_t n = write(fd, w->buf + w->off, w->len - w->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			return -errno;
		}
		w->off += (size_t)n;
	}
	w->off = w->len = 0;
	return 0;
}

int pv_frame_parse_window(const uint8_t *payload, uint32_t len, uint32_t *increment)
{
	if (len != 4)
		return -EPROTO;
	uint32_t v = get_be32(payload);
	if (!v)
		return -EPROTO;
	*increment = v;
	return 0;
}

/* ---- flow control ------------------------------------------------------------------ */

void pv_flow_in_init(struct pv_flow_in *f, uint32_t window)
{
	f->window = window;
	f->avail = window;
	f->consumed = 0;
}

int pv_flow_in_receive(struct pv_flow_in *f, uint32_t n)
{
	if (n > f->avail)
		return -EPROTO;
	f->avail -= n;
	return 0;
}

uint32_t pv_flow_in_consume(struct pv_flow_in *f, uint32_t n)
{
	f->consumed += n;
	/* Batch: return credit once half the window is used, or when the sender is starved. */
	if (f->consumed >= f->window / 2 || f->avail == 0) {
		uint32_t inc = f->consumed;
		f->avail += inc;
		f->consumed = 0;
		return inc;
	}
	return 0;
}

void pv_flow_out_init(struct pv_flow_out *f, uint32_t window)
{
	f->credit = window;
}

uint32_t pv_flow_out_sendable(const struct pv_flow_out *f, size_t want)
{
	size_t n = want;
	if (n > f->credit)
		n = f->credit;
	if (n > PV_FRAME_MAX_DATA)
		n = PV_FRAME_MAX_DATA;
	return (uint32_t)n;
}

void pv_flow_out_sent(struct pv_flow_out *f, uint32_t n)
{
	assert(n <= f->credit);
	f->credit -= n;
}

int pv_flow_out_grant(struct pv_flow_out *f, uint32_t increment)
{
	if (increment > PV_FRAME_MAX_WINDOW || f->credit + increment > PV_FRAME_MAX_WINDOW)
		return -EPROTO;
	f->credit += increment;
	return 0;
}

/*
 * The message helpers need the generated code; programs built without
 * -I$(BUILD)/gen (e.g. fuzzers compiling all of common/) get the framing only.
 */
#if __has_include("proto/agent.pb-c.h")
#include "proto/agent.pb-c.h"

/* ---- messages ---------------------------------------------------------------------- */

static int put_packed(struct pv_frame_writer *w, uint8_t type, uint32_t id,
		      const ProtobufCMessage *m, pv_err_t **err)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	if (n > PV_FRAME_MAX_PAYLOAD)
		return pv_err_set(err, PV_RESOURCE_EXHAUSTED, EMSGSIZE,
				  "message of %zu bytes exceeds the frame limit", n);
	uint8_t *buf = pv_xmalloc(n);
	protobuf_c_message_pack(m, buf);
	pv_frame_writer_put(w, type, id, 0, buf, n);
	free(buf);
	return 0;
}

int pv_frame_put_request(struct pv_frame_writer *w, uint32_t id,
			 const Podvisor__Agent__Request *req, pv_err_t **err)
{
	return put_packed(w, PV_FRAME_REQUEST, id, &req->base, err);
}

int pv_frame_put_response(struct pv_frame_writer *w, uint32_t id,
			  const Podvisor__Agent__Response *resp, pv_err_t **err)
{
	return put_packed(w, PV_FRAME_RESPONSE, id, &resp->base, err);
}

void pv_frame_put_error(struct pv_frame_writer *w, uint32_t id, int status, const char *msg)
{
	pv_err_t e = { .status = status, .errnum = 0, .msg = (char *)msg };
	pv_frame_put_err(w, id, &e);
}

void pv_frame_put_err(struct pv_frame_writer *w, uint32_t id, const pv_err_t *err)
{
	int status = err ? err->status : PV_INTERNAL;
	const char *msg = err ? err->msg : "internal error";
	Podvisor__Agent__Response r = PODVISOR__AGENT__RESPONSE__INIT;
	r.status = (uint32_t)(status ? status : PV_UNKNOWN);
	r.errnum = err && err->errnum > 0 ? (uint32_t)err->errnum : 0;
	/* Keep the notice itself valid UTF-8 and small, whatever the message holds. */
	char buf[1024];
	size_t n = 0;
	for (const char *p = msg ? msg : ""; *p && n < sizeof(buf) - 1; p++)
		buf[n++] = (*p & 0x80) ? '?' : *p;
	buf[n] = 0;
	r.message = buf;
	(void)put_packed(w, PV_FRAME_RESPONSE, id, &r.base, NULL);
}

/* protobuf-c does not check UTF-8: walk every string of the message tree. */
static bool strings_valid(const ProtobufCMessage *m, int depth)
{
	if (depth > 32)
		return false;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		const char *base = (const char *)m;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
				continue;
		}
		size_t n = 1;
		const void *const *items;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)(base + f->quantifier_offset);
			items = *(const void *const *const *)(base + f->offset);
		} else {
			items = (const void *const *)(base + f->offset);
		}
		for (size_t k = 0; k < n; k++) {
			const void *v = items[k];
			if (!v)
				continue;
			if (f->type == PROTOBUF_C_TYPE_STRING) {
				if (!pv_utf8_valid(v, strlen(v)))
					return false;
			} else if (!strings_valid(v, depth + 1)) {
				return false;
			}
		}
	}
	return true;
}

int pv_frame_decode_request(const uint8_t *payload, size_t len,
			    Podvisor__Agent__Request **out, pv_err_t **err)
{
	Podvisor__Agent__Request *m = podvisor__agent__request__unpack(NULL, len, payload);
	if (!m)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EBADMSG, "undecodable request (%zu bytes)", len);
	if (!strings_valid(&m->base, 0)) {
		podvisor__agent__request__free_unpacked(m, NULL);
		return pv_err_set(err, PV_INVALID_ARGUMENT, EBADMSG, "request has a string that is not valid UTF-8");
	}
	*out = m;
	return 0;
}

int pv_frame_decode_response(const uint8_t *payload, size_t len,
			     Podvisor__Agent__Response **out, pv_err_t **err)
{
	Podvisor__Agent__Response *m = podvisor__agent__response__unpack(NULL, len, payload);
	if (!m)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EBADMSG, "undecodable response (%zu bytes)", len);
	if (!strings_valid(&m->base, 0)) {
		podvisor__agent__response__free_unpacked(m, NULL);
		return pv_err_set(err, PV_INVALID_ARGUMENT, EBADMSG, "response has a string that is not valid UTF-8");
	}
	*out = m;
	return 0;
}

#endif

bool pv_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned char c = p[i];
		size_t n;
		uint32_t cp;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates, beyond U+10FFFF. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}
