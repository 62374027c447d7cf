/* QEMU command line, VM sizing and accelerator choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "qemu.h"
#include "guest_abi.h"
#include "util.h"

static char tmpdir[64];
static char kernel[128], initrd[128];

static int setup(void **state)
{
	strcpy(tmpdir, "/tmp/pv-sbx-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(kernel, sizeof(kernel), "%s/vmlinux", tmpdir);
	snprintf(initrd, sizeof(initrd), "%s/initramfs.cpio", tmpdir);
	assert_int_equal(pv_write_file_atomic(kernel, "k", 1, 0644, NULL), 0);
	assert_int_equal(pv_write_file_atomic(initrd, "i", 1, 0644, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	pv_rm_rf(tmpdir, NULL);
	return 0;
}

static void base_cfg(struct vmm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->name = "0123456789abcdef0123";
	c->kernel = kernel;
	c->initramfs = initrd;
	c->accel = VMM_ACCEL_TCG;
	c->vcpus = 2;
	c->memory_mib = 320;
	c->agent_socket = "/run/pod/agent.sock";
	c->qmp_socket = "/run/pod/qmp.sock";
	c->log_path = "/run/pod/vm,log";
	c->agent_listen_fd = -1;
	c->qmp_listen_fd = -1;
	c->tap_fd = -1;
}

/* Index of the argument following `opt` whose value starts with `prefix`, or -1. */
static int find_opt(char **argv, const char *opt, const char *prefix)
{
	for (int i = 0; argv[i]; i++)
		if (!strcmp(argv[i], opt) && argv[i + 1] && pv_str_has_prefix(argv[i + 1], prefix))
			return i + 1;
	return -1;
}

static void test_argv_tcg(void **state)
{
	struct vmm_config c;
	base_cfg(&c);
	char **argv = NULL;
	pv_err_t *err = NULL;
	assert_int_equal(sandbox_qemu_argv(&c, &argv, &err), 0);
	assert_null(err);
	assert_string_equal(argv[0], "qemu-system-x86_64");
	int i = find_opt(argv, "-machine", "microvm");
	assert_true(i > 0);
	assert_string_equal(argv[i], SANDBOX_DEFAULT_MACHINE);
	assert_non_null(strstr(argv[i], "acpi=off"));
	assert_string_equal(argv[find_opt(argv, "-accel", "")], "tcg");
	assert_string_equal(argv[find_opt(argv, "-cpu", "")], "max");
	assert_string_equal(argv[find_opt(argv, "-smp", "")], "2");
	assert_string_equal(argv[find_opt(argv, "-m", "")], "320M");
	assert_string_equal(argv[find_opt(argv, "-kernel", "")], kernel);
	assert_string_equal(argv[find_opt(argv, "-initrd", "")], initrd);
	const char *append = argv[find_opt(argv, "-append", "")];
	assert_non_null(strstr(append, "lpj="));
	assert_non_null(strstr(append, "acpi=off"));
	assert_non_null(strstr(append, "console=ttyS0"));
	int seen_nodef = 0, seen_nouser = 0;
	for (int k = 0; argv[k]; k++) {
		seen_nodef |= !strcmp(argv[k], "-nodefaults");
		seen_nouser |= !strcmp(argv[k], "-no-user-config");
	}
	assert_true(seen_nodef && seen_nouser);
	/* The comma in the log path is escaped for QEMU's option parser. */
	assert_true(find_opt(argv, "-chardev", "file,id=console,path=/run/pod/vm,,log,append=on") > 0);
	assert_true(find_opt(argv, "-serial", "chardev:console") > 0);
	assert_true(find_opt(argv, "-chardev", "socket,id=qmp,path=/run/pod/qmp.sock,server=on,wait=off") > 0);
	assert_true(find_opt(argv, "-mon", "chardev=qmp,mode=control") > 0);
	assert_true(find_opt(argv, "-device", "virtio-serial-device") > 0);
	assert_true(find_opt(argv, "-chardev", "socket,id=agent,path=/run/pod/agent.sock,server=on") > 0);
	assert_true(find_opt(argv, "-device", "virtserialport,chardev=agent,name=podvisor.agent") > 0);
	assert_true(find_opt(argv, "-device", "virtio-scsi-device,id=scsi0") > 0);
	assert_int_equal(find_opt(argv, "-netdev", ""), -1);
	sandbox_argv_free(argv);
}

