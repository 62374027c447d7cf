/* Small helpers shared by every podvisor program. Allocation failure aborts. */
#ifndef PV_UTIL_H
#define PV_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

void *pv_xmalloc(size_t n);
void *pv_xcalloc(size_t n, size_t size);
void *pv_xrealloc(void *p, size_t n);
char *pv_xstrdup(const char *s);
char *pv_xstrndup(const char *s, size_t n);
char *pv_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *pv_xvasprintf(const char *fmt, va_list ap);

/* read()/write() the whole buffer, retrying EINTR and short transfers. */
ssize_t pv_read_full(int fd, void *buf, size_t len);  /* returns bytes read (< len at EOF) or -errno */
int pv_write_full(int fd, const void *buf, size_t len); /* 0 or -errno */

/* Read a whole file (NUL-terminated, *len excludes the NUL); at most max bytes. */
int pv_read_file(const char *path, size_t max, char **out, size_t *len, pv_err_t **err);
/* Write via tmp file + fsync + rename, so readers see old or new, never half. */
int pv_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, pv_err_t **err);
/* mkdir -p; existing directories are fine. */
int pv_mkdir_p(const char *path, mode_t mode, pv_err_t **err);
/* rm -rf below (and including) path; missing path is fine. */
int pv_rm_rf(const char *path, pv_err_t **err);

int64_t pv_now_realtime_ns(void);
int64_t pv_now_monotonic_ns(void);
/* RFC 3339 with nanoseconds, UTC ("2026-11-27T12:00:00.123456789Z"); buf >= 40. */
void pv_format_rfc3339nano(int64_t ns, char *buf, size_t len);

/* Random lowercase hex id of 2*nbytes chars (64 chars for CRI ids). */
char *pv_random_hex(size_t nbytes);

int pv_str_has_prefix(const char *s, const char *prefix);

/* The first <dir>/<name> that is executable, for dir in a ':'-separated list; heap, or NULL. */
char *pv_find_executable(const char *dirs, const char *name);

#endif
