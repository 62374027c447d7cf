/*
 * A small QMP client (QEMU Machine Protocol, newline-separated JSON).
 *
 * Synchronous commands with ids and a deadline; events that arrive while
 * waiting (or when the caller drains the socket from its event loop with
 * sandbox_qmp_poll) are queued for sandbox_qmp_pop_event.
 */
#ifndef PV_SANDBOX_QMP_H
#define PV_SANDBOX_QMP_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"

/* Longest QMP message accepted (QEMU's replies are far smaller). */
#define SANDBOX_QMP_MAX_MSG (1u << 20)

enum qmp_msg_kind {
	QMP_MSG_GREETING,
	QMP_MSG_RETURN,
	QMP_MSG_ERROR,
	QMP_MSG_EVENT,
};

/* One parsed message; pointers borrow from root. */
struct qmp_msg {
	enum qmp_msg_kind kind;
	json_t *root;          /* owned */
	const char *id;        /* "id" if it is a string, else NULL */
	json_t *value;         /* "return" value, or event "data" (may be NULL) */
	const char *event;     /* event name */
	const char *err_class; /* error class */
	const char *err_desc;  /* error description */
};

/* Parse one message (without the trailing newline). Never crashes on junk. */
int sandbox_qmp_parse(const char *buf, size_t len, struct qmp_msg *m, pv_err_t **err);
void sandbox_qmp_msg_clear(struct qmp_msg *m);

struct qmp;

/* Take `fd` (a connected stream socket; owned even on failure), read the
 * greeting and negotiate capabilities. */
int sandbox_qmp_open_fd(int fd, int timeout_ms, struct qmp **out, pv_err_t **err);
/* Connect to a unix socket path, retrying until timeout_ms, then as above. */
int sandbox_qmp_connect(const char *path, int timeout_ms, struct qmp **out, pv_err_t **err);
void sandbox_qmp_close(struct qmp *q);
int sandbox_qmp_fd(const struct qmp *q);

/* Run `cmd` with `args` (stolen; may be NULL). *ret (if given) gets a new
 * reference to the "return" value. QMP errors become pv errors. */
int sandbox_qmp_execute(struct qmp *q, const char *cmd, json_t *args, int timeout_ms,
			json_t **ret, pv_err_t **err);

/* Read whatever is available without blocking and queue events.
 * Returns 0, or -EPIPE (with *err) once QEMU closed the socket. */
int sandbox_qmp_poll(struct qmp *q, pv_err_t **err);
/* Oldest queued event (new reference: {"event":..., "data":...}) or NULL. */
json_t *sandbox_qmp_pop_event(struct qmp *q);
/* Wait for event `name` whose data.<key> equals `value` (key NULL: any). */
int sandbox_qmp_wait_event(struct qmp *q, const char *name, const char *key, const char *value,
			   int timeout_ms, json_t **data, pv_err_t **err);

#endif
