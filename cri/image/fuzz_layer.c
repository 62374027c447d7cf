/* libFuzzer driver: layer application (tar, possibly compressed) into a tree on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "layer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fs_tree *t;
	pv_err_t *e = NULL;
	if (fs_tree_new("/tmp", &t, &e) < 0) {
		pv_err_free(e);
		return 0;
	}
	/* twice, so whiteouts and replacements meet entries of a lower layer */
	if (fs_tree_apply_mem(t, data, size, &e) == 0)
		fs_tree_apply_mem(t, data, size, &e);
	pv_err_free(e);
	fs_tree_count(t);
	fs_tree_free(t);
	return 0;
}