/* arm64: QEMU virt with the same virtio-mmio devices; no x86 timer hints or ACPI switches. */
static void test_argv_arm64_virt(void **state)
{
	struct vmm_config c;
	base_cfg(&c);
	c.arch = VMM_ARCH_ARM64;
	c.tsc_khz = 2500000;
	c.tap_fd = 7;
	c.mac = "52:54:00:00:00:64";
	c.share_dir = "/run/pod/vol";
	char **argv = NULL;
	pv_err_t *err = NULL;
	assert_int_equal(sandbox_qemu_argv(&c, &argv, &err), 0);
	assert_string_equal(argv[0], "qemu-system-aarch64");
	assert_string_equal(argv[find_opt(argv, "-machine", "")], "virt,gic-version=3");
	assert_string_equal(argv[find_opt(argv, "-cpu", "")], "cortex-a57");
	const char *append = argv[find_opt(argv, "-append", "")];
	assert_non_null(strstr(append, "console=ttyAMA0"));
	assert_null(strstr(append, "tsc_early_khz"));
	assert_null(strstr(append, "lpj="));
	assert_null(strstr(append, "acpi=off"));
	assert_null(strstr(append, "reboot=t"));
	assert_true(find_opt(argv, "-device", "virtio-serial-device") > 0);
	assert_true(find_opt(argv, "-device", "virtio-scsi-device,id=scsi0") > 0);
	assert_true(find_opt(argv, "-device", "virtio-net-device,netdev=net0,mac=52:54:00:00:00:64") > 0);
	assert_true(find_opt(argv, "-device", "virtio-9p-device") > 0);
	sandbox_argv_free(argv);
	/* Accelerated (KVM on an arm64 host, HVF on a Mac): the host CPU. */
	c.accel = VMM_ACCEL_HVF;
	assert_int_equal(sandbox_qemu_argv(&c, &argv, &err), 0);
	assert_string_equal(argv[find_opt(argv, "-accel", "")], "hvf");
	assert_string_equal(argv[find_opt(argv, "-cpu", "")], "host");
	sandbox_argv_free(argv);
	enum vmm_arch a;
	assert_int_equal(sandbox_arch_parse("aarch64", &a), 0);
	assert_int_equal(a, VMM_ARCH_ARM64);
	assert_int_equal(sandbox_arch_parse("amd64", &a), 0);
	assert_int_equal(a, VMM_ARCH_X86_64);
	assert_int_equal(sandbox_arch_parse("riscv64", &a), -1);
	assert_string_equal(sandbox_arch_name(VMM_ARCH_ARM64), "arm64");
}

static void test_argv_kvm_tap_fds(void **state)
{
	struct vmm_config c;
	base_cfg(&c);
	c.accel = VMM_ACCEL_KVM;
	c.tap = "tap0";
	c.mac = "02:00:00:00:00:01";
	c.agent_listen_fd = 3;
	c.qmp_listen_fd = 4;
	c.kernel_args = "podvisor.debug=1";
	c.machine = "microvm,acpi=off,pit=on";
	char **argv = NULL;
	assert_int_equal(sandbox_qemu_argv(&c, &argv, NULL), 0);
	assert_string_equal(argv[find_opt(argv, "-machine", "")], "microvm,acpi=off,pit=on");
	assert_string_equal(argv[find_opt(argv, "-accel", "")], "kvm");
	assert_string_equal(argv[find_opt(argv, "-cpu", "")], "host");
	const char *append = argv[find_opt(argv, "-append", "")];
	assert_null(strstr(append, "lpj="));
	assert_non_null(strstr(append, "podvisor.debug=1"));
	assert_true(find_opt(argv, "-chardev", "socket,id=agent,fd=3,server=on,wait=off") > 0);
	assert_true(find_opt(argv, "-chardev", "socket,id=qmp,fd=4,server=on,wait=off") > 0);
	assert_true(find_opt(argv, "-netdev", "tap,id=net0,ifname=tap0,script=no,downscript=no") > 0);
	assert_true(find_opt(argv, "-device", "virtio-net-device,netdev=net0,mac=02:00:00:00:00:01") > 0);
	sandbox_argv_free(argv);
	/* A tap opened in the pod netns goes to QEMU as an fd. */
	c.tap = NULL;
	c.tap_fd = 5;
	assert_int_equal(sandbox_qemu_argv(&c, &argv, NULL), 0);
	assert_string_equal(argv[find_opt(argv, "-netdev", "")], "tap,id=net0,fd=5");
	sandbox_argv_free(argv);
}

static void test_argv_share(void **state)
{
	struct vmm_config c;
	base_cfg(&c);
	char **argv = NULL;
	assert_int_equal(sandbox_qemu_argv(&c, &argv, NULL), 0);
	assert_int_equal(find_opt(argv, "-fsdev", ""), -1); /* no share unless asked */
	sandbox_argv_free(argv);
	c.share_dir = "/var/lib/pods/a,b/volumes";
	assert_int_equal(sandbox_qemu_argv(&c, &argv, NULL), 0);
	assert_string_equal(argv[find_opt(argv, "-fsdev", "")],
			    "local,id=vol,path=/var/lib/pods/a,,b/volumes,security_model=passthrough,multidevs=remap");
	assert_string_equal(argv[find_opt(argv, "-device", "virtio-9p")],
			    "virtio-9p-device,fsdev=vol,mount_tag=" PV_GUEST_SHARE_TAG);
	sandbox_argv_free(argv);
}

