/* libFuzzer driver: manifest/index and image config parsers on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image_doc d;
	pv_err_t *e = NULL;
	if (image_doc_parse((const char *)data, size, NULL, &d, &e) == 0) {
		const struct image_descriptor *sel;
		if (d.kind == IMAGE_DOC_INDEX && image_doc_select(&d, "linux", "amd64", NULL, &sel, &e) < 0) {
			pv_err_free(e);
			e = NULL;
		}
		image_doc_free(&d);
	}
	pv_err_free(e);
	e = NULL;
	struct image_config c;
	if (image_config_parse((const char *)data, size, &c, &e) == 0) {
		char chain[80];
		image_chain_id(c.diff_ids, c.n_diff_ids, chain);
		image_config_free(&c);
	}
	pv_err_free(e);
	return 0;
}
