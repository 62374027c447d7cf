/*
 * Agent internals. Two programs speak the agent protocol and link the core kept here:
 * podvisor-agent (the guest's PID 1: main.c, port.c, container.c, process.c, cgroup.c,
 * net.c) and podvisor-hostagent (host pods, host-agent/). The core both link: channel.c
 * (frames), stdio.c (process stdio as streams), dispatch.c (requests to the functions
 * below), proc.c (processes and their Wait answers), validate.c. Each program provides
 * the transport, the container_* and sandbox_create functions, cgroup_oom_kills and the
 * net_* functions declared here.
 */
#ifndef PV_AGENT_H
#define PV_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "frame.h"
#include "guest_abi.h"
#include "proto/agent.pb-c.h"

#define AGENT_RUN_DIR PV_GUEST_RUN_DIR
#define AGENT_CGROUP_ROOT PV_GUEST_CGROUP_ROOT
/* Where the pod's virtio-9p volume share is mounted, on first use. */
#define AGENT_VOL_DIR PV_GUEST_VOL_DIR
#define AGENT_VOL_TAG PV_GUEST_SHARE_TAG
#define AGENT_CGROUP_PARENT PV_GUEST_CGROUP_PARENT
/* Debian's static qemu-x86_64 in an arm64 initramfs (handler arm64-x86): registered at boot. */
#define AGENT_BINFMT_X86_64 "/usr/libexec/qemu-binfmt/x86_64-binfmt-P"

struct proc;
struct pf_conn;

/* What an epoll registration points at. */
enum ev_kind { EV_CHANNEL, EV_SIGNAL, EV_TIMER, EV_RETRY, EV_STDIO, EV_PORTFWD, EV_ACCEPT, EV_SIGRESEND };
struct ev {
	enum ev_kind kind;
	void *ptr;
};

/* One direction of one process's stdio, bound to a stream id. */
struct stdio_stream {
	struct ev ev;
	uint32_t id;
	int fd;                 /* -1 once closed */
	bool input;             /* stdin: host -> process */
	bool registered;        /* in epoll */
	bool paused;            /* output: out of credit, not polled */
	bool host_closed;       /* stdin: CLOSE received (close fd once drained) */
	struct pv_flow_out out; /* output */
	struct pv_flow_in in;   /* input */
	uint8_t *buf;           /* stdin bytes not yet written */
	size_t len;
	struct proc *proc;
	struct stdio_stream *next;
};

struct waiter {
	uint32_t request_id;
	struct waiter *next;
};

struct container;

/* A compiled seccomp filter (seccomp.c). */
struct sock_filter;
struct seccomp_prog {
	struct sock_filter *insns; /* NULL: no filter */
	unsigned short len;
	unsigned flags;            /* SECCOMP_FILTER_FLAG_* */
};

struct proc {
	struct container *c;
	char *exec_id;          /* "" for the container's init */
	pid_t pid;
	bool exited;
	int status;             /* waitpid status */
	int64_t started_ns, finished_ns;
	uint64_t oom_kills_at_start;
	int pty_master;         /* -1 if no tty */
	struct stdio_stream *sin, *sout, *serr;
	struct waiter *waiters;
	struct proc *next;      /* in container's list */
};

struct container {
	char *id;
	char *dir;              /* AGENT_RUN_DIR/c/<id> (host: the OCI bundle) */
	char *rootfs;           /* <dir>/rootfs, mount point of the disk (host: Rootfs.path) */
	char *cgroup;           /* AGENT_CGROUP_PARENT/<id> (host: the OCI cgroupsPath) */
	Podvisor__Agent__CreateContainerRequest *spec;
	struct seccomp_prog seccomp; /* from spec->seccomp, compiled at create */
	bool started;
	uint64_t base_used_bytes, base_used_inodes; /* the rootfs as mounted: what the image fills */
	struct proc *procs;     /* init first once started */
	struct container *next;
};

struct agent {
	int epfd;
	int chan_fd;
	bool connected;
	struct ev chan_ev, sig_ev, timer_ev, retry_ev;
	int sig_fd, timer_fd;
	int retry_fd;           /* timerfd: retry creates waiting for their disk */
	int self_pidns_fd;
	struct pv_frame_reader rd;
	struct pv_frame_writer wr;
	struct stdio_stream *streams;
	struct container *containers;
	char *sandbox_hostname;
	bool shutting_down;
	bool shutdown_reboot;
};

extern struct agent g_agent;

/* channel.c */
void channel_attach(int fd);
void channel_send_response(uint32_t id, Podvisor__Agent__Response *resp);
void channel_send_error(uint32_t id, const pv_err_t *err);
void channel_send_data(uint32_t stream, const void *buf, size_t len);
void channel_send_close(uint32_t stream, bool reset);
void channel_send_window(uint32_t stream, uint32_t inc);
void channel_flush_blocking(int timeout_ms);
void channel_on_event(uint32_t events);
void channel_update_events(void);
void channel_on_timer(void);
bool channel_backlogged(void);

