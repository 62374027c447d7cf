/* A container's writable rootfs: a qcow2 overlay over the image's read-only ext4. */
#include "vmm.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

/* The filesystem the overlay goes on has (next to) no room left. */
static bool disk_full(const char *overlay)
{
	cleanup_free char *dir = pv_xstrdup(overlay);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	struct statvfs sv;
	return statvfs(slash ? dir : ".", &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < (1u << 20);
}

int sandbox_overlay_create(const char *qemu_img, const char *base, const char *overlay, uint64_t size_bytes,
			   pv_err_t **err)
{
	struct stat bst;
	if (stat(base, &bst) < 0)
		return pv_err_sys(err, errno == ENOENT ? PV_NOT_FOUND : PV_INTERNAL, "image disk %s", base);
	if (size_bytes < (uint64_t)bst.st_size)
		size_bytes = (uint64_t)bst.st_size;
	char size[32];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)size_bytes);
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return pv_err_sys(err, PV_INTERNAL, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return pv_err_sys(err, PV_INTERNAL, "fork");
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		dup2(devnull, 0);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		const char *prog = qemu_img ? qemu_img : "qemu-img";
		execlp(prog, prog, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, overlay, size, (char *)NULL);
		dprintf(2, "exec %s: %s", prog, strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	char out[1024];
	ssize_t n = pv_read_full(pipefd[0], out, sizeof(out) - 1);
	close(pipefd[0]);
	out[n > 0 ? n : 0] = '\0';
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		size_t l = strlen(out);
		while (l && (out[l - 1] == '\n' || out[l - 1] == '\r'))
			out[--l] = '\0';
		return pv_err_set(err, disk_full(overlay) ? PV_RESOURCE_EXHAUSTED : PV_INTERNAL,
				  disk_full(overlay) ? ENOSPC : EIO,
				  "qemu-img create %s: %s", overlay, out);
	}
	return 0;
}
