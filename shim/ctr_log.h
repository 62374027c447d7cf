/*
 * Container stdout/stderr to a CRI log file (what kubelet and crictl read):
 *   <RFC3339Nano> <stdout|stderr> <P|F> <line>\n
 * F ends a line; P is a piece of a longer line (split at SHIM_LOG_MAX_LINE bytes)
 * whose rest follows in the next record of the same stream.
 */
#ifndef PV_SHIM_CTR_LOG_H
#define PV_SHIM_CTR_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define SHIM_LOG_MAX_LINE (16 * 1024)

/* One log file, shared by a container's two streams. */
struct shim_log {
	char *path; /* NULL: output discarded */
	char *dir;  /* opened following symlinks ... */
	char *rel;  /* ... rel beneath it without (see pv_open_file_beneath) */
	int fd;
};

/* One stream's pending partial line. */
struct shim_log_stream {
	struct shim_log *log;
	const char *name; /* "stdout" or "stderr" */
	char *partial;
	size_t plen;
};

/*
 * Open (create, append) the log; path NULL or "" discards. With dir (the pod's log
 * directory) path must lie beneath it (relative to it, or absolute inside it) and nothing
 * below dir is followed: no "..", no symlink, no missing directory (INVALID_ARGUMENT).
 * Without dir, path's parent is trusted and only its last component must not be a symlink.
 */
int shim_log_open(struct shim_log *l, const char *dir, const char *path, pv_err_t **err);
/* Close and open the path again, the same way (after logrotate moved the file away). */
int shim_log_reopen(struct shim_log *l, pv_err_t **err);
void shim_log_close(struct shim_log *l);

void shim_log_stream_init(struct shim_log_stream *s, struct shim_log *l, const char *name);
void shim_log_stream_free(struct shim_log_stream *s);
/* Feed output bytes; complete lines are written at once, a tail is kept until its
 * newline comes or it reaches SHIM_LOG_MAX_LINE. */
int shim_log_stream_write(struct shim_log_stream *s, const void *buf, size_t len, int64_t now_ns,
			  pv_err_t **err);
/* End of stream: a pending tail is written as a final (F) line. */
int shim_log_stream_flush(struct shim_log_stream *s, int64_t now_ns, pv_err_t **err);

#endif