/* The transport (guest: port.c; host: host-agent/listen.c). open() finds the host and
 * channel_attach()es it; lost() is told when it went away; tick() runs on the channel's
 * timer while disconnected. */
int channel_open(pv_err_t **err);
void channel_transport_lost(void);
void channel_transport_tick(void);

/* dispatch.c: handles one decoded request; replies now or later (wait). */
void dispatch_request(uint32_t id, Podvisor__Agent__Request *req);

/* stdio.c */
struct stdio_stream *stdio_find(uint32_t id);
int stdio_attach(struct proc *p, struct stdio_stream *s);
struct stdio_stream *stdio_new(uint32_t id, int fd, bool input, struct proc *p);
void stdio_on_event(struct stdio_stream *s, uint32_t events);
void stdio_on_data(uint32_t stream, const uint8_t *buf, uint32_t len);
void stdio_on_window(uint32_t stream, uint32_t inc);
void stdio_on_close(uint32_t stream);
void stdio_close(struct stdio_stream *s, bool send_close);
void stdio_free_closed(void);
void stdio_resume_all(void);

/* Host-side ends (agent) and child-side ends of a process's stdio. */
struct stdio_fds {
	int parent[3];
	int child[3];
	int pty_master, tty_slave;
};

/* proc.c (shared) */
struct container *container_find(const char *id);
struct proc *proc_find(struct container *c, const char *exec_id);
/* The process (exec_id "" = init) of a container, or NOT_FOUND. */
int proc_lookup(const char *cid, const char *exec_id, struct container **cout, struct proc **pout,
		pv_err_t **err);
void close_fds(int *fds, int n);
/* Pipes (or a pty) for p's stdio streams; ALREADY_EXISTS if a stream id is in use. */
int make_stdio(const Podvisor__Agent__Process *p, struct stdio_fds *s, pv_err_t **err);
void release_child_fds(struct stdio_fds *s);
/* Register a started process (its stdio becomes streams); appended, so init stays first. */
struct proc *proc_register(struct container *c, const char *exec_id, pid_t pid, struct stdio_fds *s,
			   const Podvisor__Agent__Process *p);
bool proc_done(const struct proc *p);
/* Answer waiters once the process has exited and its output streams are closed. */
void proc_maybe_finish(struct proc *p);
struct proc *proc_by_pid(pid_t pid);
/* Close its streams, answer its waiters with what is known, free it. */
void proc_free(struct proc *p);
/* A removed container leaves the agent: its processes freed, it is unlinked from
 * g_agent.containers and freed (container_free). */
void container_forget(struct container *c);
/* Each agent's own (container.c, host-agent/ctr.c): what a container struct holds. */
void container_free(struct container *c);
int container_wait(const char *cid, const char *exec_id, uint32_t request_id, pv_err_t **err);
int container_close_stdin(const char *cid, const char *exec_id, pv_err_t **err);
int container_resize(const Podvisor__Agent__ResizeTtyRequest *req, pv_err_t **err);

/* container.c (each agent's) */
/* 0: created (caller replies), 1: waiting for the disk (replies itself later), <0: error.
 * On 0 and 1 the container code owns req. */
int container_create(Podvisor__Agent__CreateContainerRequest *req, uint32_t request_id, pv_err_t **err);
void container_retry_pending(void);
int container_start(const char *id, pid_t *pid, pv_err_t **err);
int container_exec(Podvisor__Agent__ExecProcessRequest *req, pid_t *pid, pv_err_t **err);
int container_signal(const Podvisor__Agent__SignalProcessRequest *req, pv_err_t **err);
int container_remove(const char *id, pv_err_t **err);
int container_stats(const char *id, Podvisor__Agent__StatsContainerResponse *out, pv_err_t **err);
int container_update(const char *id, const Podvisor__Agent__Resources *res, pv_err_t **err);
void container_kill_all(void);
void container_on_sigchld(void);

/* process.c: the forked child's setup, never returns */
struct child_args {
	struct container *c;
	const Podvisor__Agent__Process *proc;
	bool is_init;
	int stdio[3];           /* child ends; -1 = /dev/null */
	int tty_slave;          /* -1 if none */
	int errfd;              /* CLOEXEC pipe for the setup error */
	int ns_fds[3];          /* exec: mnt, uts, ipc of the container (-1 for init) */
	int root_fd;            /* exec: the container's root dir */
};
void process_child(const struct child_args *a) __attribute__((noreturn));

/* cgroup.c */
int cgroup_init(pv_err_t **err);
int cgroup_create(const char *path, const Podvisor__Agent__Resources *res, pv_err_t **err);

