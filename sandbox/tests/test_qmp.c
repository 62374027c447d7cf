/* QMP client against a fake QEMU monitor (a thread speaking QMP JSON on a socketpair). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "qmp.h"
#include "vmm_impl.h"
#include "util.h"
#include "cleanup.h"

/* One scripted exchange: expect `cmd`, then send `replies` ("@ID@" -> the command's id). */
struct step {
	const char *cmd;
	const char *replies[4];
	const char *want_args; /* substring the compact JSON arguments must contain, or NULL */
};

struct fake {
	int fd;
	const struct step *steps;
	size_t nsteps;
	char failure[512]; /* first mismatch seen by the thread */
	json_t *seen;      /* array of received commands */
};

static int read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;
	while (n + 1 < len) {
		ssize_t r = read(fd, buf + n, 1);
		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return (int)n;
}

static void send_reply(int fd, const char *tmpl, const char *id)
{
	char out[2048];
	const char *at = strstr(tmpl, "@ID@");
	if (at)
		snprintf(out, sizeof(out), "%.*s%s%s\r\n", (int)(at - tmpl), tmpl, id, at + 4);
	else
		snprintf(out, sizeof(out), "%s\r\n", tmpl);
	if (write(fd, out, strlen(out)) < 0)
		return;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	send_reply(f->fd, "{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}", NULL);
	for (size_t i = 0; i < f->nsteps; i++) {
		char line[4096];
		if (read_line(f->fd, line, sizeof(line)) < 0) {
			snprintf(f->failure, sizeof(f->failure), "EOF before step %zu (%s)", i, f->steps[i].cmd);
			break;
		}
		json_t *j = json_loads(line, 0, NULL);
		const char *cmd = json_string_value(json_object_get(j, "execute"));
		const char *id = json_string_value(json_object_get(j, "id"));
		char *args = json_dumps(json_object_get(j, "arguments") ? json_object_get(j, "arguments") : json_null(),
					JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		json_array_append_new(f->seen, json_string(line));
		if (!cmd || !id || strcmp(cmd, f->steps[i].cmd))
			snprintf(f->failure, sizeof(f->failure), "step %zu: want %s, got %.200s", i, f->steps[i].cmd, line);
		else if (f->steps[i].want_args && !strstr(args, f->steps[i].want_args))
			snprintf(f->failure, sizeof(f->failure), "step %zu: args %s lack %s", i, args,
				 f->steps[i].want_args);
		for (int k = 0; k < 4 && f->steps[i].replies[k]; k++)
			send_reply(f->fd, f->steps[i].replies[k], id ? id : "");
		free(args);
		json_decref(j);
	}
	return NULL;
}

struct harness {
	struct fake fake;
	pthread_t thread;
	struct qmp *q;
};

static void harness_start(struct harness *h, const struct step *steps, size_t n)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memset(h, 0, sizeof(*h));
	h->fake.fd = sv[1];
	h->fake.steps = steps;
	h->fake.nsteps = n;
	h->fake.seen = json_array();
	assert_int_equal(pthread_create(&h->thread, NULL, fake_main, &h->fake), 0);
	pv_err_t *err = NULL;
	int r = sandbox_qmp_open_fd(sv[0], 5000, &h->q, &err);
	if (r < 0)
		fail_msg("open: %s", err->msg);
}

static void harness_finish(struct harness *h)
{
	sandbox_qmp_close(h->q);
	pthread_join(h->thread, NULL);
	close(h->fake.fd);
	json_decref(h->fake.seen);
	if (h->fake.failure[0])
		fail_msg("fake QMP: %s", h->fake.failure);
}

#define CAPS { "qmp_capabilities", { "{\"return\": {}, \"id\": \"@ID@\"}" }, NULL }

