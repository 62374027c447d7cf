/* CRI log format writer: timestamps, stream names, P/F tags, 16 KiB line splitting. */
#include "ctr_log.h"
#include "cleanup.h"
#include "path.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

int shim_log_open(struct shim_log *l, const char *dir, const char *path, pv_err_t **err)
{
	l->fd = -1;
	l->path = l->dir = l->rel = NULL;
	if (!path || !*path)
		return 0;
	if (dir && *dir) {
		if (pv_path_beneath(dir, path, "log_path", &l->rel, err) < 0)
			return -1;
		l->dir = pv_xstrdup(dir);
	} else {
		/* No log directory given (shimctl, an older podvisord): trust the parent, not the file. */
		const char *slash = strrchr(path, '/');
		if (path[0] != '/' || !slash[1])
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
					  "log_path \"%s\" must be an absolute file path", PV_ECHO(path));
		l->dir = slash == path ? pv_xstrdup("/") : pv_xstrndup(path, (size_t)(slash - path));
		l->rel = pv_xstrdup(slash + 1);
	}
	l->path = strcmp(l->dir, "/") ? pv_xasprintf("%s/%s", l->dir, l->rel) : pv_xasprintf("/%s", l->rel);
	if (shim_log_reopen(l, err) < 0) {
		shim_log_close(l);
		return -1;
	}
	return 0;
}

int shim_log_reopen(struct shim_log *l, pv_err_t **err)
{
	if (!l->path)
		return 0;
	int fd = pv_open_file_beneath(l->dir, l->rel, O_WRONLY | O_CREAT | O_APPEND, 0640, "log_path", err);
	if (fd < 0)
		return -1;
	if (l->fd >= 0)
		close(l->fd);
	l->fd = fd;
	return 0;
}

void shim_log_close(struct shim_log *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	free(l->path);
	free(l->dir);
	free(l->rel);
	l->path = l->dir = l->rel = NULL;
}

void shim_log_stream_init(struct shim_log_stream *s, struct shim_log *l, const char *name)
{
	memset(s, 0, sizeof(*s));
	s->log = l;
	s->name = name;
}

void shim_log_stream_free(struct shim_log_stream *s)
{
	free(s->partial);
	s->partial = NULL;
	s->plen = 0;
}

/* One record: "<ts> <stream> <tag> " + a + b + "\n" (a is the buffered head of the line). */
static int write_record(struct shim_log_stream *s, char tag, const char *a, size_t alen, const char *b,
			size_t blen, int64_t now_ns, pv_err_t **err)
{
	if (!s->log || s->log->fd < 0)
		return 0;
	char head[96], ts[48];
	pv_format_rfc3339nano(now_ns, ts, sizeof(ts));
	int hl = snprintf(head, sizeof(head), "%s %s %c ", ts, s->name, tag);
	struct iovec iov[4] = {
		{ head, (size_t)hl }, { (void *)a, alen }, { (void *)b, blen }, { "\n", 1 },
	};
	size_t total = (size_t)hl + alen + blen + 1;
	/* One writev per record: with O_APPEND a reader never sees half a record interleaved. */
	ssize_t n;
	do
		n = writev(s->log->fd, iov, 4);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return pv_err_sys(err, errno == ENOSPC ? PV_RESOURCE_EXHAUSTED : PV_INTERNAL, "write log %s",
				  s->log->path);
	if ((size_t)n != total)
		return pv_err_set(err, PV_RESOURCE_EXHAUSTED, ENOSPC, "write log %s: short write", s->log->path);
	return 0;
}

int shim_log_stream_write(struct shim_log_stream *s, const void *data, size_t len, int64_t now_ns,
			  pv_err_t **err)
{
	const char *p = data, *end = p + len;
	while (p < end) {
		size_t room = SHIM_LOG_MAX_LINE - s->plen;
		size_t avail = (size_t)(end - p);
		const char *nl = memchr(p, '\n', avail < room ? avail : room);
		if (nl) {
			int r = write_record(s, 'F', s->partial, s->plen, p, (size_t)(nl - p), now_ns, err);
			s->plen = 0;
			if (r < 0)
				return r;
			p = nl + 1;
			continue;
		}
		if (avail >= room) {
			/* A line this long is cut: a P record, the rest follows. */
			int r = write_record(s, 'P', s->partial, s->plen, p, room, now_ns, err);
			s->plen = 0;
			if (r < 0)
				return r;
			p += room;
			continue;
		}
		if (!s->partial)
			s->partial = pv_xmalloc(SHIM_LOG_MAX_LINE);
		memcpy(s->partial + s->plen, p, avail);
		s->plen += avail;
		p = end;
	}
	return 0;
}

int shim_log_stream_flush(struct shim_log_stream *s, int64_t now_ns, pv_err_t **err)
{
	if (!s->plen)
		return 0;
	int r = write_record(s, 'F', s->partial, s->plen, NULL, 0, now_ns, err);
	s->plen = 0;
	return r;
}
