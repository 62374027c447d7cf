/*
 * libFuzzer target: a Localhost seccomp profile as a node's file can hold it. podvisord parses
 * the JSON and checks it (cri/seccomp.c); whatever it accepts must then pass the agent's own
 * checks (guest-agent/validate.c), since the agent refuses what podvisord should have refused.
 * Never a crash or a leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "error.h"
#include "spec.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	struct cri_arena a = { 0 };
	Podvisor__Agent__Seccomp *s = NULL;
	pv_err_t *err = NULL;
	if (spec_seccomp_parse(&a, "/fuzz.json", (const char *)data, size, &s, &err) == 0) {
		pv_err_t *verr = NULL;
		if (validate_seccomp(s, &verr) < 0)
			abort(); /* accepted by podvisord, refused by the agent */
	} else {
		pv_err_free(err);
	}
	cri_arena_free(&a);
	return 0;
}
