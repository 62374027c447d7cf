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

const char *pv_echo(char *buf, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t len = s ? strlen(s) : 0, o = 0, i;
	for (i = 0; i < len && i < PV_ECHO_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
	if (i < len)
		snprintf(buf + o, PV_ECHO_BUF - o, "...(%zu bytes)", len);
	return buf;
}

/* Bytes a status message byte takes in the grpc-message header. */
static size_t wire_cost(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e && c != '%' ? 1 : 3;
}

#define CUT_NOTE " [message cut: %zu more bytes]"

char *pv_err_msg_cut(const char *msg, size_t wire_max)
{
	size_t len = strlen(msg), wire = 0, i;
	for (i = 0; i < len; i++)
		wire += wire_cost((unsigned char)msg[i]);
	if (wire <= wire_max)
		return pv_xstrdup(msg);
	size_t room = wire_max > sizeof(CUT_NOTE) + 20 ? wire_max - sizeof(CUT_NOTE) - 20 : 0;
	wire = 0;
	for (i = 0; i < len && wire + wire_cost((unsigned char)msg[i]) <= room; i++)
		wire += wire_cost((unsigned char)msg[i]);
	while (i > 0 && ((unsigned char)msg[i] & 0xc0) == 0x80) /* not inside a UTF-8 character */
		i--;
	char *head = pv_xstrndup(msg, i);
	char *out = pv_xasprintf("%s" CUT_NOTE, head, len - i);
	free(head);
	return out;
}
