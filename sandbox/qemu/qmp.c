/* QMP client: greeting, qmp_capabilities, commands with ids, queued events. */
#include "qmp.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct qmp {
	int fd;
	char *buf;
	size_t len, cap;
	json_t *events; /* array of queued event objects */
	unsigned long next_id;
};

void sandbox_qmp_msg_clear(struct qmp_msg *m)
{
	if (m->root)
		json_decref(m->root);
	memset(m, 0, sizeof(*m));
}

int sandbox_qmp_parse(const char *buf, size_t len, struct qmp_msg *m, pv_err_t **err)
{
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return pv_err_set(err, PV_INTERNAL, EPROTO, "qmp: bad JSON: %s", jerr.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return pv_err_set(err, PV_INTERNAL, EPROTO, "qmp: message is not an object");
	}
	struct qmp_msg out = { .root = root };
	json_t *id = json_object_get(root, "id");
	out.id = json_is_string(id) ? json_string_value(id) : NULL;
	json_t *v;
	if (json_object_get(root, "QMP")) {
		out.kind = QMP_MSG_GREETING;
	} else if ((v = json_object_get(root, "return"))) {
		out.kind = QMP_MSG_RETURN;
		out.value = v;
	} else if ((v = json_object_get(root, "error"))) {
		json_t *cls = json_object_get(v, "class"), *desc = json_object_get(v, "desc");
		if (!json_is_string(cls) || !json_is_string(desc)) {
			json_decref(root);
			return pv_err_set(err, PV_INTERNAL, EPROTO, "qmp: malformed error reply");
		}
		out.kind = QMP_MSG_ERROR;
		out.err_class = json_string_value(cls);
		out.err_desc = json_string_value(desc);
	} else if ((v = json_object_get(root, "event"))) {
		if (!json_is_string(v)) {
			json_decref(root);
			return pv_err_set(err, PV_INTERNAL, EPROTO, "qmp: event name is not a string");
		}
		out.kind = QMP_MSG_EVENT;
		out.event = json_string_value(v);
		json_t *data = json_object_get(root, "data");
		out.value = json_is_object(data) ? data : NULL;
	} else {
		json_decref(root);
		return pv_err_set(err, PV_INTERNAL, EPROTO, "qmp: unknown message kind");
	}
	*m = out;
	return 0;
}

static int64_t deadline_ms_left(int64_t deadline_ns)
{
	int64_t left = (deadline_ns - pv_now_monotonic_ns()) / 1000000;
	return left < 0 ? 0 : left;
}

/* Take one complete line out of the buffer, or return 0 if there is none. */
static int take_line(struct qmp *q, char **line, size_t *len)
{
	char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
	if (!nl)
		return 0;
	size_t n = (size_t)(nl - q->buf);
	/* Not strndup: a NUL inside the line must not shorten the copy below len. */
	*line = pv_xmalloc(n + 1);
	memcpy(*line, q->buf, n);
	(*line)[n] = '\0';
	*len = n;
	memmove(q->buf, nl + 1, q->len - n - 1);
	q->len -= n + 1;
	return 1;
}

/* Read once (fd is non-blocking). 1: got bytes, 0: would block, <0: EOF/error. */
static int fill(struct qmp *q, pv_err_t **err)
{
	if (q->cap - q->len < 4096) {
		if (q->cap >= SANDBOX_QMP_MAX_MSG)
			return pv_err_set(err, PV_INTERNAL, EMSGSIZE, "qmp: message longer than %u bytes",
					  SANDBOX_QMP_MAX_MSG);
		q->cap = q->cap ? q->cap * 2 : 8192;
		q->buf = pv_xrealloc(q->buf, q->cap);
	}
	ssize_t n;
	do
		n = read(q->fd, q->buf + q->len, q->cap - q->len);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0)
		return pv_err_sys(err, PV_UNAVAILABLE, "qmp: read");
	if (n == 0)
		return pv_err_set(err, PV_UNAVAILABLE, EPIPE, "qmp: QEMU closed the monitor socket");
	q->len += (size_t)n;
	return 1;
}