static void test_handshake_and_command(void **state)
{
	static const struct step steps[] = {
		CAPS,
		{ "query-status",
		  { "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"RESUME\"}",
		    "{\"return\": {\"stale\": true}, \"id\": \"other\"}",
		    "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": \"@ID@\"}" },
		  NULL },
	};
	struct harness h;
	harness_start(&h, steps, PV_ARRAY_SIZE(steps));
	json_t *ret = NULL;
	pv_err_t *err = NULL;
	assert_int_equal(sandbox_qmp_execute(h.q, "query-status", NULL, 5000, &ret, &err), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
	json_decref(ret);
	/* The event that arrived before the reply was queued, not lost. */
	json_t *ev = sandbox_qmp_pop_event(h.q);
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(ev, "event")), "RESUME");
	json_decref(ev);
	assert_null(sandbox_qmp_pop_event(h.q));
	harness_finish(&h);
}

static void test_error_reply(void **state)
{
	static const struct step steps[] = {
		CAPS,
		{ "device_del",
		  { "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'x' not found\"}, \"id\": \"@ID@\"}" },
		  "{\"id\":\"x\"}" },
		{ "human-monitor-command",
		  { "{\"error\": {\"class\": \"GenericError\", \"desc\": \"boom\"}, \"id\": \"@ID@\"}" },
		  NULL },
	};
	struct harness h;
	harness_start(&h, steps, PV_ARRAY_SIZE(steps));
	pv_err_t *err = NULL;
	assert_true(sandbox_qmp_execute(h.q, "device_del", json_pack("{s:s}", "id", "x"), 5000, NULL, &err) < 0);
	assert_int_equal(err->status, PV_NOT_FOUND);
	assert_non_null(strstr(err->msg, "Device 'x' not found"));
	pv_err_free(err);
	err = NULL;
	assert_true(sandbox_qmp_execute(h.q, "human-monitor-command", NULL, 5000, NULL, &err) < 0);
	assert_int_equal(err->status, PV_INTERNAL);
	assert_non_null(strstr(err->msg, "boom"));
	pv_err_free(err);
	harness_finish(&h);
}

static void test_timeout_and_eof(void **state)
{
	static const struct step steps[] = {
		CAPS,
		{ "query-status", { NULL }, NULL }, /* never answered */
	};
	struct harness h;
	harness_start(&h, steps, PV_ARRAY_SIZE(steps));
	pv_err_t *err = NULL;
	int64_t t0 = pv_now_monotonic_ns();
	assert_true(sandbox_qmp_execute(h.q, "query-status", NULL, 200, NULL, &err) < 0);
	assert_true(pv_now_monotonic_ns() - t0 >= 150 * 1000000LL);
	assert_int_equal(err->status, PV_DEADLINE_EXCEEDED);
	pv_err_free(err);
	err = NULL;
	/* The fake has finished its script: closing its end is QEMU dying. */
	pthread_join(h.thread, NULL);
	shutdown(h.fake.fd, SHUT_RDWR);
	assert_true(sandbox_qmp_poll(h.q, &err) < 0);
	assert_int_equal(err->status, PV_UNAVAILABLE);
	pv_err_free(err);
	sandbox_qmp_close(h.q);
	close(h.fake.fd);
	json_decref(h.fake.seen);
	assert_string_equal(h.fake.failure, "");
}

