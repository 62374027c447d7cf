/*
 * Client of podvisor-shim, for podvisord (and podvisor-shimctl).
 *
 *   shim_client_spawn()    start a shim for a pod (own session, detached) and wait until
 *                          its VM's agent answers or it failed
 *   shim_client_open()     a handle on a pod's shim, by its state directory (connects lazily)
 *   shim_client_connect()  the same, once the shim's socket answers (waits up to a timeout)
 *   shim_client_call()     one request/response; typed wrappers below
 *   shim_client_read_state()  the pod's last recorded state when the shim cannot be
 *                          reached (a dead shim: NOTREADY, containers EXITED)
 *
 * Lifetime: a handle is reference counted. Whoever holds a pointer to it holds a
 * reference (shim_client_ref), and drops it with shim_client_unref; the last unref
 * closes its connections. Declare a holder `cleanup_shim struct shim_client *sc`.
 *
 * Concurrency: a handle is safe to share between threads and its calls run in
 * parallel: each call takes a connection of its own from the handle's pool (opening one
 * when none is idle), so a call that blocks until a container exits (Wait, Exec, a long
 * CreateContainer) holds up no other. A connection that failed or timed out is closed,
 * never reused; an idle one the shim closed meanwhile is replaced once per call.
 */
#ifndef PV_SHIM_CLIENT_H
#define PV_SHIM_CLIENT_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "proto/shim.pb-c.h"

struct shim_client;

struct shim_spawn_opts {
	const char *shim_binary;  /* default: podvisor-shim next to the running binary, else $PATH */
	const char *state_dir;    /* created if missing; holds shim.sock, state.pb, vm.log, shim.log */
	const char *kernel;
	const char *initramfs;
	const char *name;         /* pod id */
	const char *accel;        /* "auto" (default), "kvm", "hvf", "tcg" */
	const char *kernel_args;
	const char *machine;      /* QEMU -machine value, NULL: the sandbox default */
	const char *arch;         /* guest architecture "x86_64" (default) or "arm64" */
	const char *qemu, *qemu_img;
	const char *tap, *mac;
	const char *netns, *veth; /* pod netns (CNI done): the shim adds the tap, see podvisor-shim --help */
	const char *share_dir;    /* shared with the guest over virtio-9p (pod volumes), created if missing */
	const char *disk_dir;     /* containers' qcow2 overlays, created if missing (default <state_dir>/disks) */
	uint64_t disk_size_mib;   /* each container's writable disk (0: the image's size) */
	const char *log_level;
	unsigned vcpus;           /* 0: 1 */
	uint64_t memory_mib;      /* 0: 256 */
	unsigned tcg_tb_size_mib;
	int boot_timeout_ms;      /* 0: 60000 */
	int stop_timeout_ms;      /* 0: 10000 */
	int heartbeat_ms;         /* agent ping interval, 0: 10000, < 0: off */
};

/* Start a shim; returns when the pod is READY (0, *shim_pid set) or failed (-1, *err
 * says why, with the tail of the VM console). The shim is not our child (double fork). */
int shim_client_spawn(const struct shim_spawn_opts *o, pid_t *shim_pid, pv_err_t **err);

/* state_dir: the pod state directory (or the path of its shim.sock). A new handle, one
 * reference. open() never fails (nothing is connected until a call); connect() waits up
 * to timeout_ms for the shim's socket to accept a connection. */
struct shim_client *shim_client_open(const char *state_dir);
int shim_client_connect(const char *state_dir, int timeout_ms, struct shim_client **out, pv_err_t **err);
struct shim_client *shim_client_ref(struct shim_client *c);
void shim_client_unref(struct shim_client *c);
static inline void shim_client_unrefp(struct shim_client **c)
{
	shim_client_unref(*c);
}
#define cleanup_shim __attribute__((cleanup(shim_client_unrefp)))
/* The shim's socket path. */
const char *shim_client_socket(const struct shim_client *c);

/* Send a request, wait up to timeout_ms (< 0: forever) for the response. A non-OK
 * status becomes -1 with *err (status, errnum and message of the shim's answer); on
 * success *resp (free with shim_client_free_response) if resp is not NULL; its `seq`
 * is the pod's state seq when the shim answered. */
int shim_client_call(struct shim_client *c, const Podvisor__Shim__Request *req, int timeout_ms,
		     Podvisor__Shim__Response **resp, pv_err_t **err);

/* Typed wrappers. Out messages are freed with shim_client_free_response(). */
int shim_client_status(struct shim_client *c, Podvisor__Shim__Response **resp, pv_err_t **err);
int shim_client_create_container(struct shim_client *c, const Podvisor__Shim__CreateContainerRequest *r,
				 Podvisor__Shim__Response **resp, pv_err_t **err);
int shim_client_start_container(struct shim_client *c, const char *id, Podvisor__Shim__Response **resp,
				pv_err_t **err);
int shim_client_signal(struct shim_client *c, const char *id, int sig, int all, pv_err_t **err);
int shim_client_wait(struct shim_client *c, const char *id, int timeout_ms, Podvisor__Shim__Response **resp,
		     pv_err_t **err);
int shim_client_remove_container(struct shim_client *c, const char *id, pv_err_t **err);
int shim_client_exec(struct shim_client *c, const Podvisor__Shim__ExecRequest *r, Podvisor__Shim__Response **resp,
		     pv_err_t **err);
int shim_client_reopen_log(struct shim_client *c, const char *id, pv_err_t **err);
int shim_client_stats(struct shim_client *c, const char *id, Podvisor__Shim__Response **resp, pv_err_t **err);
int shim_client_shutdown(struct shim_client *c, int timeout_ms, pv_err_t **err);
/* Long poll: returns (resp->status_info) once the pod's seq is past `since`, or
 * DEADLINE_EXCEEDED after timeout_ms. Loop with since = status_info->seq. (podvisord's
 * monitor keeps one pending per pod on a non-blocking connection of its own.) */
int shim_client_watch(struct shim_client *c, uint64_t since, int timeout_ms, Podvisor__Shim__Response **resp,
		      pv_err_t **err);
void shim_client_free_response(Podvisor__Shim__Response *resp);

/* The state the shim last recorded (<state_dir>/state.pb). If the shim is gone, the
 * pod is reported NOTREADY and its unfinished containers EXITED ("ShimExited").
 * Free with podvisor__shim__status_response__free_unpacked(st, NULL). */
int shim_client_read_state(const char *state_dir, Podvisor__Shim__StatusResponse **out, pv_err_t **err);

/* True if pid is a running podvisor-shim (not just any process that reused the pid). */
int shim_client_alive(pid_t pid);

/* Pod and container state names ("READY", "RUNNING", ...). */
const char *shim_client_pod_state_name(Podvisor__Shim__PodState s);
const char *shim_client_ctr_state_name(Podvisor__Shim__ContainerState s);

#endif