static void test_argv_errors(void **state)
{
	struct vmm_config c;
	base_cfg(&c);
	c.kernel = "/nonexistent/vmlinux";
	char **argv = NULL;
	pv_err_t *err = NULL;
	assert_true(sandbox_qemu_argv(&c, &argv, &err) < 0);
	assert_null(argv);
	assert_non_null(err);
	assert_int_equal(err->status, PV_FAILED_PRECONDITION);
	assert_non_null(strstr(err->msg, "/nonexistent/vmlinux"));
	pv_err_free(err);
	err = NULL;

	base_cfg(&c);
	c.tap = "tap0";
	assert_true(sandbox_qemu_argv(&c, &argv, &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	pv_err_free(err);
	err = NULL;

	base_cfg(&c);
	c.accel = VMM_ACCEL_AUTO;
	assert_true(sandbox_qemu_argv(&c, &argv, &err) < 0);
	pv_err_free(err);
}

static void test_tcg_tb_size(void **state)
{
	struct vmm_config c;
	base_cfg(&c);
	c.tcg_tb_size_mib = 32;
	c.lpj = 1234;
	char **argv = NULL;
	assert_int_equal(sandbox_qemu_argv(&c, &argv, NULL), 0);
	assert_string_equal(argv[find_opt(argv, "-accel", "")], "tcg,tb-size=32");
	assert_non_null(strstr(argv[find_opt(argv, "-append", "")], "lpj=1234"));
	sandbox_argv_free(argv);
	/* With the host TSC rate known the guest gets it instead of lpj. */
	c.tsc_khz = 2500000;
	assert_int_equal(sandbox_qemu_argv(&c, &argv, NULL), 0);
	assert_non_null(strstr(argv[find_opt(argv, "-append", "")], "tsc_early_khz=2500000"));
	assert_null(strstr(argv[find_opt(argv, "-append", "")], "lpj="));
	sandbox_argv_free(argv);
	unsigned long khz = sandbox_host_tsc_khz();
	assert_true(khz == 0 || (khz >= 100000 && khz % 1000 == 0));
}

static void test_sizing(void **state)
{
	struct vmm_sizing s;
	sandbox_sizing_defaults(&s);
	s.max_vcpus = 4;
	unsigned cpus;
	uint64_t mem;
	sandbox_sizing_compute(&s, 0, 0, 0, &cpus, &mem);
	assert_int_equal(cpus, 1);
	assert_int_equal(mem, 256);
	/* 1.5 CPUs round up; 512 MiB limit + 64 MiB overhead. */
	sandbox_sizing_compute(&s, 150000, 100000, 512LL << 20, &cpus, &mem);
	assert_int_equal(cpus, 2);
	assert_int_equal(mem, 576);
	/* Capped to max_vcpus; tiny limits get the floor. */
	sandbox_sizing_compute(&s, 1600000, 100000, 10LL << 20, &cpus, &mem);
	assert_int_equal(cpus, 4);
	assert_int_equal(mem, 128);
}

static void test_accel(void **state)
{
	char *why = NULL;
	assert_int_equal(sandbox_accel_detect(VMM_ACCEL_TCG, "/dev/kvm", &why), VMM_ACCEL_TCG);
	assert_non_null(strstr(why, "configuration"));
	free(why);
	why = NULL;
	/* A device that is not KVM: falls back to TCG and says why. */
	assert_int_equal(sandbox_accel_detect(VMM_ACCEL_AUTO, "/dev/null", &why), VMM_ACCEL_TCG);
	assert_non_null(strstr(why, "KVM_GET_API_VERSION"));
	free(why);
	why = NULL;
	assert_int_equal(sandbox_accel_detect(VMM_ACCEL_AUTO, "/nonexistent/kvm", &why), VMM_ACCEL_TCG);
	assert_non_null(strstr(why, "/nonexistent/kvm"));
	free(why);

	enum vmm_accel a;
	assert_int_equal(sandbox_accel_parse("kvm", &a), 0);
	assert_int_equal(a, VMM_ACCEL_KVM);
	assert_int_equal(sandbox_accel_parse("auto", &a), 0);
	assert_int_equal(a, VMM_ACCEL_AUTO);
	assert_int_equal(sandbox_accel_parse("xen", &a), -1);
	assert_string_equal(sandbox_accel_name(VMM_ACCEL_HVF), "hvf");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_argv_tcg),	cmocka_unit_test(test_argv_kvm_tap_fds),
		cmocka_unit_test(test_argv_errors),	cmocka_unit_test(test_tcg_tb_size),
		cmocka_unit_test(test_argv_share),	cmocka_unit_test(test_argv_arm64_virt),
		cmocka_unit_test(test_sizing),		cmocka_unit_test(test_accel),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
