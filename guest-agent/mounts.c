/*
 * Mounts of a container's security context, run in the forked child (process.c) between
 * fork and execve. Each returns 0, or -1 with a message in msg (errno kept) for the child
 * to report; they never exit themselves.
 *
 * - masked paths: a file is covered by /dev/null, a directory by an empty read-only tmpfs;
 * - read-only paths: bound on themselves and remounted read-only;
 *   (both run after pivot_root, on the container's own paths; a path that does not exist
 *   in this container is skipped, as in runc)
 * - privileged containers: every device node of the VM, made in the container's /dev.
 */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int failed(char *msg, size_t msglen, const char *what, const char *path)
{
	int saved = errno;
	snprintf(msg, msglen, "%s %s", what, path);
	errno = saved;
	return -1;
}

int mounts_mask_paths(char **paths, size_t n, char *msg, size_t msglen)
{
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (stat(paths[i], &st) < 0) {
			if (errno == ENOENT)
				continue;
			return failed(msg, msglen, "masked path", paths[i]);
		}
		if (S_ISDIR(st.st_mode)) {
			if (mount("tmpfs", paths[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555") < 0)
				return failed(msg, msglen, "mask directory", paths[i]);
		} else if (mount("/dev/null", paths[i], NULL, MS_BIND, NULL) < 0) {
			return failed(msg, msglen, "mask", paths[i]);
		}
	}
	return 0;
}

/* The flags a read-only remount must keep: a bind remount sets all of them at once. */
static unsigned long kept_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

int mounts_readonly_paths(char **paths, size_t n, char *msg, size_t msglen)
{
	for (size_t i = 0; i < n; i++) {
		if (mount(paths[i], paths[i], NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			return failed(msg, msglen, "bind read-only path", paths[i]);
		}
		unsigned long f = MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags(paths[i]);
		if (mount(NULL, paths[i], NULL, f, NULL) < 0)
			return failed(msg, msglen, "remount read-only", paths[i]);
	}
	return 0;
}

/* Entries of the VM's /dev a container must not get: its own pty and shm mounts, the
 * agent's serial console (console, ttyS*) and its host channel ports, the stdio symlinks. */
static bool skipped(const char *name)
{
	static const char *const names[] = { ".", "..", "pts", "shm", "mqueue", "fd", "ptmx", "console" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i]))
			return true;
	return !strncmp(name, "vport", 5) || !strncmp(name, "ttyS", 4);
}

/* mknod every device node of src (the VM's) in dst (the container's), one level of
 * sub-directories deep (/dev/net/tun, /dev/cpu/0/...), with owner and mode. */
static int copy_nodes(int src, int dst, int depth, char *msg, size_t msglen)
{
	DIR *d = fdopendir(src);
	if (!d)
		return failed(msg, msglen, "list", "/dev");
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d))) {
		if (skipped(de->d_name))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
			if (mknodat(dst, de->d_name, st.st_mode & (S_IFMT | 07777), st.st_rdev) < 0 && errno != EEXIST) {
				rc = failed(msg, msglen, "mknod in /dev:", de->d_name);
				break;
			}
			fchmodat(dst, de->d_name, st.st_mode & 07777, 0);
			fchownat(dst, de->d_name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
		} else if (S_ISDIR(st.st_mode) && depth < 2) {
			int s = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (s < 0)
				continue;
			if (mkdirat(dst, de->d_name, st.st_mode & 07777) < 0 && errno != EEXIST) {
				close(s);
				rc = failed(msg, msglen, "mkdir in /dev:", de->d_name);
				break;
			}
			int t = openat(dst, de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			rc = t < 0 ? failed(msg, msglen, "open in /dev:", de->d_name) : copy_nodes(s, t, depth + 1, msg, msglen);
			if (t >= 0)
				close(t);
		}
	}
	closedir(d);
	return rc;
}

int mounts_all_devices(int devfd, char *msg, size_t msglen)
{
	int src = open("/dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src < 0)
		return failed(msg, msglen, "open", "/dev");
	return copy_nodes(src, devfd, 1, msg, msglen);
}
