/*
 * The host agent's transport: a unix socket its shim connects to (the shim's host backend
 * made it and handed it over). One host at a time: while one is connected, another
 * connection is refused; once it went away, the next one is taken.
 */
#include "hostagent.h"
#include "log.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int g_listen_fd = -1;
static struct ev g_listen_ev = { .kind = EV_ACCEPT };

int hostagent_listen_init(int fd, pv_err_t **err)
{
	g_listen_fd = fd;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &g_listen_ev };
	if (epoll_ctl(g_agent.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return pv_err_sys(err, PV_INTERNAL, "epoll_ctl listener");
	return 0;
}

void hostagent_listen_accept(void)
{
	int fd = accept4(g_listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (g_agent.connected) {
		pv_warn("a second host connected: refused, one is connected", NULL);
		close(fd);
		return;
	}
	channel_attach(fd);
}

void channel_transport_lost(void)
{
	if (g_agent.chan_fd >= 0)
		close(g_agent.chan_fd);
	g_agent.chan_fd = -1;
}

void channel_transport_tick(void)
{
	/* a new host comes through accept, not the timer */
}
