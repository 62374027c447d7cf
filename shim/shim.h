/*
 * podvisor-shim: one process per pod. Owns the QEMU process, the agent
 * channel, the containers' stdio (CRI log files) and their exit status, and
 * serves podvisord on <state dir>/shim.sock (proto/shim.proto).
 *
 * Files, one job each: main.c (arguments, start-up, signals), loop.c (epoll),
 * worker.c (one thread for the VMM's blocking hot-plug calls),
 * vm.c (VM + agent lifecycle, dead-VM detection, disks), ctl.c (control socket),
 * ctr.c (container operations), net.c (pod network), exec.c (exec with collected output),
 * exit.c (exit records), state.c (state.pb on disk), ctr_log.c (CRI log format).
 */
#ifndef PV_SHIM_H
#define PV_SHIM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent_client.h"
#include "error.h"
#include "guest_abi.h"
#include "ctr_log.h"
#include "loop.h"
#include "vmm.h"
#include "proto/shim.pb-c.h"

#define SHIM_MAX_DISKS PV_GUEST_SCSI_MAX_TARGETS

struct shim_call;
struct ctl_client;
struct stream_sess;

struct shim_ctr {
	char *id;
	Podvisor__Shim__ContainerState state;
	int32_t exit_code, signal;
	bool oom_killed;
	int64_t created_ns, started_ns, finished_ns;
	char *reason, *message;
	uint32_t pid;
	char *disk; /* qcow2 overlay path, owned by the shim */
	struct shim_log log;
	struct shim_log_stream out, err;
	uint32_t out_stream, err_stream; /* agent stream ids, 0 once closed */
	uint32_t in_stream;              /* the process's stdin (CRI config.stdin), 0 if none */
	bool tty, stdin_once, stdin_closed;
	void *stream_ctx[2];             /* callback contexts of the two streams, owned */
	struct shim_call **waiters;      /* Wait calls answered at exit */
	size_t nwaiters;
	bool removing;
};

struct shim_disk {
	char *id;  /* NULL: a free SCSI target */
	bool busy; /* an attach or detach of it is on the worker */
};

/* Work for the worker thread (worker.c): run() there, then done() on the loop, which
 * frees the job. Embed it first in a bigger struct. */
struct shim;
struct shim_job {
	void (*run)(struct shim_job *j);
	void (*done)(struct shim *s, struct shim_job *j);
	struct shim_job *next;
};

/* Why a pod was lost (not a string to search). */
enum shim_loss {
	SHIM_LOSS_VM,    /* the VMM process exited */
	SHIM_LOSS_AGENT, /* the agent's channel broke, or it stopped answering */
};

/* A disk attach/detach finished (err NULL: done); on the loop. */
typedef void (*shim_disk_cb)(struct shim *s, void *opaque, const pv_err_t *err, unsigned scsi_id);

struct shim_opts {
	const char *state_dir;
	const char *kernel, *initramfs, *kernel_args, *qemu, *qemu_img;
	const char *name, *tap, *mac, *machine;
	enum vmm_arch arch; /* guest architecture (--arch), default x86_64 */
	const char *netns, *veth; /* pod netns path + CNI veth: the shim adds the tap (sandbox/net) */
	const char *share_dir;    /* host directory shared with the guest over virtio-9p (volumes) */
	const char *backend;      /* the VMM backend: "qemu" (default) or "host" (host pods) */
	const char *oci_runtime, *namespaces, *cgroup_parent; /* host pods (sandbox/vmm.h) */
	const char *disk_dir;     /* containers' qcow2 overlays (default <state dir>/disks) */
	uint64_t disk_size;       /* each container's writable disk, bytes (0: the image's size) */
	enum vmm_accel accel;
	unsigned vcpus;
	uint64_t memory_mib;
	unsigned tcg_tb_size_mib;
	int boot_timeout_ms;
	int stop_timeout_ms;
	int heartbeat_ms;   /* agent ping interval; no answer for 3 intervals = pod lost */
	int ready_fd;
	const char *template_dir;  /* start as a clone of this template (fall back to a boot) */
	const char *make_template; /* build a template into this directory and exit */
	bool template_net;         /* the template gets a NIC (a tap in a netns of its own) */
};

