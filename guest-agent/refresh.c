/*
 * Refresh: what a VM cloned from a template must change before it is a pod of its own
 * (docs/sandbox.md, "Templates"). Every clone resumes as the same guest, with the same
 * clock reading, the same CRNG state and the same MAC; the shim sends this first.
 */
#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* The template's NIC: the kernel named it at boot, nothing renamed it since. */
#define TEMPLATE_NIC "eth0"

/* Mix the host's bytes into the input pool, credited, then reseed the CRNG from it at
 * once: without the reseed, the base key every clone inherited would keep being used
 * until the kernel's own reseed interval passed. */
static int reseed(const uint8_t *buf, size_t len, uint32_t *bits, pv_err_t **err)
{
	cleanup_close int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "open /dev/urandom");
	size_t words = (len + 3) / 4;
	struct rand_pool_info *info = pv_xcalloc(1, sizeof(*info) + words * 4);
	info->entropy_count = (int)(len * 8);
	info->buf_size = (int)len;
	memcpy(info->buf, buf, len);
	int r = ioctl(fd, RNDADDENTROPY, info);
	explicit_bzero(info, sizeof(*info) + words * 4);
	free(info);
	if (r < 0)
		return pv_err_sys(err, PV_INTERNAL, "RNDADDENTROPY");
	if (ioctl(fd, RNDRESEEDCRNG) < 0)
		return pv_err_sys(err, PV_INTERNAL, "RNDRESEEDCRNG");
	*bits = (uint32_t)(len * 8);
	return 0;
}

static int step_clock(int64_t host_ns, int64_t *step, pv_err_t **err)
{
	int64_t before = pv_now_realtime_ns();
	struct timespec ts = { .tv_sec = host_ns / 1000000000, .tv_nsec = host_ns % 1000000000 };
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		return pv_err_sys(err, PV_INTERNAL, "clock_settime");
	*step = host_ns - before;
	return 0;
}

int agent_refresh(const Podvisor__Agent__RefreshRequest *req, Podvisor__Agent__RefreshResponse *out,
		  pv_err_t **err)
{
	/* Randomness first: nothing below may draw from the shared state. */
	if (req->entropy.len && reseed(req->entropy.data, req->entropy.len, &out->entropy_bits, err) < 0)
		return -1;
	if (req->realtime_ns > 0 && step_clock(req->realtime_ns, &out->clock_step_ns, err) < 0)
		return -1;
	if (req->mac && *req->mac && net_set_mac(TEMPLATE_NIC, req->mac, err) < 0) {
		pv_err_prefix(err, "set the MAC of %s", TEMPLATE_NIC);
		return -1;
	}
	if (req->hostname && *req->hostname) {
		if (sethostname(req->hostname, strlen(req->hostname)) < 0)
			return pv_err_sys(err, PV_INTERNAL, "sethostname");
		/* Containers get the pod's hostname in their own UTS namespace: this one. */
		free(g_agent.sandbox_hostname);
		g_agent.sandbox_hostname = pv_xstrdup(req->hostname);
	}
	pv_info("refreshed after clone", "clock_step_ms=%lld entropy_bits=%u mac=%s",
		(long long)(out->clock_step_ns / 1000000), out->entropy_bits, req->mac ? req->mac : "");
	return 0;
}
