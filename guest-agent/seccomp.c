/*
 * Seccomp filters: a profile from the host (the OCI spec's linux.seccomp, already checked
 * by validate.c) compiled with libseccomp into a BPF program once, when the container is
 * created, and installed with seccomp(2) in the container's init and in every exec before
 * execve. Compiling at create time turns a bad profile into an error of CreateContainer.
 */
#include "agent.h"
#include "cleanup.h"
#include "seccomp_names.h"
#include "util.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* libseccomp's arch tokens in the order of enum pv_scmp_arch. */
static const uint32_t arch_tokens[] = {
	SCMP_ARCH_X86,	  SCMP_ARCH_X86_64,    SCMP_ARCH_X32,	 SCMP_ARCH_ARM,	    SCMP_ARCH_AARCH64,
	SCMP_ARCH_MIPS,	  SCMP_ARCH_MIPS64,    SCMP_ARCH_MIPS64N32, SCMP_ARCH_MIPSEL, SCMP_ARCH_MIPSEL64,
	SCMP_ARCH_MIPSEL64N32, SCMP_ARCH_PPC, SCMP_ARCH_PPC64, SCMP_ARCH_PPC64LE, SCMP_ARCH_S390,
	SCMP_ARCH_S390X,  SCMP_ARCH_PARISC,    SCMP_ARCH_PARISC64, SCMP_ARCH_RISCV64,
};

static const enum scmp_compare ops[] = {
	SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ,
};

/* Architectures whose syscalls this kernel can run: others only make the filter longer. */
static bool arch_runs_here(uint32_t token)
{
	uint32_t native = seccomp_arch_native();
	if (token == native)
		return true;
	if (native == SCMP_ARCH_X86_64)
		return token == SCMP_ARCH_X86 || token == SCMP_ARCH_X32;
	if (native == SCMP_ARCH_AARCH64)
		return token == SCMP_ARCH_ARM;
	return false;
}

static uint32_t action_of(const char *name, bool has_errno, uint32_t errnum)
{
	switch (pv_seccomp_action(name)) {
	case PV_SCMP_ACT_KILL_PROCESS:
		return SCMP_ACT_KILL_PROCESS;
	case PV_SCMP_ACT_TRAP:
		return SCMP_ACT_TRAP;
	case PV_SCMP_ACT_ERRNO:
		return SCMP_ACT_ERRNO(has_errno ? errnum : EPERM);
	case PV_SCMP_ACT_TRACE:
		return SCMP_ACT_TRACE(has_errno ? errnum : EPERM);
	case PV_SCMP_ACT_ALLOW:
		return SCMP_ACT_ALLOW;
	case PV_SCMP_ACT_LOG:
		return SCMP_ACT_LOG;
	default:
		return SCMP_ACT_KILL_THREAD;
	}
}

static bool indexes_unique(const Podvisor__Agent__SeccompRule *r)
{
	for (size_t i = 0; i < r->n_args; i++)
		for (size_t j = i + 1; j < r->n_args; j++)
			if (r->args[i]->index == r->args[j]->index)
				return false;
	return true;
}

static struct scmp_arg_cmp arg_cmp(const Podvisor__Agent__SeccompArg *a)
{
	struct scmp_arg_cmp c = { .arg = a->index, .op = ops[pv_seccomp_op(a->op)], .datum_a = a->value,
				  .datum_b = a->value_two };
	return c;
}

/* One syscall of a rule: all conditions in one rule, or (repeated indexes) one rule per
 * condition, which libseccomp ORs; an argument cannot be compared twice in one rule. */
