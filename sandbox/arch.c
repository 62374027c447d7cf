/* Guest architecture names (vmm.h). */
#include "vmm.h"

#include <string.h>

#include "util.h"

const char *sandbox_arch_name(enum vmm_arch a)
{
	return a == VMM_ARCH_ARM64 ? "arm64" : a == VMM_ARCH_X86_64 ? "x86_64" : "?";
}

int sandbox_arch_parse(const char *s, enum vmm_arch *out)
{
	if (!s)
		return -1;
	if (!strcmp(s, "x86_64") || !strcmp(s, "amd64"))
		*out = VMM_ARCH_X86_64;
	else if (!strcmp(s, "arm64") || !strcmp(s, "aarch64"))
		*out = VMM_ARCH_ARM64;
	else
		return -1;
	return 0;
}
