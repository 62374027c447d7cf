/*
 * x86_64 programs in an arm64 pod (the role Rosetta plays on a Mac): when the initramfs
 * carries Debian's static qemu-x86_64 (handler arm64-x86, docs/arm64.md), PID 1 registers it
 * with binfmt_misc before re-rooting. Flag F makes the kernel open the emulator at
 * registration, so it runs for binaries inside any container's root, and keeps working after
 * the initramfs is left behind; P passes argv[0] through (Debian's "-binfmt-P" name tells
 * qemu to expect it); O lets it run binaries that are executable but not readable.
 */
#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define BINFMT_DIR "/proc/sys/fs/binfmt_misc"
#define BINFMT_NAME "qemu-x86_64"

/* ELF64, little endian, ET_EXEC or ET_DYN (mask 0xfe), e_machine EM_X86_64 (0x3e). */
static const char x86_64_rule[] = ":" BINFMT_NAME ":M::"
				  "\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
				  "\\x02\\x00\\x3e\\x00:"
				  "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff"
				  "\\xfe\\xff\\xff\\xff:" AGENT_BINFMT_X86_64 ":OPF";

static int mount_binfmt(void)
{
	if (access(BINFMT_DIR "/register", W_OK) == 0)
		return 0;
	if (mount("binfmt_misc", BINFMT_DIR, "binfmt_misc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 &&
	    errno != EBUSY)
		return -errno;
	return 0;
}

int binfmt_register_from_initramfs(void)
{
	if (access(AGENT_BINFMT_X86_64, X_OK) < 0)
		return 0;
	int r = mount_binfmt();
	if (r < 0)
		return r;
	int fd = open(BINFMT_DIR "/register", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = pv_write_full(fd, x86_64_rule, strlen(x86_64_rule));
	close(fd);
	return r < 0 ? r : 1;
}

void binfmt_report(void)
{
	const char *failed = getenv("PODVISOR_BINFMT_ERROR");
	if (failed) {
		pv_warn("binfmt registration failed", "name=%s error=%s", BINFMT_NAME, failed);
		return;
	}
	if (mount_binfmt() < 0)
		return;
	char buf[512];
	cleanup_close int fd = open(BINFMT_DIR "/" BINFMT_NAME, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	pv_info("binfmt registered", "name=%s enabled=%s", BINFMT_NAME, strncmp(buf, "enabled", 7) ? "no" : "yes");
}
