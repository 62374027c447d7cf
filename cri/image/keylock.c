/* Named locks in memory for the image store. */
#include "keylock.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

void image_keylock_init(struct image_keylock *k)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->freed, NULL);
}

void image_keylock_destroy(struct image_keylock *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->held[i]);
	free(k->held);
	pthread_cond_destroy(&k->freed);
	pthread_mutex_destroy(&k->mu);
}

static int find(const struct image_keylock *k, const char *name)
{
	for (size_t i = 0; i < k->n; i++)
		if (!strcmp(k->held[i], name))
			return (int)i;
	return -1;
}

void image_keylock_acquire(struct image_keylock *k, const char *name)
{
	pthread_mutex_lock(&k->mu);
	while (find(k, name) >= 0)
		pthread_cond_wait(&k->freed, &k->mu);
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 8;
		k->held = pv_xrealloc(k->held, k->cap * sizeof(*k->held));
	}
	k->held[k->n++] = pv_xstrdup(name);
	pthread_mutex_unlock(&k->mu);
}

void image_keylock_release(struct image_keylock *k, const char *name)
{
	pthread_mutex_lock(&k->mu);
	int i = find(k, name);
	if (i >= 0) {
		free(k->held[i]);
		k->held[i] = k->held[--k->n];
	}
	pthread_cond_broadcast(&k->freed);
	pthread_mutex_unlock(&k->mu);
}

struct image_keylock_hold image_keylock_hold(struct image_keylock *k, const char *name)
{
	image_keylock_acquire(k, name);
	return (struct image_keylock_hold){ .k = k, .name = pv_xstrdup(name) };
}

void image_keylock_hold_release(struct image_keylock_hold *h)
{
	if (!h->name)
		return;
	image_keylock_release(h->k, h->name);
	free(h->name);
	h->name = NULL;
}
