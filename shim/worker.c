/*
 * The shim's one worker thread: the VMM's blocking operations (qemu-img, QMP hot-plug)
 * run here, so the event loop never waits on them and a slow hot-plug delays no Watch,
 * Status or agent traffic.
 *
 * A job's run() executes on the worker and may touch only the job itself and the VMM
 * handle's hot-plug calls (sandbox/vmm.h says which are thread-safe); its done() runs
 * later on the loop, with the shim, and frees the job. Jobs run one at a time, in order.
 */
#include "shim.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct shim_worker {
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;      /* guards the two queues and stop */
	pthread_cond_t cond;
	struct shim_job *todo, **todo_tail;
	struct shim_job *done, **done_tail;
	bool stop;
	int evfd;                  /* written when a job is done */
	struct shim_watch *watch;
};

static void push(struct shim_job ***tail, struct shim_job *j)
{
	j->next = NULL;
	**tail = j;
	*tail = &j->next;
}

static struct shim_job *pop(struct shim_job **head, struct shim_job ***tail)
{
	struct shim_job *j = *head;
	if (j) {
		*head = j->next;
		if (!*head)
			*tail = head;
	}
	return j;
}

static void *worker_main(void *arg)
{
	struct shim_worker *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct shim_job *j = pop(&w->todo, &w->todo_tail);
		if (!j) {
			if (w->stop)
				break;
			pthread_cond_wait(&w->cond, &w->lock);
			continue;
		}
		pthread_mutex_unlock(&w->lock);
		j->run(j);
		pthread_mutex_lock(&w->lock);
		push(&w->done_tail, j);
		uint64_t one = 1;
		if (write(w->evfd, &one, sizeof(one)) < 0) {
			/* the counter is saturated: the loop is being woken anyway */
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Run the done() callbacks of finished jobs (on the loop). */
static void run_done(struct shim *s)
{
	struct shim_worker *w = s->worker;
	uint64_t n;
	if (read(w->evfd, &n, sizeof(n)) < 0) {
		/* nothing new */
	}
	for (;;) {
		pthread_mutex_lock(&w->lock);
		struct shim_job *j = pop(&w->done, &w->done_tail);
		pthread_mutex_unlock(&w->lock);
		if (!j)
			return;
		j->done(s, j);
	}
}

static void worker_event(void *opaque, uint32_t events)
{
	run_done(opaque);
}

int shim_worker_start(struct shim *s, pv_err_t **err)
{
	struct shim_worker *w = pv_xcalloc(1, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->todo_tail = &w->todo;
	w->done_tail = &w->done;
	s->worker = w;
	w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->evfd < 0)
		return pv_err_sys(err, PV_INTERNAL, "eventfd");
	w->watch = shim_loop_add(s->loop, w->evfd, EPOLLIN, worker_event, s, err);
	if (!w->watch)
		return -1;
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return pv_err_set(err, PV_INTERNAL, EAGAIN, "cannot start the shim's worker thread");
	w->started = true;
	return 0;
}

void shim_worker_submit(struct shim *s, struct shim_job *j)
{
	struct shim_worker *w = s->worker;
	pthread_mutex_lock(&w->lock);
	push(&w->todo_tail, j);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void shim_worker_stop(struct shim *s)
{
	struct shim_worker *w = s->worker;
	if (!w)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_cond_signal(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
		w->started = false;
	}
	/* The thread is gone: what it finished is answered now; done() may not submit more. */
	run_done(s);
	if (w->watch)
		shim_loop_del(s->loop, w->watch);
	if (w->evfd >= 0)
		close(w->evfd);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
	s->worker = NULL;
}

bool shim_worker_running(const struct shim *s)
{
	return s->worker != NULL;
}