/* Next message before the deadline (deadline 0: don't block). 1 got, 0 none yet. */
static int next_msg(struct qmp *q, int64_t deadline_ns, struct qmp_msg *m, pv_err_t **err)
{
	for (;;) {
		cleanup_free char *line = NULL;
		size_t len;
		while (take_line(q, &line, &len)) {
			/* QEMU ends lines with \r\n; skip blank lines. */
			while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
				len--;
			if (len == 0) {
				free(steal_pointer(&line));
				continue;
			}
			return sandbox_qmp_parse(line, len, m, err) < 0 ? -EPROTO : 1;
		}
		int r = fill(q, err);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		if (!deadline_ns)
			return 0;
		int64_t left = deadline_ms_left(deadline_ns);
		if (left == 0)
			return 0;
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		int pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno != EINTR)
			return pv_err_sys(err, PV_INTERNAL, "qmp: poll");
	}
}

static void queue_event(struct qmp *q, struct qmp_msg *m)
{
	json_t *ev = json_pack("{s:s}", "event", m->event);
	if (m->value)
		json_object_set(ev, "data", m->value);
	json_array_append_new(q->events, ev);
}

static int send_json(struct qmp *q, json_t *msg, int64_t deadline_ns, pv_err_t **err)
{
	cleanup_free char *s = json_dumps(msg, JSON_COMPACT);
	if (!s)
		return pv_err_set(err, PV_INTERNAL, ENOMEM, "qmp: cannot encode command");
	cleanup_free char *line = pv_xasprintf("%s\n", s);
	size_t len = strlen(line), done = 0;
	while (done < len) {
		ssize_t n = send(q->fd, line + done, len - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = q->fd, .events = POLLOUT };
			int64_t left = deadline_ms_left(deadline_ns);
			if (left == 0)
				return pv_err_set(err, PV_DEADLINE_EXCEEDED, ETIMEDOUT, "qmp: send timed out");
			poll(&p, 1, (int)left);
			continue;
		}
		if (n < 0)
			return pv_err_sys(err, PV_UNAVAILABLE, "qmp: send");
		done += (size_t)n;
	}
	return 0;
}

static int status_for_class(const char *cls)
{
	if (!strcmp(cls, "DeviceNotFound"))
		return PV_NOT_FOUND;
	if (!strcmp(cls, "CommandNotFound"))
		return PV_UNIMPLEMENTED;
	return PV_INTERNAL;
}

int sandbox_qmp_execute(struct qmp *q, const char *cmd, json_t *args, int timeout_ms,
			json_t **ret, pv_err_t **err)
{
	char id[32];
	snprintf(id, sizeof(id), "pv-%lu", ++q->next_id);
	json_t *msg = json_pack("{s:s,s:s}", "execute", cmd, "id", id);
	if (args)
		json_object_set_new(msg, "arguments", args);
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	int r = send_json(q, msg, deadline, err);
	json_decref(msg);
	if (r < 0) {
		pv_err_prefix(err, "qmp %s", cmd);
		return r;
	}
	for (;;) {
		struct qmp_msg m = { 0 };
		r = next_msg(q, deadline, &m, err);
		if (r < 0) {
			pv_err_prefix(err, "qmp %s", cmd);
			return r;
		}
		if (r == 0)
			return pv_err_set(err, PV_DEADLINE_EXCEEDED, ETIMEDOUT,
					  "qmp %s: no reply within %d ms", cmd, timeout_ms);
		if (m.kind == QMP_MSG_EVENT) {
			queue_event(q, &m);
		} else if (m.id && !strcmp(m.id, id)) {
			if (m.kind == QMP_MSG_ERROR) {
				r = pv_err_set(err, status_for_class(m.err_class), EIO, "qmp %s: %s (%s)", cmd,
					       m.err_desc, m.err_class);
				sandbox_qmp_msg_clear(&m);
				return r;
			}
			if (m.kind == QMP_MSG_RETURN) {
				if (ret)
					*ret = json_incref(m.value);
				sandbox_qmp_msg_clear(&m);
				return 0;
			}
		}
		/* Replies to commands that timed out earlier, greetings: dropped. */
		sandbox_qmp_msg_clear(&m);
	}
}