struct shim {
	struct shim_opts opts;
	char *sock_path, *qmp_path, *agent_path, *vm_log, *state_path, *disk_dir;
	struct shim_loop *loop;
	struct vmm *vm;
	struct shim_watch *vm_watch, *agent_watch, *signal_watch;
	struct shim_worker *worker;
	pv_agent_t *agent;
	pv_agent_t *agent_dropped; /* lost, freed on the loop's next turn (vm.c drop_agent) */
	Podvisor__Shim__PodState state;
	char *reason;
	int64_t created_ns, ready_ns;
	char *agent_version;
	struct shim_ctr **ctrs;
	size_t nctrs;
	struct shim_disk disks[SHIM_MAX_DISKS]; /* indexed by SCSI target */
	struct shim_ctl *ctl;
	bool shutting_down;
	struct pv_tap_info *net; /* from the tap setup, NULL without --netns */
	int64_t ping_sent_ns;    /* heartbeat ping outstanding since (monotonic), 0: none */
	uint64_t seq;            /* bumped by every persisted change */
	struct shim_call **watchers; /* Watch calls waiting for seq to move */
	size_t nwatchers;
	bool net_up;
	const char *vm_start;  /* "boot", "template", "boot-fallback" (static strings) */
	char *vm_start_error;  /* why the clone failed, for boot-fallback */
};

/* vm.c */
int shim_vm_start(struct shim *s, pv_err_t **err);
/* The VM process exited or the agent channel broke: NOTREADY, containers EXITED. */
void shim_vm_lost(struct shim *s, enum shim_loss loss, const char *reason);
/* Agent shutdown, VMM quit, SIGKILL after the timeout; containers EXITED; STOPPED. */
void shim_vm_shutdown(struct shim *s, int timeout_ms);
/* Flush queued agent frames and watch for POLLOUT while some remain. */
void shim_agent_kick(struct shim *s);
/* 0 if the agent is there, else FAILED_PRECONDITION saying why. */
int shim_need_agent(struct shim *s, pv_err_t **err);
/* Attach a disk on a free SCSI target, on the worker; cb reports (0 / -1 now if it cannot
 * be started: then cb is not called). base != NULL: first make `path` a qcow2 overlay
 * over base (removed again if the attach fails). */
int shim_disk_add(struct shim *s, const char *id, const char *path, const char *base, const char *format, bool ro,
		  shim_disk_cb cb, void *opaque, pv_err_t **err);
/* Detach it (cb may be called at once when there is no VM to detach from). */
int shim_disk_remove(struct shim *s, const char *id, shim_disk_cb cb, void *opaque, pv_err_t **err);

/* template.c: build a template (--make-template), refresh a clone (docs/sandbox.md). */
/* A tap in a netns of its own for the template's NIC (same backend as a pod's). */
int shim_template_tap(int *tap_fd, pv_err_t **err);
/* The template VM's agent answered: hang up, save the VM into opts.make_template, stop it. */
int shim_template_make(struct shim *s, pv_err_t **err);
/* A clone's agent answered: make it a pod of its own (RNG seed, clock, MAC). */
int shim_template_refresh(struct shim *s, pv_agent_t *a, pv_err_t **err);
/* The MAC of the template's NIC; a clone's agent replaces it with the pod's. */
#define SHIM_TEMPLATE_MAC "02:70:76:00:00:01"

/* worker.c */
int shim_worker_start(struct shim *s, pv_err_t **err);
void shim_worker_submit(struct shim *s, struct shim_job *j);
/* Let queued jobs finish, join the thread, run their done(); no more jobs after. */
void shim_worker_stop(struct shim *s);
bool shim_worker_running(const struct shim *s);

/* net.c: tap in the pod netns (fd for QEMU), guest eth0 + routes, teardown. */
int shim_net_setup(struct shim *s, int *tap_fd, pv_err_t **err);
int shim_net_configure_guest(struct shim *s, pv_err_t **err);
void shim_net_teardown(struct shim *s);

