/* Accelerator choice: KVM only when /dev/kvm really works, HVF on macOS, else TCG. */
#include "vmm.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/kvm.h>
#endif

static const char *const accel_names[] = {
	[VMM_ACCEL_AUTO] = "auto",
	[VMM_ACCEL_KVM] = "kvm",
	[VMM_ACCEL_HVF] = "hvf",
	[VMM_ACCEL_TCG] = "tcg",
};

const char *sandbox_accel_name(enum vmm_accel a)
{
	if ((unsigned)a >= PV_ARRAY_SIZE(accel_names))
		return "?";
	return accel_names[a];
}

int sandbox_accel_parse(const char *s, enum vmm_accel *out)
{
	for (size_t i = 0; s && i < PV_ARRAY_SIZE(accel_names); i++) {
		if (!strcmp(s, accel_names[i])) {
			*out = (enum vmm_accel)i;
			return 0;
		}
	}
	return -1;
}

#ifdef __linux__
/* 0 when KVM answers; else a heap string saying what failed. */
static char *kvm_probe(const char *dev)
{
	cleanup_close int fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return pv_xasprintf("open %s: %s", dev, strerror(errno));
	int v = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (v < 0)
		return pv_xasprintf("%s: KVM_GET_API_VERSION: %s", dev, strerror(errno));
	if (v != KVM_API_VERSION)
		return pv_xasprintf("%s: KVM API version %d, want %d", dev, v, KVM_API_VERSION);
	int vm;
	do
		vm = ioctl(fd, KVM_CREATE_VM, 0);
	while (vm < 0 && errno == EINTR);
	if (vm < 0)
		return pv_xasprintf("%s: KVM_CREATE_VM: %s", dev, strerror(errno));
	close(vm);
	return NULL;
}
#endif

enum vmm_accel sandbox_accel_detect(enum vmm_accel want, const char *kvm_dev, char **why)
{
	char *reason = NULL;
	enum vmm_accel got = VMM_ACCEL_TCG;
	if (want != VMM_ACCEL_AUTO) {
		got = want;
		reason = pv_xasprintf("%s set by configuration", sandbox_accel_name(want));
		goto out;
	}
#if defined(__APPLE__)
	(void)kvm_dev;
	got = VMM_ACCEL_HVF;
	reason = pv_xstrdup("macOS host: Hypervisor.framework");
#elif defined(__linux__)
	char *fail = kvm_probe(kvm_dev ? kvm_dev : "/dev/kvm");
	if (!fail) {
		got = VMM_ACCEL_KVM;
		reason = pv_xasprintf("%s answers KVM_GET_API_VERSION and KVM_CREATE_VM",
				      kvm_dev ? kvm_dev : "/dev/kvm");
	} else {
		reason = pv_xasprintf("no usable KVM (%s): using TCG emulation", fail);
		free(fail);
	}
#else
	(void)kvm_dev;
	reason = pv_xstrdup("no hardware accelerator on this OS: using TCG emulation");
#endif
out:
	if (why)
		*why = reason;
	else
		free(reason);
	return got;
}