static void test_disk_hotplug(void **state)
{
	static const struct step steps[] = {
		CAPS,
		{ "blockdev-add",
		  { "{\"return\": {}, \"id\": \"@ID@\"}" },
		  "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/pods/p/c1.qcow2\"},"
		  "\"node-name\":\"pvn-c1\",\"read-only\":false}" },
		{ "device_add",
		  { "{\"return\": {}, \"id\": \"@ID@\"}" },
		  "{\"bus\":\"scsi0.0\",\"channel\":0,\"drive\":\"pvn-c1\",\"driver\":\"scsi-hd\",\"id\":\"pvd-c1\","
		  "\"lun\":0,\"scsi-id\":3,\"serial\":\"c1\"}" },
		/* device_del is acknowledged at once; the guest releases the disk later. */
		{ "device_del",
		  { "{\"return\": {}, \"id\": \"@ID@\"}",
		    "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"pvd-other\"}, \"timestamp\": {}}",
		    "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"pvd-c1\", \"path\": \"/x\"}, \"timestamp\": {}}" },
		  "{\"id\":\"pvd-c1\"}" },
		{ "blockdev-del", { "{\"return\": {}, \"id\": \"@ID@\"}" }, "{\"node-name\":\"pvn-c1\"}" },
		/* A failed attach undoes the blockdev-add. */
		{ "blockdev-add", { "{\"return\": {}, \"id\": \"@ID@\"}" }, NULL },
		{ "device_add",
		  { "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Duplicate ID\"}, \"id\": \"@ID@\"}" },
		  NULL },
		{ "blockdev-del", { "{\"return\": {}, \"id\": \"@ID@\"}" }, "{\"node-name\":\"pvn-c2\"}" },
	};
	struct harness h;
	harness_start(&h, steps, PV_ARRAY_SIZE(steps));
	struct vmm_config cfg = { .name = "p", .accel = VMM_ACCEL_TCG, .agent_listen_fd = -1, .qmp_listen_fd = -1,
				   .tap_fd = -1 };
	struct vmm *vm = NULL;
	assert_int_equal(sandbox_vmm_new("qemu", &cfg, &vm, NULL), 0);
	vm->priv = h.q;
	struct vmm_disk d = { .id = "c1", .path = "/pods/p/c1.qcow2", .scsi_id = 3, .serial = "c1" };
	pv_err_t *err = NULL;
	if (sandbox_vmm_disk_add(vm, &d, 5000, &err) < 0)
		fail_msg("disk_add: %s", err->msg);
	if (sandbox_vmm_disk_remove(vm, "c1", 5000, &err) < 0)
		fail_msg("disk_remove: %s", err->msg);
	/* The other device's event stays queued for whoever wants it. */
	json_t *ev = sandbox_qmp_pop_event(h.q);
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"), "device")), "pvd-other");
	json_decref(ev);
	struct vmm_disk d2 = { .id = "c2", .path = "/pods/p/c2.qcow2", .scsi_id = 4 };
	assert_true(sandbox_vmm_disk_add(vm, &d2, 5000, &err) < 0);
	assert_non_null(strstr(err->msg, "Duplicate ID"));
	pv_err_free(err);
	vm->priv = NULL;
	sandbox_vmm_free(vm);
	harness_finish(&h);
}

static void test_parse_junk(void **state)
{
	static const char *const bad[] = {
		"", "{", "[]", "42", "{\"foo\": 1}", "{\"error\": {\"class\": 1}}", "{\"event\": 3}",
		"{\"return\": {}, \"return\": {}}", "\"QMP\"",
	};
	for (size_t i = 0; i < PV_ARRAY_SIZE(bad); i++) {
		struct qmp_msg m = { 0 };
		pv_err_t *err = NULL;
		assert_true(sandbox_qmp_parse(bad[i], strlen(bad[i]), &m, &err) < 0);
		assert_non_null(err);
		assert_null(m.root);
		pv_err_free(err);
	}
	struct qmp_msg m = { 0 };
	const char *ok = "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-panic\"}}";
	assert_int_equal(sandbox_qmp_parse(ok, strlen(ok), &m, NULL), 0);
	assert_int_equal(m.kind, QMP_MSG_EVENT);
	assert_string_equal(m.event, "SHUTDOWN");
	assert_string_equal(json_string_value(json_object_get(m.value, "reason")), "guest-panic");
	sandbox_qmp_msg_clear(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_and_command),
		cmocka_unit_test(test_error_reply),
		cmocka_unit_test(test_timeout_and_eof),
		cmocka_unit_test(test_disk_hotplug),
		cmocka_unit_test(test_parse_junk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
