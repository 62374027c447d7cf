/*
 * Named locks in memory: one holder per name (a blob digest, a chain ID) at a time. The
 * image store serialises work on one blob or chain across podvisord's threads with these;
 * no other process uses a store at the same time (store.lock), so no lock file is needed.
 */
#ifndef PV_IMAGE_KEYLOCK_H
#define PV_IMAGE_KEYLOCK_H

#include <pthread.h>
#include <stddef.h>

struct image_keylock {
	pthread_mutex_t mu;
	pthread_cond_t freed;
	char **held; /* names held now */
	size_t n, cap;
};

void image_keylock_init(struct image_keylock *k);
void image_keylock_destroy(struct image_keylock *k);
/* Block until no one holds name, then hold it. */
void image_keylock_acquire(struct image_keylock *k, const char *name);
void image_keylock_release(struct image_keylock *k, const char *name);

/* A held name, released at the end of its scope. */
struct image_keylock_hold {
	struct image_keylock *k;
	char *name;
};
struct image_keylock_hold image_keylock_hold(struct image_keylock *k, const char *name);
void image_keylock_hold_release(struct image_keylock_hold *h);
#define cleanup_keylock __attribute__((cleanup(image_keylock_hold_release)))

#endif
