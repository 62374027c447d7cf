/* The shim's one event loop: epoll over fds plus a few one-shot timers. */
#ifndef PV_SHIM_LOOP_H
#define PV_SHIM_LOOP_H

#include <stdint.h>

#include "error.h"

struct shim_loop;
struct shim_watch;
struct shim_timer;

typedef void (*shim_loop_fd_fn)(void *opaque, uint32_t events);
typedef void (*shim_loop_timer_fn)(void *opaque);

int shim_loop_new(struct shim_loop **out, pv_err_t **err);
void shim_loop_free(struct shim_loop *l);

/* Watch fd for events (EPOLLIN/EPOLLOUT); the returned handle stays valid until shim_loop_del. */
struct shim_watch *shim_loop_add(struct shim_loop *l, int fd, uint32_t events, shim_loop_fd_fn fn,
				 void *opaque, pv_err_t **err);
int shim_loop_mod(struct shim_loop *l, struct shim_watch *w, uint32_t events);
/* Stop watching (safe inside a callback; the fd is not closed). */
void shim_loop_del(struct shim_loop *l, struct shim_watch *w);

/* One-shot timer at monotonic time deadline_ns. */
struct shim_timer *shim_loop_timer(struct shim_loop *l, int64_t deadline_ns, shim_loop_timer_fn fn,
				   void *opaque);
void shim_loop_timer_cancel(struct shim_loop *l, struct shim_timer *t);

/* Run until shim_loop_quit(). */
int shim_loop_run(struct shim_loop *l, pv_err_t **err);
void shim_loop_quit(struct shim_loop *l);

#endif
