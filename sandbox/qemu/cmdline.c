/* The QEMU command line for a pod VM. */
#include "qemu.h"
#include "guest_abi.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* loops_per_jiffy given to TCG guests so they skip the delay-loop calibration. */
#define SANDBOX_DEFAULT_LPJ 4000000UL

struct argv_buf {
	char **v;
	size_t n, cap;
};

static void argv_add(struct argv_buf *a, char *s /* owned */)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 32;
		a->v = pv_xrealloc(a->v, a->cap * sizeof(char *));
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void argv_addf(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void argv_addf(struct argv_buf *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	argv_add(a, pv_xvasprintf(fmt, ap));
	va_end(ap);
}

void sandbox_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* QEMU option values separate with ','; a literal comma is written ",,". */
static char *qemu_escape(const char *s)
{
	size_t n = 0;
	for (const char *p = s; *p; p++)
		n += *p == ',' ? 2 : 1;
	char *out = pv_xmalloc(n + 1), *o = out;
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

char *sandbox_qemu_kernel_cmdline(const struct vmm_config *cfg)
{
	const struct qemu_machine *m = sandbox_qemu_machine(cfg->arch);
	if (!m)
		m = sandbox_qemu_machine(VMM_ARCH_X86_64);
	/* panic=-1 + -no-reboot: a guest panic ends QEMU instead of hanging the pod. */
	char *base = pv_xstrdup(m->cmdline);
	if (cfg->accel == VMM_ACCEL_TCG && m->tcg_timer_hints) {
		/* Skip calibrations that are slow and unreliable under emulation: with the TSC
		 * rate given, lpj follows from it; without, preset lpj. */
		char *t = cfg->tsc_khz ? pv_xasprintf("%s tsc_early_khz=%lu", base, cfg->tsc_khz)
				       : pv_xasprintf("%s lpj=%lu", base, cfg->lpj ? cfg->lpj : SANDBOX_DEFAULT_LPJ);
		free(base);
		base = t;
	}
	if (cfg->kernel_args && *cfg->kernel_args) {
		char *t = pv_xasprintf("%s %s", base, cfg->kernel_args);
		free(base);
		base = t;
	}
	return base;
}

static int check_file(const char *what, const char *path, pv_err_t **err)
{
	if (!path || !*path)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "no %s configured", what);
	if (access(path, R_OK) < 0)
		return pv_err_sys(err, errno == ENOENT ? PV_FAILED_PRECONDITION : PV_INTERNAL,
				  "%s %s", what, path);
	return 0;
}

static void add_chardev_socket(struct argv_buf *a, const char *id, int fd, const char *path)
{
	if (fd >= 0) {
		argv_addf(a, "socket,id=%s,fd=%d,server=on,wait=off", id, fd);
	} else {
		cleanup_free char *p = qemu_escape(path);
		argv_addf(a, "socket,id=%s,path=%s,server=on,wait=off", id, p);
	}
}

static const char *accel_option(const struct vmm_config *cfg, char *buf, size_t len)
{
	switch (cfg->accel) {
	case VMM_ACCEL_KVM:
		return "kvm";
	case VMM_ACCEL_HVF:
		return "hvf";
	default:
		if (cfg->tcg_tb_size_mib) {
			snprintf(buf, len, "tcg,tb-size=%u", cfg->tcg_tb_size_mib);
			return buf;
		}
		return "tcg";
	}
}

/* Console, QMP, agent channel, SCSI controller for hot-plug, optional 9p share and virtio-net. */
static void add_devices(struct argv_buf *a, const struct vmm_config *cfg)
{
	/* Guest console appended to the pod log (QEMU's stderr goes there too). */
	cleanup_free char *logp = qemu_escape(cfg->log_path);
	argv_add(a, pv_xstrdup("-chardev"));
	argv_addf(a, "file,id=console,path=%s,append=on", logp);
	argv_add(a, pv_xstrdup("-serial"));
	argv_add(a, pv_xstrdup("chardev:console"));

	argv_add(a, pv_xstrdup("-chardev"));
	add_chardev_socket(a, "qmp", cfg->qmp_listen_fd, cfg->qmp_socket);
	argv_add(a, pv_xstrdup("-mon"));
	argv_add(a, pv_xstrdup("chardev=qmp,mode=control"));

	argv_add(a, pv_xstrdup("-device"));
	argv_add(a, pv_xstrdup("virtio-serial-device,id=vser0"));
	argv_add(a, pv_xstrdup("-chardev"));
	add_chardev_socket(a, "agent", cfg->agent_listen_fd, cfg->agent_socket);
	argv_add(a, pv_xstrdup("-device"));
	argv_add(a, pv_xstrdup("virtserialport,chardev=agent,name=podvisor.agent"));

	argv_add(a, pv_xstrdup("-device"));
	argv_add(a, pv_xstrdup("virtio-scsi-device,id=scsi0"));

	if (cfg->share_dir) {
		/* multidevs=remap: the share holds bind mounts of other filesystems; remapping
		 * keeps their inode numbers from colliding in the guest. */
		cleanup_free char *dir = qemu_escape(cfg->share_dir);
		argv_add(a, pv_xstrdup("-fsdev"));
		argv_addf(a, "local,id=vol,path=%s,security_model=passthrough,multidevs=remap", dir);
		argv_add(a, pv_xstrdup("-device"));
		argv_add(a, pv_xstrdup("virtio-9p-device,fsdev=vol,mount_tag=" PV_GUEST_SHARE_TAG));
	}

	if (cfg->tap_fd >= 0) {
		/* A tap opened in the pod's netns: QEMU itself stays in the host netns. */
		argv_add(a, pv_xstrdup("-netdev"));
		argv_addf(a, "tap,id=net0,fd=%d", cfg->tap_fd);
		argv_add(a, pv_xstrdup("-device"));
		argv_addf(a, "virtio-net-device,netdev=net0,mac=%s", cfg->mac);
	} else if (cfg->tap) {
		cleanup_free char *t = qemu_escape(cfg->tap);
		argv_add(a, pv_xstrdup("-netdev"));
		argv_addf(a, "tap,id=net0,ifname=%s,script=no,downscript=no", t);
		argv_add(a, pv_xstrdup("-device"));
		argv_addf(a, "virtio-net-device,netdev=net0,mac=%s", cfg->mac);
	}
}

int sandbox_qemu_argv(const struct vmm_config *cfg, char ***argv_out, pv_err_t **err)
{
	const struct qemu_machine *m = sandbox_qemu_machine(cfg->arch);
	if (!m)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "no QEMU machine for guest architecture %d",
				  (int)cfg->arch);
	if (check_file("guest kernel", cfg->kernel, err) < 0 ||
	    check_file("guest initramfs", cfg->initramfs, err) < 0)
		return -1;
	if (cfg->accel == VMM_ACCEL_AUTO)
		return pv_err_set(err, PV_INTERNAL, EINVAL, "accelerator not resolved");
	if (!cfg->log_path || (cfg->agent_listen_fd < 0 && !cfg->agent_socket) ||
	    (cfg->qmp_listen_fd < 0 && !cfg->qmp_socket))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "log path, agent socket and QMP socket are required");
	if ((cfg->tap || cfg->tap_fd >= 0) && !cfg->mac)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "tap %s given without a MAC",
				  cfg->tap ? cfg->tap : "fd");

	struct argv_buf a = { 0 };
	char accel_buf[64];
	argv_add(&a, pv_xstrdup(cfg->qemu_binary ? cfg->qemu_binary : m->binary));
	if (cfg->name) {
		cleanup_free char *n = qemu_escape(cfg->name);
		argv_add(&a, pv_xstrdup("-name"));
		argv_addf(&a, "pod-%.12s,debug-threads=on", n);
	}
	argv_add(&a, pv_xstrdup("-machine"));
	argv_add(&a, pv_xstrdup(cfg->machine ? cfg->machine : m->machine));
	argv_add(&a, pv_xstrdup("-accel"));
	argv_add(&a, pv_xstrdup(accel_option(cfg, accel_buf, sizeof(accel_buf))));
	argv_add(&a, pv_xstrdup("-cpu"));
	argv_add(&a, pv_xstrdup(cfg->accel == VMM_ACCEL_TCG ? m->cpu_tcg : "host"));
	argv_add(&a, pv_xstrdup("-smp"));
	argv_addf(&a, "%u", cfg->vcpus ? cfg->vcpus : 1);
	argv_add(&a, pv_xstrdup("-m"));
	argv_addf(&a, "%" PRIu64 "M", cfg->memory_mib ? cfg->memory_mib : 256);
	argv_add(&a, pv_xstrdup("-nodefaults"));
	argv_add(&a, pv_xstrdup("-no-user-config"));
	argv_add(&a, pv_xstrdup("-nographic"));
	argv_add(&a, pv_xstrdup("-no-reboot"));

	argv_add(&a, pv_xstrdup("-kernel"));
	argv_add(&a, pv_xstrdup(cfg->kernel));
	argv_add(&a, pv_xstrdup("-initrd"));
	argv_add(&a, pv_xstrdup(cfg->initramfs));
	argv_add(&a, pv_xstrdup("-append"));
	argv_add(&a, sandbox_qemu_kernel_cmdline(cfg));

	add_devices(&a, cfg);
	*argv_out = a.v;
	return 0;
}

