/*
 * Templates in the shim (docs/sandbox.md, "Templates").
 *
 * Build mode (--make-template DIR): boot a VM whose RAM is DIR/mem, wait for the agent,
 * hang up on it, save the VM into DIR and exit. Nothing pod-specific happens first: no
 * SetInterface, no CreateSandbox, no 9p mount.
 * Clone (--template DIR): the VMM layer restores the VM (vm.c asks, and boots instead if
 * that fails); then the agent is told to become a pod of its own (Refresh): fresh RNG
 * seed, the host's clock, the pod's MAC on eth0.
 */
#include "shim.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#define REFRESH_TIMEOUT_MS 10000
#define SAVE_TIMEOUT_MS 30000
/* How long the template's agent gets to notice the host hung up (it logs it). */
#define HANGUP_WAIT_MS 2000
/* Seed handed to each clone's RNG. */
#define REFRESH_ENTROPY_BYTES 64

/* The template's netns, kept open so its tap lives as long as the VM (closed at exit). */
static int template_netns_fd = -1;

struct tap_job {
	int tap, ns, errnum;
	const char *what;
};

/* On a thread of its own: only this thread moves to the new netns. */
static void *tap_thread(void *arg)
{
	struct tap_job *j = arg;
	if (unshare(CLONE_NEWNET) < 0) {
		j->errnum = errno, j->what = "unshare(CLONE_NEWNET)";
		return NULL;
	}
	j->ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	j->tap = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (j->ns < 0 || j->tap < 0) {
		j->errnum = errno, j->what = "open /dev/net/tun";
		return NULL;
	}
	/* The flags a pod's tap has (sandbox/net/tap.c): the same virtio-net offloads then. */
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "tap0");
	if (ioctl(j->tap, TUNSETIFF, &ifr) < 0)
		j->errnum = errno, j->what = "TUNSETIFF";
	return NULL;
}

int shim_template_tap(int *tap_fd, pv_err_t **err)
{
	struct tap_job j = { .tap = -1, .ns = -1 };
	pthread_t t;
	if (pthread_create(&t, NULL, tap_thread, &j) != 0)
		return pv_err_set(err, PV_INTERNAL, EAGAIN, "cannot start a thread");
	pthread_join(t, NULL);
	if (j.errnum) {
		if (j.tap >= 0)
			close(j.tap);
		if (j.ns >= 0)
			close(j.ns);
		return pv_err_set(err, PV_INTERNAL, j.errnum, "template tap: %s: %s", j.what, strerror(j.errnum));
	}
	template_netns_fd = j.ns;
	*tap_fd = j.tap;
	return 0;
}

/* Wait until the guest agent logged that the host went away (or give up after a while:
 * the clone's agent copes with either, this only makes the template's state tidy). */
static void wait_hangup_seen(struct shim *s)
{
	int64_t deadline = pv_now_monotonic_ns() + (int64_t)HANGUP_WAIT_MS * 1000000;
	while (pv_now_monotonic_ns() < deadline) {
		cleanup_free char *tail = sandbox_file_tail(s->vm_log, 4096);
		/* After the agent's last "host connected" (it may have seen a hang-up while booting). */
		const char *from = tail, *p;
		while ((p = strstr(from, "host connected")))
			from = p + 1;
		if (strstr(from, "host disconnected"))
			return;
		usleep(10000);
	}
	pv_warn("template agent did not report the hang-up", "ms=%d", HANGUP_WAIT_MS);
}

int shim_template_make(struct shim *s, pv_err_t **err)
{
	int64_t t0 = pv_now_monotonic_ns();
	/* Clones start with nobody connected to their agent: so does the template. */
	pv_agent_free(s->agent);
	s->agent = NULL;
	wait_hangup_seen(s);
	if (sandbox_vmm_template_save(s->vm, SAVE_TIMEOUT_MS, err) < 0)
		return -1;
	pv_info("template saved", "dir=%s ms=%lld", s->opts.make_template,
		(long long)((pv_now_monotonic_ns() - t0) / 1000000));
	sandbox_vmm_stop(s->vm, 0, 2000);
	if (template_netns_fd >= 0)
		close(template_netns_fd);
	template_netns_fd = -1;
	return 0;
}

int shim_template_refresh(struct shim *s, pv_agent_t *a, pv_err_t **err)
{
	uint8_t seed[REFRESH_ENTROPY_BYTES];
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		return pv_err_sys(err, PV_INTERNAL, "getrandom");
	Podvisor__Agent__RefreshRequest rr = PODVISOR__AGENT__REFRESH_REQUEST__INIT;
	rr.entropy.data = seed;
	rr.entropy.len = sizeof(seed);
	rr.mac = (char *)(s->opts.mac ? s->opts.mac : "");
	Podvisor__Agent__Request req = PODVISOR__AGENT__REQUEST__INIT;
	req.req_case = PODVISOR__AGENT__REQUEST__REQ_REFRESH;
	req.refresh = &rr;
	Podvisor__Agent__Response *resp = NULL;
	rr.realtime_ns = pv_now_realtime_ns();
	int r = pv_agent_call_ok(a, &req, REFRESH_TIMEOUT_MS, &resp, err);
	explicit_bzero(seed, sizeof(seed));
	if (r < 0) {
		pv_err_prefix(err, "refresh the clone");
		return -1;
	}
	if (resp->resp_case == PODVISOR__AGENT__RESPONSE__RESP_REFRESH)
		pv_info("clone refreshed", "clock_step_ms=%lld entropy_bits=%u mac=%s",
			(long long)(resp->refresh->clock_step_ns / 1000000), resp->refresh->entropy_bits, rr.mac);
	podvisor__agent__response__free_unpacked(resp, NULL);
	return 0;
}
