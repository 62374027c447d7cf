/*
 * libFuzzer target: the decoders of bytes a streaming client sends. The first input byte
 * picks the decoder: even = SPDY/3 frames (header blocks inflated with the shared zlib
 * stream), odd = WebSocket frames. Every frame of the rest is decoded until one fails.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spdy.h"
#include "ws.h"

static void fuzz_spdy(const uint8_t *data, size_t size)
{
	struct spdy_codec c;
	if (spdy_codec_init(&c, NULL) < 0)
		return;
	while (size) {
		struct spdy_frame f;
		pv_err_t *err = NULL;
		ssize_t n = spdy_decode(&c, data, size, &f, &err);
		pv_err_free(err);
		if (n <= 0)
			break;
		for (size_t i = 0; i < f.nheaders; i++)
			if (!f.headers[i].name[0] || !f.headers[i].value)
				abort();
		(void)spdy_header_get(&f, "streamtype");
		spdy_frame_clear(&f);
		data += n;
		size -= (size_t)n;
	}
	spdy_codec_free(&c);
}

static void fuzz_ws(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	size_t off = 0;
	while (off < size) {
		struct ws_frame f;
		pv_err_t *err = NULL;
		ssize_t n = ws_decode(buf + off, size - off, 1 << 20, &f, &err);
		pv_err_free(err);
		if (n <= 0)
			break;
		if (f.len > (size_t)n)
			abort();
		off += (size_t)n;
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] & 1)
		fuzz_ws(data + 1, size - 1);
	else
		fuzz_spdy(data + 1, size - 1);
	return 0;
}