/* rootfs.c: grow a mounted rootfs's ext4 online to the size of its disk. */
int rootfs_grow(const char *dev, const char *mountpoint, pv_err_t **err);
int cgroup_apply(const char *path, const Podvisor__Agent__Resources *res, pv_err_t **err);
int cgroup_kill(const char *path);
int cgroup_remove(const char *path, int timeout_ms, pv_err_t **err);
uint64_t cgroup_oom_kills(const char *path);
int cgroup_stats(const char *path, Podvisor__Agent__StatsContainerResponse *out, pv_err_t **err);

/* stats.c */
int stats_sandbox(Podvisor__Agent__StatsSandboxResponse *out, pv_err_t **err);
/* dispatch.c: frees what either agent's stats_sandbox filled */
void stats_sandbox_free(Podvisor__Agent__StatsSandboxResponse *out);
/* Record how full the rootfs is as mounted, before the container writes to it. */
void stats_rootfs_baseline(struct container *c);
/* Used bytes / inodes of the rootfs, and the writable layer's part of them. */
void stats_rootfs(const struct container *c, Podvisor__Agent__StatsContainerResponse *out);

/* net.c (libnl) */
int net_set_interface(const Podvisor__Agent__Interface *want, Podvisor__Agent__Interface **out,
		      pv_err_t **err);
int net_list_interfaces(Podvisor__Agent__ListInterfacesResponse *out, pv_err_t **err);
int net_set_routes(const Podvisor__Agent__SetRoutesRequest *req, pv_err_t **err);
int net_list_routes(Podvisor__Agent__ListRoutesResponse *out, pv_err_t **err);
void net_free_interface(Podvisor__Agent__Interface *i);
void net_free_interfaces(Podvisor__Agent__ListInterfacesResponse *r);
void net_free_routes(Podvisor__Agent__ListRoutesResponse *r);
int net_loopback_up(pv_err_t **err);
/* Set the hardware address of link `name` ("aa:bb:cc:dd:ee:ff"). */
int net_set_mac(const char *name, const char *mac, pv_err_t **err);

/* binfmt.c: 1 registered, 0 no emulator in the initramfs, -errno. Call before re-rooting. */
int binfmt_register_from_initramfs(void);
/* Log what binfmt_register_from_initramfs did (after logging is set up). */
void binfmt_report(void);

/* portfwd.c: TCP connections to localhost in the guest, each bound to one stream. */
int portfwd_open(uint32_t port, uint32_t stream, pv_err_t **err);
bool portfwd_stream_in_use(uint32_t id);
void portfwd_on_event(struct pf_conn *c, uint32_t events);
/* Frames for a port stream (false: not one of ours). */
bool portfwd_on_data(uint32_t stream, const uint8_t *buf, uint32_t len);
bool portfwd_on_window(uint32_t stream, uint32_t inc);
bool portfwd_on_close(uint32_t stream, bool reset);
void portfwd_resume_all(void);
void portfwd_close_all(void);
void portfwd_free_closed(void);

/* refresh.c: a clone of a template becomes a pod of its own (RNG, clock, MAC, hostname). */
int agent_refresh(const Podvisor__Agent__RefreshRequest *req, Podvisor__Agent__RefreshResponse *out,
		  pv_err_t **err);
/* sandbox.c */
int sandbox_create(const Podvisor__Agent__CreateSandboxRequest *req, pv_err_t **err);

/* seccomp.c (libseccomp) */
int seccomp_compile(const Podvisor__Agent__Seccomp *s, struct seccomp_prog *out, pv_err_t **err);
void seccomp_prog_free(struct seccomp_prog *p);
/* In the child, before execve: seccomp(2); -1 with errno on failure. */
int seccomp_install(const struct seccomp_prog *p);

/* podpid.c: the pod's shared PID namespace (its fd, made on first use) */
int podpid_ns_fd(pv_err_t **err);
/* true if pid was the namespace's reaper (then forgotten). */
bool podpid_on_exit(pid_t pid, int status);

/* sigresend.c: signals that a container's init had no handler for yet */
int sigresend_init(void);
/* kill(pid, sig), watching for a handler if the signal would be dropped now. */
int sigresend_kill(pid_t pid, int sig);
void sigresend_forget(pid_t pid);
void sigresend_on_timer(void);
bool sigresend_ends_by_default(int sig);
int sigresend_parse_status(const char *status, int sig, bool *ns_init, bool *caught);

/* mounts.c: the forked child's masked, read-only and privileged-device mounts */
int mounts_mask_paths(char **paths, size_t n, char *msg, size_t msglen);
int mounts_readonly_paths(char **paths, size_t n, char *msg, size_t msglen);
int mounts_all_devices(int devfd, char *msg, size_t msglen);

#endif