int sandbox_qmp_poll(struct qmp *q, pv_err_t **err)
{
	for (;;) {
		struct qmp_msg m = { 0 };
		int r = next_msg(q, 0, &m, err);
		if (r <= 0)
			return r;
		if (m.kind == QMP_MSG_EVENT)
			queue_event(q, &m);
		sandbox_qmp_msg_clear(&m);
	}
}

json_t *sandbox_qmp_pop_event(struct qmp *q)
{
	if (json_array_size(q->events) == 0)
		return NULL;
	json_t *ev = json_incref(json_array_get(q->events, 0));
	json_array_remove(q->events, 0);
	return ev;
}

static int event_matches(json_t *ev, const char *name, const char *key, const char *value)
{
	if (strcmp(json_string_value(json_object_get(ev, "event")), name))
		return 0;
	if (!key)
		return 1;
	const char *v = json_string_value(json_object_get(json_object_get(ev, "data"), key));
	return v && value && !strcmp(v, value);
}

int sandbox_qmp_wait_event(struct qmp *q, const char *name, const char *key, const char *value,
			   int timeout_ms, json_t **data, pv_err_t **err)
{
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		size_t i;
		json_t *ev;
		json_array_foreach(q->events, i, ev) {
			if (event_matches(ev, name, key, value)) {
				if (data)
					*data = json_incref(json_object_get(ev, "data"));
				json_array_remove(q->events, i);
				return 0;
			}
		}
		struct qmp_msg m = { 0 };
		int r = next_msg(q, deadline, &m, err);
		if (r < 0)
			return r;
		if (r == 0)
			return pv_err_set(err, PV_DEADLINE_EXCEEDED, ETIMEDOUT,
					  "qmp: no %s event within %d ms", name, timeout_ms);
		if (m.kind == QMP_MSG_EVENT)
			queue_event(q, &m);
		sandbox_qmp_msg_clear(&m);
	}
}

int sandbox_qmp_open_fd(int fd, int timeout_ms, struct qmp **out, pv_err_t **err)
{
	struct qmp *q = pv_xcalloc(1, sizeof(*q));
	q->fd = fd;
	q->events = json_array();
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int r = pv_err_sys(err, PV_INTERNAL, "qmp: fcntl");
		sandbox_qmp_close(q);
		return r;
	}
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	struct qmp_msg m = { 0 };
	int r = next_msg(q, deadline, &m, err);
	if (r == 0)
		r = pv_err_set(err, PV_DEADLINE_EXCEEDED, ETIMEDOUT, "qmp: no greeting within %d ms",
			       timeout_ms);
	else if (r > 0 && m.kind != QMP_MSG_GREETING)
		r = pv_err_set(err, PV_INTERNAL, EPROTO, "qmp: expected a greeting");
	sandbox_qmp_msg_clear(&m);
	if (r >= 0)
		r = sandbox_qmp_execute(q, "qmp_capabilities", NULL, (int)deadline_ms_left(deadline) + 1,
					NULL, err);
	if (r < 0) {
		sandbox_qmp_close(q);
		return r;
	}
	*out = q;
	return 0;
}

int sandbox_qmp_connect(const char *path, int timeout_ms, struct qmp **out, pv_err_t **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENAMETOOLONG, "qmp: socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return pv_err_sys(err, PV_INTERNAL, "qmp: socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return sandbox_qmp_open_fd(fd, (int)deadline_ms_left(deadline) + 1, out, err);
		int e = errno;
		close(fd);
		if ((e != ENOENT && e != ECONNREFUSED) || deadline_ms_left(deadline) == 0) {
			errno = e;
			return pv_err_sys(err, PV_UNAVAILABLE, "qmp: connect %s", path);
		}
		struct timespec ts = { 0, 20 * 1000000 };
		nanosleep(&ts, NULL);
	}
}

void sandbox_qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	free(q->buf);
	json_decref(q->events);
	free(q);
}

int sandbox_qmp_fd(const struct qmp *q)
{
	return q->fd;
}
