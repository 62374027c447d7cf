/* Byte queue for the streaming server's sockets. */
#include "buf.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void pvs_buf_free(struct pvs_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void reserve(struct pvs_buf *b, size_t n)
{
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n <= b->cap)
		return;
	if (b->off) {
		/* Reuse the consumed front before growing. */
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->len + n <= b->cap)
			return;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	b->p = pv_xrealloc(b->p, cap);
	b->cap = cap;
}

void pvs_buf_put(struct pvs_buf *b, const void *data, size_t n)
{
	if (!n)
		return;
	reserve(b, n);
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

void pvs_buf_put_u8(struct pvs_buf *b, uint8_t v)
{
	pvs_buf_put(b, &v, 1);
}

void pvs_buf_put_be16(struct pvs_buf *b, uint16_t v)
{
	uint8_t p[2] = { v >> 8, v };
	pvs_buf_put(b, p, 2);
}

void pvs_buf_put_be24(struct pvs_buf *b, uint32_t v)
{
	uint8_t p[3] = { v >> 16, v >> 8, v };
	pvs_buf_put(b, p, 3);
}

void pvs_buf_put_be32(struct pvs_buf *b, uint32_t v)
{
	uint8_t p[4] = { v >> 24, v >> 16, v >> 8, v };
	pvs_buf_put(b, p, 4);
}

void pvs_buf_drop(struct pvs_buf *b, size_t n)
{
	if (n > b->len - b->off)
		n = b->len - b->off;
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

int pvs_buf_flush(struct pvs_buf *b, int fd)
{
	while (pvs_buf_size(b)) {
		ssize_t n = send(fd, pvs_buf_data(b), pvs_buf_size(b), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, pvs_buf_data(b), pvs_buf_size(b));
		if (n < 0)
			return errno == EAGAIN ? 1 : -errno;
		pvs_buf_drop(b, (size_t)n);
	}
	return 0;
}

int pvs_buf_read_fd(struct pvs_buf *b, int fd, size_t max)
{
	reserve(b, max);
	for (;;) {
		ssize_t n = read(fd, b->p + b->len, max);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		b->len += (size_t)n;
		return (int)n;
	}
}

uint32_t pvs_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint32_t pvs_be24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

uint16_t pvs_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
