/* epoll event loop with deferred frees, so callbacks may remove any watch. */
#include "loop.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct shim_watch {
	int fd;
	bool dead;
	shim_loop_fd_fn fn;
	void *opaque;
	struct shim_watch *next_dead;
	struct shim_watch *next_live; /* every live watch, freed with the loop */
};

struct shim_timer {
	int64_t deadline_ns;
	shim_loop_timer_fn fn;
	void *opaque;
	struct shim_timer *next;
};

struct shim_loop {
	int epfd;
	bool quit;
	struct shim_watch *dead;
	struct shim_watch *live;
	struct shim_timer *timers; /* unsorted; a handful at most */
};

int shim_loop_new(struct shim_loop **out, pv_err_t **err)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "epoll_create1");
	struct shim_loop *l = pv_xcalloc(1, sizeof(*l));
	l->epfd = fd;
	*out = l;
	return 0;
}

static void reap_dead(struct shim_loop *l)
{
	while (l->dead) {
		struct shim_watch *w = l->dead;
		l->dead = w->next_dead;
		free(w);
	}
}

void shim_loop_free(struct shim_loop *l)
{
	if (!l)
		return;
	reap_dead(l);
	while (l->live) {
		struct shim_watch *w = l->live;
		l->live = w->next_live;
		free(w);
	}
	while (l->timers) {
		struct shim_timer *t = l->timers;
		l->timers = t->next;
		free(t);
	}
	close(l->epfd);
	free(l);
}

struct shim_watch *shim_loop_add(struct shim_loop *l, int fd, uint32_t events, shim_loop_fd_fn fn,
				 void *opaque, pv_err_t **err)
{
	struct shim_watch *w = pv_xcalloc(1, sizeof(*w));
	w->fd = fd;
	w->fn = fn;
	w->opaque = opaque;
	struct epoll_event ev = { .events = events, .data.ptr = w };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		pv_err_sys(err, PV_INTERNAL, "epoll_ctl add fd %d", fd);
		free(w);
		return NULL;
	}
	w->next_live = l->live;
	l->live = w;
	return w;
}

int shim_loop_mod(struct shim_loop *l, struct shim_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0 ? -errno : 0;
}

void shim_loop_del(struct shim_loop *l, struct shim_watch *w)
{
	if (!w || w->dead)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	for (struct shim_watch **pp = &l->live; *pp; pp = &(*pp)->next_live) {
		if (*pp == w) {
			*pp = w->next_live;
			break;
		}
	}
	w->dead = true;
	w->next_dead = l->dead;
	l->dead = w;
}

struct shim_timer *shim_loop_timer(struct shim_loop *l, int64_t deadline_ns, shim_loop_timer_fn fn,
				   void *opaque)
{
	struct shim_timer *t = pv_xcalloc(1, sizeof(*t));
	t->deadline_ns = deadline_ns;
	t->fn = fn;
	t->opaque = opaque;
	t->next = l->timers;
	l->timers = t;
	return t;
}

void shim_loop_timer_cancel(struct shim_loop *l, struct shim_timer *t)
{
	for (struct shim_timer **pp = &l->timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			free(t);
			return;
		}
	}
}

void shim_loop_quit(struct shim_loop *l)
{
	l->quit = true;
}

/* Fire due timers; returns ms until the next one (-1: none). */
static int run_timers(struct shim_loop *l)
{
	int64_t now = pv_now_monotonic_ns();
	for (;;) {
		struct shim_timer *due = NULL;
		for (struct shim_timer *t = l->timers; t; t = t->next)
			if (t->deadline_ns <= now)
				due = t;
		if (!due)
			break;
		shim_loop_timer_fn fn = due->fn;
		void *opaque = due->opaque;
		shim_loop_timer_cancel(l, due);
		fn(opaque);
	}
	int64_t next = -1;
	for (struct shim_timer *t = l->timers; t; t = t->next) {
		int64_t ms = (t->deadline_ns - now) / 1000000 + 1;
		if (next < 0 || ms < next)
			next = ms;
	}
	return (int)(next > 60000 ? 60000 : next);
}

int shim_loop_run(struct shim_loop *l, pv_err_t **err)
{
	while (!l->quit) {
		int timeout = run_timers(l);
		if (l->quit)
			break;
		struct epoll_event evs[16];
		int n = epoll_wait(l->epfd, evs, 16, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pv_err_sys(err, PV_INTERNAL, "epoll_wait");
		for (int i = 0; i < n && !l->quit; i++) {
			struct shim_watch *w = evs[i].data.ptr;
			if (!w->dead)
				w->fn(w->opaque, evs[i].events);
		}
		reap_dead(l);
	}
	return 0;
}
