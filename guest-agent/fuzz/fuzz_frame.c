/*
 * libFuzzer target for everything the agent parses from the host channel:
 * the frame reader (with arbitrary chunking), request/response decoding,
 * WINDOW payloads and request validation.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "frame.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_frame(const struct pv_frame_hdr *h, const uint8_t *p)
{
	pv_err_t *err = NULL;
	if (h->type == PV_FRAME_REQUEST) {
		Podvisor__Agent__Request *req = NULL;
		if (pv_frame_decode_request(p, h->len, &req, &err) == 0) {
			(void)validate_request(req, &err);
			podvisor__agent__request__free_unpacked(req, NULL);
		}
	} else if (h->type == PV_FRAME_RESPONSE) {
		Podvisor__Agent__Response *resp = NULL;
		if (pv_frame_decode_response(p, h->len, &resp, &err) == 0)
			podvisor__agent__response__free_unpacked(resp, NULL);
	} else if (h->type == PV_FRAME_WINDOW) {
		uint32_t inc;
		struct pv_flow_out out;
		pv_flow_out_init(&out, PV_FRAME_DEFAULT_WINDOW);
		if (pv_frame_parse_window(p, h->len, &inc) == 0)
			(void)pv_flow_out_grant(&out, inc);
	}
	pv_err_free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* First byte picks the chunk size the bytes arrive in. */
	size_t chunk = (size_t)(data[0] % 17) + 1;
	data++;
	size--;
	struct pv_frame_reader r;
	pv_frame_reader_init(&r, 4096);
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		pv_frame_reader_feed(&r, data + off, n);
		for (;;) {
			struct pv_frame_hdr h;
			const uint8_t *p;
			pv_err_t *err = NULL;
			int rc = pv_frame_reader_next(&r, &h, &p, &err);
			pv_err_free(err);
			if (rc == 0)
				break;
			if (rc > 0)
				one_frame(&h, p);
		}
	}
	pv_frame_reader_free(&r);
	/* The whole input as a bare request, too. */
	struct pv_frame_hdr h = { .len = (uint32_t)size, .type = PV_FRAME_REQUEST };
	one_frame(&h, data);
	return 0;
}
