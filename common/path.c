/* Paths from outside, resolved beneath a directory without following symlinks. */
#include "path.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef O_PATH
#define O_PATH O_RDONLY
#endif

/* Next component of *p (skipping slashes); false at the end. */
static bool next_comp(const char **p, const char **comp, size_t *len)
{
	const char *s = *p;
	while (*s == '/')
		s++;
	if (!*s)
		return false;
	const char *e = strchrnul(s, '/');
	*comp = s;
	*len = (size_t)(e - s);
	*p = e;
	return true;
}

static bool is_dot(const char *c, size_t n)
{
	return n == 1 && c[0] == '.';
}

static bool is_dotdot(const char *c, size_t n)
{
	return n == 2 && c[0] == '.' && c[1] == '.';
}

int pv_path_is_clean_abs(const char *path)
{
	if (!path || path[0] != '/')
		return 0;
	const char *p = path, *c;
	size_t n;
	while (next_comp(&p, &c, &n))
		if (is_dot(c, n) || is_dotdot(c, n))
			return 0;
	return 1;
}

int pv_path_beneath(const char *dir, const char *path, const char *what, char **rel, pv_err_t **err)
{
	if (!pv_path_is_clean_abs(dir))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "%s: directory \"%s\" must be an absolute path without '.' or '..' components", what,
				  PV_ECHO(dir));
	const char *p = path ? path : "", *c;
	size_t n;
	if (p[0] == '/') {
		/* Absolute: dir's components must come first. */
		const char *d = dir, *dc;
		size_t dn;
		while (next_comp(&d, &dc, &dn)) {
			if (!next_comp(&p, &c, &n) || n != dn || memcmp(c, dc, n))
				return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s \"%s\" is outside %s", what,
						  PV_ECHO(path), PV_ECHO(dir));
		}
	}
	size_t len = strlen(p);
	char *out = pv_xmalloc(len + 1);
	size_t o = 0;
	while (next_comp(&p, &c, &n)) {
		if (is_dot(c, n))
			continue;
		if (is_dotdot(c, n)) {
			free(out);
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s \"%s\": '..' components are not allowed",
					  what, PV_ECHO(path));
		}
		if (o)
			out[o++] = '/';
		memcpy(out + o, c, n);
		o += n;
	}
	out[o] = '\0';
	if (!o) {
		free(out);
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s \"%s\" names no file below %s", what,
				  PV_ECHO(path), PV_ECHO(dir));
	}
	*rel = out;
	return 0;
}

/* A failed open of a directory: the caller's mistake unless it is the system's. */
static int dir_error(int e, const char *what, const char *dir, const char *sub, pv_err_t **err)
{
	errno = e;
	if (e == ENOENT)
		return pv_err_set(err, PV_INVALID_ARGUMENT, e, "%s: directory %s%s%s does not exist", what,
				  PV_ECHO(dir), sub ? "/" : "", sub ? PV_ECHO(sub) : "");
	if (e == ELOOP || e == ENOTDIR)
		return pv_err_set(err, PV_INVALID_ARGUMENT, e, "%s: %s%s%s is a symlink or not a directory", what,
				  PV_ECHO(dir), sub ? "/" : "", sub ? PV_ECHO(sub) : "");
	return pv_err_sys(err, PV_INTERNAL, "%s: open %s%s%s", what, PV_ECHO(dir), sub ? "/" : "",
			  sub ? PV_ECHO(sub) : "");
}

static int file_error(int e, const char *what, const char *dir, const char *rel, pv_err_t **err)
{
	errno = e;
	if (e == ELOOP)
		return pv_err_set(err, PV_INVALID_ARGUMENT, e, "%s: %s/%s is a symlink", what, PV_ECHO(dir),
				  PV_ECHO(rel));
	if (e == EISDIR || e == ENXIO || e == ENODEV || e == ETXTBSY)
		return pv_err_set(err, PV_INVALID_ARGUMENT, e, "%s: %s/%s is not a regular file", what, PV_ECHO(dir),
				  PV_ECHO(rel));
	if (e == ENOENT)
		return pv_err_set(err, PV_INVALID_ARGUMENT, e, "%s: %s/%s does not exist", what, PV_ECHO(dir),
				  PV_ECHO(rel));
	return pv_err_sys(err, e == ENOSPC || e == EDQUOT ? PV_RESOURCE_EXHAUSTED : PV_INTERNAL, "%s: open %s/%s",
			  what, PV_ECHO(dir), PV_ECHO(rel));
}

int pv_open_file_beneath(const char *dir, const char *rel, int flags, mode_t mode, const char *what,
			 pv_err_t **err)
{
	cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return dir_error(errno, what, dir, NULL, err);
	const char *p = rel, *c, *last = NULL;
	size_t n, last_n = 0;
	while (next_comp(&p, &c, &n)) {
		if (is_dot(c, n) || is_dotdot(c, n))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s \"%s\": '.' or '..' component", what,
					  PV_ECHO(rel));
		if (last) {
			cleanup_free char *name = pv_xstrndup(last, last_n);
			int nfd = openat(dfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (nfd < 0) {
				cleanup_free char *sub = pv_xstrndup(rel, (size_t)(last + last_n - rel));
				return dir_error(errno, what, dir, sub, err);
			}
			close(dfd);
			dfd = nfd;
		}
		last = c;
		last_n = n;
	}
	if (!last)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: no file name below %s", what, PV_ECHO(dir));
	cleanup_free char *name = pv_xstrndup(last, last_n);
	int fd = openat(dfd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);
	if (fd < 0)
		return file_error(errno, what, dir, rel, err);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return pv_err_sys(err, PV_INTERNAL, "%s: stat %s/%s", what, PV_ECHO(dir), PV_ECHO(rel));
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink > 1) {
		close(fd);
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "%s: %s/%s is %s", what, PV_ECHO(dir), PV_ECHO(rel),
				  S_ISREG(st.st_mode) ? "a hard link to another file" : "not a regular file");
	}
	if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return pv_err_sys(err, PV_INTERNAL, "%s: fcntl %s/%s", what, PV_ECHO(dir), PV_ECHO(rel));
	}
	return fd;
}
