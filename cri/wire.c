/* A scan of protobuf wire bytes for NUL bytes inside string fields, led by the descriptors. */
#include "wire.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct scan {
	char path[256];
	size_t len;
	pv_err_t **err;
};

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

static int malformed(struct scan *s)
{
	return pv_err_set(s->err, PV_INVALID_ARGUMENT, EBADMSG, "request is not well-formed protobuf (at %s)",
			  s->len ? s->path : "top level");
}

static int scan_msg(struct scan *s, const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
		    int depth);

/* One length-delimited field of l bytes at p. */
static int scan_field(struct scan *s, const ProtobufCFieldDescriptor *f, unsigned nth, const uint8_t *p, size_t l,
		      int depth)
{
	if (!f || (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE))
		return 0; /* bytes, packed numbers, unknown fields */
	size_t old = s->len, room = sizeof(s->path) - s->len;
	const char *dot = s->len ? "." : "";
	int n = f->label == PROTOBUF_C_LABEL_REPEATED
			? snprintf(s->path + s->len, room, "%s%s[%u]", dot, f->name, nth)
			: snprintf(s->path + s->len, room, "%s%s", dot, f->name);
	s->len = n < 0 || (size_t)n >= room ? sizeof(s->path) - 1 : s->len + (size_t)n;
	int r = 0;
	if (f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, l))
		r = pv_err_set(s->err, PV_INVALID_ARGUMENT, EINVAL, "%s holds a NUL byte", s->path);
	else if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		r = scan_msg(s, f->descriptor, p, p + l, depth + 1);
	s->len = old;
	s->path[old] = '\0';
	return r;
}

static int scan_msg(struct scan *s, const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
		    int depth)
{
	if (depth > 64)
		return pv_err_set(s->err, PV_INVALID_ARGUMENT, ELOOP, "request nests too deep (at %s)", s->path);
	cleanup_free unsigned *seen = pv_xcalloc(d->n_fields ? d->n_fields : 1, sizeof(*seen));
	while (p < end) {
		uint64_t key, l;
		if (varint(&p, end, &key) < 0)
			return malformed(s);
		switch (key & 7) {
		case 0:
			if (varint(&p, end, &l) < 0)
				return malformed(s);
			break;
		case 1:
		case 5: {
			size_t w = (key & 7) == 1 ? 8 : 4;
			if ((size_t)(end - p) < w)
				return malformed(s);
			p += w;
			break;
		}
		case 2: {
			if (varint(&p, end, &l) < 0 || l > (uint64_t)(end - p))
				return malformed(s);
			const ProtobufCFieldDescriptor *f =
				key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
						       : NULL;
			unsigned nth = f ? seen[f - d->fields]++ : 0;
			if (scan_field(s, f, nth, p, (size_t)l, depth) < 0)
				return -1;
			p += l;
			break;
		}
		default: /* groups (not in proto3) and reserved wire types */
			return malformed(s);
		}
	}
	return 0;
}

int cri_wire_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
			   pv_err_t **err)
{
	struct scan s = { .len = 0, .err = err };
	s.path[0] = '\0';
	return scan_msg(&s, desc, buf, buf + len, 0);
}
