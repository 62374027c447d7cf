/* libFuzzer driver: manifest/index and image config parsers on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "manifest.h"
#include "platform.h"

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
		/* An arm64 pod's preference list (docs/arm64.md), and the platform texts the index holds. */
		struct image_platform want[2];
		image_platform_set(&want[0], "linux", "arm64", "v8");
		image_platform_set(&want[1], "linux", "amd64", NULL);
		if (d.kind == IMAGE_DOC_INDEX && image_doc_select_platforms(&d, want, 2, &sel, &e) < 0) {
			pv_err_free(e);
			e = NULL;
		}
		for (size_t i = 0; d.kind == IMAGE_DOC_INDEX && i < d.n_manifests; i++) {
			struct image_platform p;
			if (d.manifests[i].arch && image_platform_parse(d.manifests[i].arch, &p, &e) < 0) {
				pv_err_free(e);
				e = NULL;
			}
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
