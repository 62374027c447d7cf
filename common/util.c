#include "util.h"
#include "cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(void)
{
	static const char msg[] = "podvisor: out of memory\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	abort();
}

void *pv_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *pv_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *pv_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *pv_xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		oom();
	return p;
}

char *pv_xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		oom();
	return p;
}

char *pv_xvasprintf(const char *fmt, va_list ap)
{
	char *p = NULL;
	if (vasprintf(&p, fmt, ap) < 0)
		oom();
	return p;
}

char *pv_xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = pv_xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

ssize_t pv_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int pv_write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

int pv_read_file(const char *path, size_t max, char **out, size_t *len, pv_err_t **err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pv_err_sys(err, errno == ENOENT ? PV_NOT_FOUND : PV_INTERNAL, "open %s", path);
	size_t cap = 4096, used = 0;
	cleanup_free char *buf = pv_xmalloc(cap + 1);
	for (;;) {
		if (used == cap) {
			if (cap >= max)
				return pv_err_set(err, PV_OUT_OF_RANGE, EFBIG, "%s: larger than %zu bytes", path, max);
			cap = cap * 2 > max ? max : cap * 2;
			buf = pv_xrealloc(buf, cap + 1);
		}
		ssize_t n = read(fd, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pv_err_sys(err, PV_INTERNAL, "read %s", path);
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	if (len)
		*len = used;
	*out = steal_pointer(&buf);
	return 0;
}

int pv_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, pv_err_t **err)
{
	cleanup_free char *tmp = pv_xasprintf("%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "create %s", tmp);
	int r = pv_write_full(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		errno = -r;
		return pv_err_sys(err, errno == ENOSPC ? PV_RESOURCE_EXHAUSTED : PV_INTERNAL, "write %s", path);
	}
	return 0;
}

int pv_mkdir_p(const char *path, mode_t mode, pv_err_t **err)
{
	cleanup_free char *p = pv_xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return pv_err_sys(err, PV_INTERNAL, "mkdir %s", p);
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return pv_err_sys(err, PV_INTERNAL, "mkdir %s", p);
	return 0;
}

static int rm_rf_at(int parent, const char *name, pv_err_t **err)
{
	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return pv_err_sys(err, PV_INTERNAL, "unlink %s", name);
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "open %s", name);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return pv_err_sys(err, PV_INTERNAL, "opendir %s", name);
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = rm_rf_at(dirfd(d), de->d_name, err);
	}
	closedir(d);
	if (r < 0)
		return r;
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return pv_err_sys(err, PV_INTERNAL, "rmdir %s", name);
	return 0;
}

int pv_rm_rf(const char *path, pv_err_t **err)
{
	return rm_rf_at(AT_FDCWD, path, err);
}

int64_t pv_now_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t pv_now_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void pv_format_rfc3339nano(int64_t ns, char *buf, size_t len)
{
	time_t secs = (time_t)(ns / 1000000000);
	long frac = (long)(ns % 1000000000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char date[32];
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%09ldZ", date, frac);
}

char *pv_random_hex(size_t nbytes)
{
	unsigned char raw[64];
	if (nbytes > sizeof(raw))
		nbytes = sizeof(raw);
	size_t got = 0;
	while (got < nbytes) {
		ssize_t n = getrandom(raw + got, nbytes - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			abort();
		got += (size_t)n;
	}
	char *out = pv_xmalloc(nbytes * 2 + 1);
	for (size_t i = 0; i < nbytes; i++)
		sprintf(out + 2 * i, "%02x", raw[i]);
	return out;
}

int pv_str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

char *pv_find_executable(const char *dirs, const char *name)
{
	cleanup_free char *copy = pv_xstrdup(dirs);
	char *save = NULL;
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *full = pv_xasprintf("%s/%s", dir, name);
		if (access(full, X_OK) == 0)
			return full;
		free(full);
	}
	return NULL;
}
