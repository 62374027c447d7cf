/* OCI seccomp names to enums (see seccomp_names.h). */
#include "seccomp_names.h"
#include "cleanup.h"

#include <string.h>

struct name_val {
	const char *name;
	int val;
};

static int lookup(const struct name_val *t, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (!strcmp(t[i].name, name))
			return t[i].val;
	return -1;
}

static const struct name_val actions[] = {
	{ "SCMP_ACT_KILL", PV_SCMP_ACT_KILL_THREAD },	{ "SCMP_ACT_KILL_THREAD", PV_SCMP_ACT_KILL_THREAD },
	{ "SCMP_ACT_KILL_PROCESS", PV_SCMP_ACT_KILL_PROCESS }, { "SCMP_ACT_TRAP", PV_SCMP_ACT_TRAP },
	{ "SCMP_ACT_ERRNO", PV_SCMP_ACT_ERRNO },		{ "SCMP_ACT_TRACE", PV_SCMP_ACT_TRACE },
	{ "SCMP_ACT_ALLOW", PV_SCMP_ACT_ALLOW },		{ "SCMP_ACT_LOG", PV_SCMP_ACT_LOG },
	{ "SCMP_ACT_NOTIFY", PV_SCMP_ACT_NOTIFY },
};

static const struct name_val ops[] = {
	{ "SCMP_CMP_NE", PV_SCMP_CMP_NE }, { "SCMP_CMP_LT", PV_SCMP_CMP_LT }, { "SCMP_CMP_LE", PV_SCMP_CMP_LE },
	{ "SCMP_CMP_EQ", PV_SCMP_CMP_EQ }, { "SCMP_CMP_GE", PV_SCMP_CMP_GE }, { "SCMP_CMP_GT", PV_SCMP_CMP_GT },
	{ "SCMP_CMP_MASKED_EQ", PV_SCMP_CMP_MASKED_EQ },
};

static const struct name_val arches[] = {
	{ "SCMP_ARCH_X86", PV_SCMP_ARCH_X86 },
	{ "SCMP_ARCH_X86_64", PV_SCMP_ARCH_X86_64 },
	{ "SCMP_ARCH_X32", PV_SCMP_ARCH_X32 },
	{ "SCMP_ARCH_ARM", PV_SCMP_ARCH_ARM },
	{ "SCMP_ARCH_AARCH64", PV_SCMP_ARCH_AARCH64 },
	{ "SCMP_ARCH_MIPS", PV_SCMP_ARCH_MIPS },
	{ "SCMP_ARCH_MIPS64", PV_SCMP_ARCH_MIPS64 },
	{ "SCMP_ARCH_MIPS64N32", PV_SCMP_ARCH_MIPS64N32 },
	{ "SCMP_ARCH_MIPSEL", PV_SCMP_ARCH_MIPSEL },
	{ "SCMP_ARCH_MIPSEL64", PV_SCMP_ARCH_MIPSEL64 },
	{ "SCMP_ARCH_MIPSEL64N32", PV_SCMP_ARCH_MIPSEL64N32 },
	{ "SCMP_ARCH_PPC", PV_SCMP_ARCH_PPC },
	{ "SCMP_ARCH_PPC64", PV_SCMP_ARCH_PPC64 },
	{ "SCMP_ARCH_PPC64LE", PV_SCMP_ARCH_PPC64LE },
	{ "SCMP_ARCH_S390", PV_SCMP_ARCH_S390 },
	{ "SCMP_ARCH_S390X", PV_SCMP_ARCH_S390X },
	{ "SCMP_ARCH_PARISC", PV_SCMP_ARCH_PARISC },
	{ "SCMP_ARCH_PARISC64", PV_SCMP_ARCH_PARISC64 },
	{ "SCMP_ARCH_RISCV64", PV_SCMP_ARCH_RISCV64 },
};

/* Bit values from linux/seccomp.h (SECCOMP_FILTER_FLAG_*). */
static const struct name_val flags[] = {
	{ "SECCOMP_FILTER_FLAG_TSYNC", 1 },
	{ "SECCOMP_FILTER_FLAG_LOG", 2 },
	{ "SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4 },
	{ "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 32 },
};

int pv_seccomp_action(const char *name)
{
	return lookup(actions, PV_ARRAY_SIZE(actions), name);
}

int pv_seccomp_op(const char *name)
{
	return lookup(ops, PV_ARRAY_SIZE(ops), name);
}

int pv_seccomp_arch(const char *name)
{
	return lookup(arches, PV_ARRAY_SIZE(arches), name);
}

unsigned pv_seccomp_flag(const char *name)
{
	int v = lookup(flags, PV_ARRAY_SIZE(flags), name);
	return v < 0 ? 0 : (unsigned)v;
}

int pv_seccomp_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 64)
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}
