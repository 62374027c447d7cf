/* A bump allocator for one call's response: everything freed at once. */
#ifndef PV_CRI_ARENA_H
#define PV_CRI_ARENA_H

#include <stddef.h>

struct arena_block;
struct cri_arena {
	struct arena_block *head;
};

void *cri_arena_alloc(struct cri_arena *a, size_t size); /* zeroed, 16-byte aligned */
char *cri_arena_strdup(struct cri_arena *a, const char *s);
void cri_arena_free(struct cri_arena *a);

#endif
