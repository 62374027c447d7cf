/* A growable byte queue: what a session has to write to a socket, or has read and not parsed. */
#ifndef PV_STREAM_BUF_H
#define PV_STREAM_BUF_H

#include <stddef.h>
#include <stdint.h>

struct pvs_buf {
	uint8_t *p;
	size_t off; /* first byte not consumed */
	size_t len; /* end of the bytes held */
	size_t cap;
};

void pvs_buf_free(struct pvs_buf *b);
void pvs_buf_put(struct pvs_buf *b, const void *data, size_t n);
void pvs_buf_put_u8(struct pvs_buf *b, uint8_t v);
void pvs_buf_put_be16(struct pvs_buf *b, uint16_t v);
void pvs_buf_put_be24(struct pvs_buf *b, uint32_t v);
void pvs_buf_put_be32(struct pvs_buf *b, uint32_t v);
static inline size_t pvs_buf_size(const struct pvs_buf *b)
{
	return b->len - b->off;
}
static inline const uint8_t *pvs_buf_data(const struct pvs_buf *b)
{
	return b->p + b->off;
}
/* Forget the first n bytes. */
void pvs_buf_drop(struct pvs_buf *b, size_t n);
/* write() what the fd takes: 0 = empty, 1 = bytes remain (wait for POLLOUT), -errno. */
int pvs_buf_flush(struct pvs_buf *b, int fd);
/* read() once into the buffer: bytes read, 0 at EOF, -errno (-EAGAIN: nothing there). */
int pvs_buf_read_fd(struct pvs_buf *b, int fd, size_t max);

uint32_t pvs_be32(const uint8_t *p);
uint32_t pvs_be24(const uint8_t *p);
uint16_t pvs_be16(const uint8_t *p);

#endif