/* ctl.c: the control socket. Replies may come later than the request (Wait, Exec). */
int shim_ctl_listen(struct shim *s, pv_err_t **err);
void shim_ctl_close(struct shim *s);
void shim_call_reply(struct shim_call *call, Podvisor__Shim__Response *resp);
void shim_call_error(struct shim_call *call, const pv_err_t *err);
void shim_call_ok(struct shim_call *call);
/* The connection a call came on; streaming sessions keep it (ref) and write frames to it. */
struct ctl_client *shim_call_client(struct shim_call *call);
void shim_ctl_client_ref(struct ctl_client *c);
void shim_ctl_client_unref(struct ctl_client *c);
/* Bind a streaming session: DATA/WINDOW/CLOSE frames go to it, a hang-up ends it (NULL unbinds). */
void shim_ctl_client_bind(struct ctl_client *c, struct stream_sess *ss);
struct stream_sess *shim_ctl_client_stream(struct ctl_client *c);
/* Queue one frame and flush (nothing once the client is gone). */
void shim_ctl_send(struct ctl_client *c, uint8_t type, uint32_t stream, uint8_t flags, const void *buf, size_t len);
/* Dispatch one decoded request (ctr.c / exec.c / vm.c do the work). */
void shim_dispatch(struct shim *s, struct shim_call *call, Podvisor__Shim__Request *req);

/* ctr.c */
struct shim_ctr *shim_ctr_find(struct shim *s, const char *id);
void shim_ctr_fill_status(const struct shim_ctr *c, Podvisor__Shim__ContainerStatus *st);
void shim_ctr_create(struct shim *s, struct shim_call *call, Podvisor__Shim__CreateContainerRequest *r);
void shim_ctr_start(struct shim *s, struct shim_call *call, const char *id);
void shim_ctr_signal(struct shim *s, struct shim_call *call, Podvisor__Shim__SignalRequest *r);
void shim_ctr_wait(struct shim *s, struct shim_call *call, const char *id);
void shim_ctr_remove(struct shim *s, struct shim_call *call, const char *id);
void shim_ctr_reopen_log(struct shim *s, struct shim_call *call, const char *id);
void shim_ctr_free(struct shim_ctr *c);
/* Forward a request to the agent; reply with `Response.agent` or an error. */
void shim_forward(struct shim *s, struct shim_call *call, const Podvisor__Agent__Request *req, int kind);
enum { SHIM_FWD_EMPTY, SHIM_FWD_AGENT, SHIM_FWD_STATS };

/* exec.c */
void shim_exec(struct shim *s, struct shim_call *call, Podvisor__Shim__ExecRequest *r);
/* SIGKILL to an exec'd process through the agent, not waiting for the answer (no agent: nothing). */
void shim_exec_kill(struct shim *s, const char *ctr_id, const char *exec_id);

/* stream.c: streaming sessions (Exec / Attach / PortForward), see docs/shim.md. */
void shim_stream_dispatch(struct shim *s, struct shim_call *call, Podvisor__Shim__Request *req);
void shim_stream_on_frame(struct stream_sess *ss, const struct pv_frame_hdr *h, const uint8_t *payload);
void shim_stream_client_gone(struct stream_sess *ss);
/* A stdin stream for a container created with stdin (attach writes to it); 0 on error. */
uint32_t shim_stream_ctr_stdin_open(struct shim *s, pv_err_t **err);
/* The container's output (also written to its log) for the attached sessions. */
void shim_stream_ctr_output(struct shim *s, struct shim_ctr *c, bool is_err, const uint8_t *buf, size_t len);
void shim_stream_ctr_output_closed(struct shim *s, struct shim_ctr *c, bool is_err);
void shim_stream_ctr_exited(struct shim *s, struct shim_ctr *c);
/* Before the agent client is dropped: sessions stop using its streams. */
void shim_stream_agent_lost(struct shim *s);

/* exit.c: record an exit (persisted) and answer the waiters. */
void shim_exit_record(struct shim *s, struct shim_ctr *c, int32_t code, int32_t sig, bool oom,
		      const char *reason, const char *message);

/* state.c: <state dir>/state.pb, the packed StatusResponse, written atomically. */
void shim_state_fill(struct shim *s, Podvisor__Shim__StatusResponse *st);
void shim_state_fill_free(Podvisor__Shim__StatusResponse *st);
int shim_state_save(struct shim *s, pv_err_t **err);
/* Record a change: bump seq, save (logging a failure), answer Watch calls. */
void shim_state_persist(struct shim *s);
void shim_state_watch(struct shim *s, struct shim_call *call, uint64_t since);
void shim_state_reply(struct shim *s, struct shim_call *call);

#endif
