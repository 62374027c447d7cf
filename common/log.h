/*
 * Leveled logging: one line per event to stderr,
 *   time=2026-11-27T12:00:00.123Z level=info comp=podvisord msg="pulled image" image=busybox:1 bytes=1234
 * `fields` is a printf format for extra key=value pairs (may be NULL): write `key=%s`,
 * never `key="%s"`: every %s value is quoted and escaped by the logger when it holds a
 * space, quote, backslash, '=' or control character (or is empty), so a value can never
 * split a record or forge a field. msg is always quoted.
 * Only programs log (podvisord, shim, agent); libraries return pv_err_t.
 */
#ifndef PV_LOG_H
#define PV_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum pv_log_level { PV_LOG_DEBUG, PV_LOG_INFO, PV_LOG_WARN, PV_LOG_ERROR };

void pv_log_init(const char *component, enum pv_log_level level);
int pv_log_parse_level(const char *s, enum pv_log_level *out);
void pv_log_set_level(enum pv_log_level level);
int pv_log_enabled(enum pv_log_level level);
void pv_log(enum pv_log_level level, const char *msg, const char *fields, ...)
	__attribute__((format(printf, 3, 4)));

/* Building blocks, exposed for tests: append a value (quoted if it needs it) / the
 * formatted fields to out[*pos..cap), advancing *pos; output past cap is dropped. */
void pv_log_put_value(char *out, size_t cap, size_t *pos, const char *s);
void pv_log_format_fields(char *out, size_t cap, size_t *pos, const char *fields, va_list ap);

#define pv_debug(msg, ...) pv_log(PV_LOG_DEBUG, msg, __VA_ARGS__)
#define pv_info(msg, ...) pv_log(PV_LOG_INFO, msg, __VA_ARGS__)
#define pv_warn(msg, ...) pv_log(PV_LOG_WARN, msg, __VA_ARGS__)
#define pv_error(msg, ...) pv_log(PV_LOG_ERROR, msg, __VA_ARGS__)

#endif
