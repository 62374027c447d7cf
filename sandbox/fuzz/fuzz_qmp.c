/* libFuzzer target: the QMP message parser must reject junk without crashing. */
#include "qmp.h"
#include "error.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmp_msg m = { 0 };
	pv_err_t *err = NULL;
	if (sandbox_qmp_parse((const char *)data, size, &m, &err) == 0)
		sandbox_qmp_msg_clear(&m);
	pv_err_free(err);
	return 0;
}
