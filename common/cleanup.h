/* Scope-bound ownership helpers (GCC/Clang cleanup attribute). */
#ifndef PV_CLEANUP_H
#define PV_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>

static inline void pv_freep(void *p)
{
	free(*(void **)p);
}

static inline void pv_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void pv_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define cleanup_free __attribute__((cleanup(pv_freep)))
#define cleanup_close __attribute__((cleanup(pv_closep)))
#define cleanup_fclose __attribute__((cleanup(pv_fclosep)))

/* Hand ownership out of a cleanup-managed variable. */
#define steal_pointer(pp)                                                      \
	({                                                                     \
		__typeof__(*(pp)) _tmp = *(pp);                                \
		*(pp) = NULL;                                                  \
		_tmp;                                                          \
	})

#define steal_fd(fdp)                                                          \
	({                                                                     \
		int _fd = *(fdp);                                              \
		*(fdp) = -1;                                                   \
		_fd;                                                           \
	})

#define PV_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
