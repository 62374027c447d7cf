/*
 * Templates: a VM booted once to "agent ready" whose RAM is a file and whose device state
 * is saved beside it, and clones that start from it instead of booting (docs/sandbox.md,
 * "Templates"). This file is the generic part; how a backend saves and restores is its
 * own (QEMU: sandbox/qemu/migrate.c).
 */
#include "vmm_impl.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

int sandbox_vmm_template_save(struct vmm *vm, int timeout_ms, pv_err_t **err)
{
	if (!vm->cfg.template_out)
		return pv_err_set(err, PV_FAILED_PRECONDITION, EINVAL, "VM was not started as a template");
	if (!vm->ops->template_save)
		return pv_err_set(err, PV_UNIMPLEMENTED, ENOSYS, "VMM backend %s cannot save templates", vm->ops->name);
	if (vm->pid <= 0)
		return pv_err_set(err, PV_FAILED_PRECONDITION, ESRCH, "template VM is not running");
	return vm->ops->template_save(vm, timeout_ms, err);
}

int sandbox_template_check(const char *dir, uint64_t memory_mib, pv_err_t **err)
{
	cleanup_free char *mem = pv_xasprintf("%s/%s", dir, SANDBOX_TEMPLATE_MEM);
	cleanup_free char *state = pv_xasprintf("%s/%s", dir, SANDBOX_TEMPLATE_STATE);
	struct stat st;
	if (stat(state, &st) < 0)
		return pv_err_sys(err, PV_FAILED_PRECONDITION, "template state %s", state);
	if (!S_ISREG(st.st_mode) || st.st_size == 0)
		return pv_err_set(err, PV_FAILED_PRECONDITION, EINVAL, "template state %s is empty", state);
	if (stat(mem, &st) < 0)
		return pv_err_sys(err, PV_FAILED_PRECONDITION, "template memory %s", mem);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != memory_mib << 20)
		return pv_err_set(err, PV_FAILED_PRECONDITION, EINVAL,
				  "template memory %s is %lld bytes, the VM has %llu MiB", mem, (long long)st.st_size,
				  (unsigned long long)memory_mib);
	return 0;
}
