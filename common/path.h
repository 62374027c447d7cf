/*
 * Paths that come from outside (a CRI caller, a pod's files), kept beneath a directory.
 *
 * The directory is the caller's to name and is resolved normally; below it nothing is
 * followed: no "..", no symlink, no absolute path that leaves it. A root process that
 * writes where a pod's log path says must not be steered to a file of the pod's choosing.
 */
#ifndef PV_PATH_H
#define PV_PATH_H

#include <sys/types.h>

#include "error.h"

/* path is absolute and has no "." or ".." component. */
int pv_path_is_clean_abs(const char *path);

/*
 * path (relative, or absolute and inside dir) as a clean path relative to dir, "." and
 * empty components dropped, in *rel (heap). A ".." component, an absolute path outside
 * dir, a path that names dir itself, or a dir that is not clean and absolute: -EINVAL,
 * INVALID_ARGUMENT naming `what`.
 */
int pv_path_beneath(const char *dir, const char *path, const char *what, char **rel, pv_err_t **err);

/*
 * Open the regular file rel (clean, relative: see pv_path_beneath) beneath dir: dir is
 * opened following symlinks, each component of rel is opened relative to the one before
 * without following any (openat + O_NOFOLLOW). flags are open(2) access flags for the
 * file (O_CREAT creates it with mode); O_CLOEXEC and O_NOCTTY are added. Returns the fd.
 * INVALID_ARGUMENT (naming `what`) when dir or a directory of rel does not exist, when a
 * component is a symlink, or when the file is not a regular file or has other hard links;
 * the file is opened non-blocking first, so a FIFO planted there cannot hang the caller.
 */
int pv_open_file_beneath(const char *dir, const char *rel, int flags, mode_t mode, const char *what,
			 pv_err_t **err);

#endif
