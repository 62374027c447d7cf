/* Accelerator choice: KVM only when /dev/kvm really works, HVF on macOS, else TCG. */
#include "vmm.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
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
/*
 * Run a short loop and HLT in a throwaway VM. On some hosts /dev/kvm opens and
 * creates VMs but vCPUs never run, or crawl (nested virtualisation that traps
 * every instruction), so only a guest that really ran at speed counts. Runs in
 * a child with a deadline.
 */
static int kvm_run_hlt(int kvm)
{
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return 10;
	size_t mem_size = 0x2000;
	uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 11;
	/* Real mode at 0x1000: mov ecx, 100000; 1: dec ecx; jnz 1b; hlt */
	static const uint8_t code[] = { 0x66, 0xb9, 0xa0, 0x86, 0x01, 0x00, 0x66, 0x49, 0x75, 0xfc, 0xf4 };
	memcpy(mem + 0x1000, code, sizeof(code));
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = mem_size, .userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return 12;
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		return 13;
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		return 14;
	struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return 15;
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return 16;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		return 17;
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 0x2 };
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return 18;
	int64_t t0 = pv_now_monotonic_ns();
	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return 19;
	if (run->exit_reason != KVM_EXIT_HLT)
		return 20;
	/* 200k instructions take well under a millisecond on working KVM; hosts that
	 * trap every instruction (broken nesting) need about a second, slower than TCG. */
	return pv_now_monotonic_ns() - t0 > 50 * 1000000LL ? 21 : 0;
}

/* NULL when KVM works; else a heap string saying what failed. */
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
	pid_t pid = fork();
	if (pid < 0)
		return pv_xasprintf("fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(3); /* a vCPU that never comes back must not hang the probe */
		_exit(kvm_run_hlt(fd));
	}
	int status = 0;
	/* Working KVM answers in a few ms; past 300 ms the vCPU is useless anyway. */
	int64_t deadline = pv_now_monotonic_ns() + 300000000LL;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return pv_xasprintf("waitpid: %s", strerror(errno));
		if (pv_now_monotonic_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return pv_xasprintf("%s: a test vCPU did not finish a short loop within 300 ms", dev);
		}
		usleep(5000);
	}
	if (WIFSIGNALED(status))
		return pv_xasprintf("%s: a test vCPU did not run (probe killed by signal %d)", dev, WTERMSIG(status));
	if (WEXITSTATUS(status) == 21)
		return pv_xasprintf("%s: a test vCPU runs far slower than emulation would (broken nested KVM?)", dev);
	if (WEXITSTATUS(status) != 0)
		return pv_xasprintf("%s: a test vCPU did not run (probe step %d failed)", dev, WEXITSTATUS(status));
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
		reason = pv_xasprintf("%s runs a test vCPU at speed",
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

/* ---- the host TSC rate (TCG guests are told it) ------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
static uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

unsigned long sandbox_host_tsc_khz(void)
{
	int64_t t0 = pv_now_monotonic_ns();
	uint64_t c0 = rdtsc();
	struct timespec ts = { 0, 10 * 1000000 };
	nanosleep(&ts, NULL);
	int64_t t1 = pv_now_monotonic_ns();
	uint64_t c1 = rdtsc();
	if (t1 <= t0 || c1 <= c0)
		return 0;
	/* Round to 1 MHz: enough for the guest, and stable from one pod to the next. */
	uint64_t khz = (c1 - c0) * 1000000ULL / (uint64_t)(t1 - t0);
	return (unsigned long)((khz + 500) / 1000 * 1000);
}
#else
unsigned long sandbox_host_tsc_khz(void)
{
	return 0;
}
#endif
