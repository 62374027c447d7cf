#include "error.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int err_fill(pv_err_t **err, int status, int errnum, char *msg)
{
	if (err && !*err) {
		pv_err_t *e = pv_xmalloc(sizeof(*e));
		e->status = status;
		e->errnum = errnum;
		e->msg = msg;
		*err = e;
	} else {
		free(msg);
	}
	return errnum > 0 ? -errnum : -1;
}

int pv_err_set(pv_err_t **err, int status, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = pv_xvasprintf(fmt, ap);
	va_end(ap);
	return err_fill(err, status, errnum, msg);
}

int pv_err_sys(pv_err_t **err, int status, const char *fmt, ...)
{
	int errnum = errno;
	va_list ap;
	va_start(ap, fmt);
	char *base = pv_xvasprintf(fmt, ap);
	va_end(ap);
	char *msg = pv_xasprintf("%s: %s", base, strerror(errnum));
	free(base);
	return err_fill(err, status, errnum, msg);
}

void pv_err_prefix(pv_err_t **err, const char *fmt, ...)
{
	if (!err || !*err)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *ctx = pv_xvasprintf(fmt, ap);
	va_end(ap);
	char *msg = pv_xasprintf("%s: %s", ctx, (*err)->msg);
	free(ctx);
	free((*err)->msg);
	(*err)->msg = msg;
}

void pv_err_move(pv_err_t **dst, pv_err_t *src)
{
	if (dst && !*dst)
		*dst = src;
	else
		pv_err_free(src);
}

void pv_err_free(pv_err_t *err)
{
	if (!err)
		return;
	free(err->msg);
	free(err);
}

const char *pv_status_name(int status)
{
	static const char *const names[] = {
		"OK",		     "CANCELLED",	   "UNKNOWN",
		"INVALID_ARGUMENT",  "DEADLINE_EXCEEDED",  "NOT_FOUND",
		"ALREADY_EXISTS",    "PERMISSION_DENIED",  "RESOURCE_EXHAUSTED",
		"FAILED_PRECONDITION", "ABORTED",	   "OUT_OF_RANGE",
		"UNIMPLEMENTED",     "INTERNAL",	   "UNAVAILABLE",
		"DATA_LOSS",	     "UNAUTHENTICATED",
	};
	if (status < 0 || status >= (int)(sizeof(names) / sizeof(names[0])))
		return "UNKNOWN";
	return names[status];
}
