/* The host channel: a virtio-serial port, framed (common/frame.h). */
#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define PORT_NAME PV_GUEST_AGENT_PORT
/* A frame left half-read this long is stale (its sender went away): drop it. */
#define STALE_PARTIAL_NS (1000LL * 1000 * 1000)
/* Stop reading process output while this much is queued for the host. */
#define CHANNEL_HIGH_WATER (8u << 20)

/* Find /dev/vportNpM whose virtio name is PORT_NAME. */
static char *find_port(void)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return NULL;
	char *found = NULL;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[512], name[128] = "";
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f))
			name[strcspn(name, "\n")] = 0;
		fclose(f);
		if (!strcmp(name, PORT_NAME))
			found = pv_xasprintf("/dev/%s", de->d_name);
	}
	closedir(d);
	return found;
}

int channel_open(pv_err_t **err)
{
	struct agent *a = &g_agent;
	cleanup_free char *path = NULL;
	/* The port is normally probed before init runs; allow a little slack. */
	for (int i = 0; i < 500 && !path; i++) {
		path = find_port();
		if (!path)
			usleep(10000);
	}
	if (!path) {
		DIR *d = opendir("/sys/bus/virtio/devices");
		struct dirent *de;
		while (d && (de = readdir(d)))
			pv_info("virtio device", "name=%s", de->d_name);
		if (d)
			closedir(d);
		return pv_err_set(err, PV_UNAVAILABLE, ENODEV, "virtio-serial port %s not found", PORT_NAME);
	}
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return pv_err_sys(err, PV_UNAVAILABLE, "open %s", path);
	a->chan_fd = fd;
	pv_info("channel open", "port=%s", path);
	a->chan_ev.kind = EV_CHANNEL;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &a->chan_ev };
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return pv_err_sys(err, PV_INTERNAL, "epoll_ctl channel");
	a->connected = true;
	return 0;
}

/* Poll for POLLOUT only while there is something to write. */
void channel_update_events(void)
{
	struct agent *a = &g_agent;
	if (!a->connected)
		return;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &a->chan_ev };
	if (pv_frame_writer_pending(&a->wr))
		ev.events |= EPOLLOUT;
	epoll_ctl(a->epfd, EPOLL_CTL_MOD, a->chan_fd, &ev);
}

/* Host side went away (QEMU socket not connected): wait for it on a timer. */
static void channel_disconnected(void)
{
	struct agent *a = &g_agent;
	if (!a->connected)
		return;
	pv_info("host disconnected", NULL);
	a->connected = false;
	epoll_ctl(a->epfd, EPOLL_CTL_DEL, a->chan_fd, NULL);
	pv_frame_reader_reset(&a->rd);
	pv_frame_writer_reset(&a->wr);
	portfwd_close_all();
	struct itimerspec its = { .it_interval = { 0, 20 * 1000000 }, .it_value = { 0, 20 * 1000000 } };
	timerfd_settime(a->timer_fd, 0, &its, NULL);
}

static int64_t g_last_rx_ns;

static bool reader_partial(void)
{
	return g_agent.rd.len > 0 || g_agent.rd.skip > 0;
}

/* While a frame is half-read, check back later whether it went stale. */
static void arm_stale_check(void)
{
	struct agent *a = &g_agent;
	if (!a->connected || !reader_partial())
		return;
	struct itimerspec its = { .it_value = { 0, 250 * 1000000 } };
	timerfd_settime(a->timer_fd, 0, &its, NULL);
}

/*
 * virtio-serial carries no connection boundaries, and a host that hangs up
 * and reconnects quickly may not be noticed: bytes of a frame it never
 * finished would swallow the next connection's frames. A partial frame that
 * has not grown for STALE_PARTIAL_NS is therefore discarded.
 */
static void check_stale(void)
{
	struct agent *a = &g_agent;
	if (!reader_partial())
		return;
	if (pv_now_monotonic_ns() - g_last_rx_ns >= STALE_PARTIAL_NS) {
		pv_warn("dropping a stale partial frame", "buffered=%zu skipping=%llu", a->rd.len,
			(unsigned long long)a->rd.skip);
		pv_frame_reader_reset(&a->rd);
		return;
	}
	arm_stale_check();
}

/* Timer tick: while disconnected, is the host back? While connected, stale input? */
static void channel_try_reconnect(void)
{
	struct agent *a = &g_agent;
	uint64_t ticks;
	if (read(a->timer_fd, &ticks, sizeof(ticks)) < 0) {
		/* nothing */
	}
	if (a->connected) {
		check_stale();
		return;
	}
	struct pollfd pfd = { .fd = a->chan_fd, .events = POLLIN };
	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP))
		return;
	struct itimerspec off = { 0 };
	timerfd_settime(a->timer_fd, 0, &off, NULL);
	a->connected = true;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &a->chan_ev };
	epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->chan_fd, &ev);
	pv_info("host connected", NULL);
}

