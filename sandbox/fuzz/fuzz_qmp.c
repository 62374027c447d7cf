/*
 * libFuzzer target: bytes from a hostile or broken QEMU monitor. They are fed
 * through a socketpair into the real client (greeting, capabilities, line
 * splitting, message parsing, event queue); it must fail cleanly, never crash.
 */
#include "qmp.h"
#include "error.h"

#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmp_msg m = { 0 };
	pv_err_t *err = NULL;
	if (sandbox_qmp_parse((const char *)data, size, &m, &err) == 0)
		sandbox_qmp_msg_clear(&m);
	pv_err_free(err);
	err = NULL;

	if (size > 65536)
		return 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	int sz = 1 << 20;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	/* Never block the fuzzer: what does not fit in the socket buffer is dropped. */
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	if (size && write(sv[1], data, size) <= 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	struct qmp *q = NULL;
	if (sandbox_qmp_open_fd(sv[0], 0, &q, &err) == 0) {
		sandbox_qmp_poll(q, NULL);
		json_t *ev;
		while ((ev = sandbox_qmp_pop_event(q)))
			json_decref(ev);
		sandbox_qmp_close(q);
	}
	pv_err_free(err);
	close(sv[1]);
	return 0;
}
