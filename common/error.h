/*
 * One error convention for all of podvisor (see docs/errors.md).
 *
 * A fallible function returns a negative value (-errno where one applies,
 * otherwise -1) and, when it is given a non-NULL `pv_err_t **err`, fills it
 * with an error object: a gRPC status code plus a message. Callers add
 * context on the way up with pv_err_prefix(); the edge (a gRPC handler, a
 * CLI, a daemon loop) turns it into a status, a log line or an exit code.
 * Output parameters are left untouched on failure.
 */
#ifndef PV_ERROR_H
#define PV_ERROR_H

#include <stdarg.h>
#include <stddef.h>

/* gRPC status codes (grpc/status.h), usable without linking gRPC. */
enum pv_status {
	PV_OK = 0,
	PV_CANCELLED = 1,
	PV_UNKNOWN = 2,
	PV_INVALID_ARGUMENT = 3,
	PV_DEADLINE_EXCEEDED = 4,
	PV_NOT_FOUND = 5,
	PV_ALREADY_EXISTS = 6,
	PV_PERMISSION_DENIED = 7,
	PV_RESOURCE_EXHAUSTED = 8,
	PV_FAILED_PRECONDITION = 9,
	PV_ABORTED = 10,
	PV_OUT_OF_RANGE = 11,
	PV_UNIMPLEMENTED = 12,
	PV_INTERNAL = 13,
	PV_UNAVAILABLE = 14,
	PV_DATA_LOSS = 15,
	PV_UNAUTHENTICATED = 16,
};

typedef struct pv_err {
	int status;  /* enum pv_status */
	int errnum;  /* errno behind it, 0 if none */
	char *msg;   /* heap string, never NULL */
} pv_err_t;

/* Fill *err (if err != NULL and *err is NULL) and return -errnum, or -1. */
int pv_err_set(pv_err_t **err, int status, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Same, with errnum = errno and ": strerror(errno)" appended. */
int pv_err_sys(pv_err_t **err, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prepend "context: " to an existing error's message (no-op if none). */
void pv_err_prefix(pv_err_t **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Move src into *dst (if dst and !*dst), else free src. */
void pv_err_move(pv_err_t **dst, pv_err_t *src);
void pv_err_free(pv_err_t *err);
const char *pv_status_name(int status);

/*
 * Untrusted input quoted in a message: its first PV_ECHO_MAX bytes, bytes outside
 * printable ASCII (and quotes, backslashes) as \xNN, and "...(N bytes)" when it was cut.
 * Use PV_ECHO(s) in the arguments of pv_err_set(): its buffer lives for the enclosing
 * block. NULL prints as "".
 */
#define PV_ECHO_MAX 128
#define PV_ECHO_BUF (PV_ECHO_MAX * 4 + 32)
const char *pv_echo(char *buf, const char *s);
#define PV_ECHO(s) pv_echo((char[PV_ECHO_BUF]){ 0 }, (s))

/*
 * A status message at most PV_ERR_WIRE_MAX bytes long once gRPC has percent-encoded it
 * (bytes outside 0x20..0x7e and '%' take three): cut on a UTF-8 character boundary,
 * with a note of how much went. Heap string. Clients limit the size of the metadata a
 * status travels in (8 KiB in gRPC's C core), so a longer one would fail the call.
 */
#define PV_ERR_WIRE_MAX 4096
char *pv_err_msg_cut(const char *msg, size_t wire_max);

static inline void pv_err_freep(pv_err_t **err)
{
	pv_err_free(*err);
}
#define cleanup_err __attribute__((cleanup(pv_err_freep)))

#endif
