/* The guest's transport of the host channel: the virtio-serial port "podvisor.agent". */
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
#include <sys/timerfd.h>
#include <unistd.h>

#define PORT_NAME PV_GUEST_AGENT_PORT

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
	pv_info("channel open", "port=%s", path);
	channel_attach(fd);
	return 0;
}

/* The host side went away (QEMU's socket has no client): the port stays; look for the
 * host's return on a timer (virtio-serial reports POLLHUP while nobody is connected). */
void channel_transport_lost(void)
{
	struct itimerspec its = { .it_interval = { 0, 20 * 1000000 }, .it_value = { 0, 20 * 1000000 } };
	timerfd_settime(g_agent.timer_fd, 0, &its, NULL);
}

void channel_transport_tick(void)
{
	struct pollfd pfd = { .fd = g_agent.chan_fd, .events = POLLIN };
	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP))
		return;
	channel_attach(g_agent.chan_fd);
}
