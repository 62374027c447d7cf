/*
 * The names of the OCI runtime spec's seccomp section (actions, comparison operators,
 * architectures, filter flags) as small enums, shared by podvisord (which checks a
 * profile) and the agent (which compiles it with libseccomp). No libseccomp here.
 */
#ifndef PV_SECCOMP_NAMES_H
#define PV_SECCOMP_NAMES_H

enum pv_scmp_action {
	PV_SCMP_ACT_KILL_THREAD, /* "SCMP_ACT_KILL" and "SCMP_ACT_KILL_THREAD" */
	PV_SCMP_ACT_KILL_PROCESS,
	PV_SCMP_ACT_TRAP,
	PV_SCMP_ACT_ERRNO,
	PV_SCMP_ACT_TRACE,
	PV_SCMP_ACT_ALLOW,
	PV_SCMP_ACT_LOG,
	PV_SCMP_ACT_NOTIFY, /* needs a listener: recognised, refused */
};

enum pv_scmp_op {
	PV_SCMP_CMP_NE,
	PV_SCMP_CMP_LT,
	PV_SCMP_CMP_LE,
	PV_SCMP_CMP_EQ,
	PV_SCMP_CMP_GE,
	PV_SCMP_CMP_GT,
	PV_SCMP_CMP_MASKED_EQ,
};

enum pv_scmp_arch {
	PV_SCMP_ARCH_X86,
	PV_SCMP_ARCH_X86_64,
	PV_SCMP_ARCH_X32,
	PV_SCMP_ARCH_ARM,
	PV_SCMP_ARCH_AARCH64,
	PV_SCMP_ARCH_MIPS,
	PV_SCMP_ARCH_MIPS64,
	PV_SCMP_ARCH_MIPS64N32,
	PV_SCMP_ARCH_MIPSEL,
	PV_SCMP_ARCH_MIPSEL64,
	PV_SCMP_ARCH_MIPSEL64N32,
	PV_SCMP_ARCH_PPC,
	PV_SCMP_ARCH_PPC64,
	PV_SCMP_ARCH_PPC64LE,
	PV_SCMP_ARCH_S390,
	PV_SCMP_ARCH_S390X,
	PV_SCMP_ARCH_PARISC,
	PV_SCMP_ARCH_PARISC64,
	PV_SCMP_ARCH_RISCV64,
};

/* Name -> enum value, or -1 if the name is not one of the spec's. */
int pv_seccomp_action(const char *name);
int pv_seccomp_op(const char *name);
int pv_seccomp_arch(const char *name);
/* "SECCOMP_FILTER_FLAG_LOG" -> its bit for seccomp(2), or 0 if unknown. */
unsigned pv_seccomp_flag(const char *name);
/* Syscall names are [a-z0-9_], 1..64 characters. */
int pv_seccomp_name_ok(const char *name);

#endif