void channel_send_response(uint32_t id, Podvisor__Agent__Response *resp)
{
	cleanup_err pv_err_t *err = NULL;
	if (pv_frame_put_response(&g_agent.wr, id, resp, &err) < 0)
		pv_frame_put_err(&g_agent.wr, id, err);
	channel_update_events();
}

void channel_send_error(uint32_t id, const pv_err_t *err)
{
	pv_frame_put_err(&g_agent.wr, id, err);
	channel_update_events();
}

void channel_send_data(uint32_t stream, const void *buf, size_t len)
{
	pv_frame_writer_put(&g_agent.wr, PV_FRAME_DATA, stream, 0, buf, len);
	channel_update_events();
}

void channel_send_close(uint32_t stream, bool reset)
{
	pv_frame_writer_put(&g_agent.wr, PV_FRAME_CLOSE, stream, reset ? PV_FRAME_F_RESET : 0, NULL, 0);
	channel_update_events();
}

void channel_send_window(uint32_t stream, uint32_t inc)
{
	pv_frame_writer_put_window(&g_agent.wr, stream, inc);
	channel_update_events();
}

/* Used before poweroff: push the last reply out. */
void channel_flush_blocking(int timeout_ms)
{
	struct agent *a = &g_agent;
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	while (a->connected && pv_frame_writer_pending(&a->wr) && pv_now_monotonic_ns() < deadline) {
		int rc = pv_frame_writer_flush(&a->wr, a->chan_fd);
		if (rc <= 0)
			break;
		struct pollfd pfd = { .fd = a->chan_fd, .events = POLLOUT };
		poll(&pfd, 1, 50);
	}
}

static void handle_frame(const struct pv_frame_hdr *h, const uint8_t *payload)
{
	switch (h->type) {
	case PV_FRAME_REQUEST: {
		if (h->stream == 0) {
			pv_frame_put_error(&g_agent.wr, 0, PV_INVALID_ARGUMENT, "request id 0 is reserved");
			break;
		}
		Podvisor__Agent__Request *req = NULL;
		cleanup_err pv_err_t *err = NULL;
		if (pv_frame_decode_request(payload, h->len, &req, &err) < 0) {
			pv_warn("bad request", "id=%u len=%u", h->stream, h->len);
			channel_send_error(h->stream, err);
			break;
		}
		dispatch_request(h->stream, req);
		break;
	}
	case PV_FRAME_DATA:
		if (!portfwd_on_data(h->stream, payload, h->len))
			stdio_on_data(h->stream, payload, h->len);
		break;
	case PV_FRAME_WINDOW: {
		uint32_t inc;
		if (pv_frame_parse_window(payload, h->len, &inc) < 0) {
			pv_frame_put_error(&g_agent.wr, 0, PV_INVALID_ARGUMENT, "malformed WINDOW frame");
			break;
		}
		if (!portfwd_on_window(h->stream, inc))
			stdio_on_window(h->stream, inc);
		break;
	}
	case PV_FRAME_CLOSE:
		if (!portfwd_on_close(h->stream, (h->flags & PV_FRAME_F_RESET) != 0))
			stdio_on_close(h->stream);
		break;
	default:
		pv_frame_put_error(&g_agent.wr, 0, PV_INVALID_ARGUMENT, "unexpected frame type from host");
		break;
	}
}

void channel_on_event(uint32_t events)
{
	struct agent *a = &g_agent;
	if (events & EPOLLOUT) {
		int rc = pv_frame_writer_flush(&a->wr, a->chan_fd);
		if (rc < 0) {
			channel_disconnected();
			return;
		}
	}
	if (events & EPOLLIN) {
		for (int round = 0; round < 16; round++) {
			int rc = pv_frame_reader_read_fd(&a->rd, a->chan_fd);
			if (rc == -EAGAIN)
				break;
			if (rc <= 0) {
				channel_disconnected();
				return;
			}
			g_last_rx_ns = pv_now_monotonic_ns();
			for (;;) {
				struct pv_frame_hdr h;
				const uint8_t *payload;
				cleanup_err pv_err_t *err = NULL;
				int n = pv_frame_reader_next(&a->rd, &h, &payload, &err);
				if (n == 0)
					break;
				if (n < 0) {
					pv_warn("bad frame", "error=%s", err->msg);
					pv_frame_put_err(&a->wr, 0, err);
					continue;
				}
				handle_frame(&h, payload);
			}
		}
	} else if (events & (EPOLLHUP | EPOLLERR)) {
		channel_disconnected();
		return;
	}
	if (pv_frame_writer_pending(&a->wr))
		(void)pv_frame_writer_flush(&a->wr, a->chan_fd);
	if (!channel_backlogged()) {
		stdio_resume_all();
		portfwd_resume_all();
	}
	channel_update_events();
	arm_stale_check();
}

void channel_on_timer(void)
{
	channel_try_reconnect();
}

bool channel_backlogged(void)
{
	return pv_frame_writer_pending(&g_agent.wr) > CHANNEL_HIGH_WATER;
}