static int add_syscall(scmp_filter_ctx ctx, uint32_t action, int nr, const Podvisor__Agent__SeccompRule *r)
{
	struct scmp_arg_cmp cmps[6];
	if (r->n_args == 0)
		return seccomp_rule_add_array(ctx, action, nr, 0, NULL);
	if (indexes_unique(r) && r->n_args <= 6) {
		for (size_t i = 0; i < r->n_args; i++)
			cmps[i] = arg_cmp(r->args[i]);
		return seccomp_rule_add_array(ctx, action, nr, (unsigned)r->n_args, cmps);
	}
	for (size_t i = 0; i < r->n_args; i++) {
		cmps[0] = arg_cmp(r->args[i]);
		int rc = seccomp_rule_add_array(ctx, action, nr, 1, cmps);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int add_rules(scmp_filter_ctx ctx, uint32_t def, const Podvisor__Agent__Seccomp *s, pv_err_t **err)
{
	for (size_t i = 0; i < s->n_syscalls; i++) {
		const Podvisor__Agent__SeccompRule *r = s->syscalls[i];
		uint32_t action = action_of(r->action, r->has_errno_ret, r->errno_ret);
		/* A rule that does what the default does adds nothing (libseccomp refuses it). */
		if (action == def)
			continue;
		for (size_t k = 0; k < r->n_names; k++) {
			int nr = seccomp_syscall_resolve_name(r->names[k]);
			if (nr == __NR_SCMP_ERROR)
				continue; /* not a syscall of this kernel's architectures */
			int rc = add_syscall(ctx, action, nr, r);
			if (rc < 0)
				return pv_err_set(err, PV_INVALID_ARGUMENT, -rc, "syscalls[%zu] (%s): %s", i, r->names[k],
						  strerror(-rc));
		}
	}
	return 0;
}

/* The compiled program, read back from the memfd libseccomp exported it to. */
static int export_program(scmp_filter_ctx ctx, struct seccomp_prog *out, pv_err_t **err)
{
	cleanup_close int fd = memfd_create("seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "memfd_create");
	int rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		return pv_err_set(err, PV_INTERNAL, -rc, "export the filter: %s", strerror(-rc));
	off_t len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(struct sock_filter) || len / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
		return pv_err_set(err, PV_INVALID_ARGUMENT, E2BIG,
				  "the compiled filter has %lld instructions (at most %d)",
				  (long long)(len / (off_t)sizeof(struct sock_filter)), BPF_MAXINSNS);
	struct sock_filter *insns = pv_xmalloc((size_t)len);
	if (pread(fd, insns, (size_t)len, 0) != len) {
		free(insns);
		return pv_err_sys(err, PV_INTERNAL, "read back the filter");
	}
	out->insns = insns;
	out->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
	return 0;
}

int seccomp_compile(const Podvisor__Agent__Seccomp *s, struct seccomp_prog *out, pv_err_t **err)
{
	uint32_t def = action_of(s->default_action, s->has_default_errno, s->default_errno);
	scmp_filter_ctx ctx = seccomp_init(def);
	if (!ctx)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "seccomp_init refused the default action");
	int r = 0;
	for (size_t i = 0; i < s->n_architectures && r == 0; i++) {
		uint32_t token = arch_tokens[pv_seccomp_arch(s->architectures[i])];
		if (!arch_runs_here(token))
			continue;
		int rc = seccomp_arch_add(ctx, token);
		if (rc < 0 && rc != -EEXIST)
			r = pv_err_set(err, PV_INVALID_ARGUMENT, -rc, "architecture %s: %s", s->architectures[i],
				       strerror(-rc));
	}
	if (r == 0)
		r = add_rules(ctx, def, s, err);
	if (r == 0)
		r = export_program(ctx, out, err);
	seccomp_release(ctx);
	if (r < 0) {
		pv_err_prefix(err, "seccomp profile %s", *s->origin ? s->origin : "(unnamed)");
		return -1;
	}
	out->flags = 0;
	for (size_t i = 0; i < s->n_flags; i++)
		out->flags |= pv_seccomp_flag(s->flags[i]);
	return 0;
}

void seccomp_prog_free(struct seccomp_prog *p)
{
	if (!p)
		return;
	free(p->insns);
	p->insns = NULL;
	p->len = 0;
}

int seccomp_install(const struct seccomp_prog *p)
{
	struct sock_fprog prog = { .len = p->len, .filter = p->insns };
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->flags, &prog);
}
