/* Write an fs_tree as an ext4 image with libext2fs: no mount, no loop device, no root needed. */
#ifndef PV_IMAGE_EXT4_H
#define PV_IMAGE_EXT4_H

#include "error.h"
#include "layer.h"

/* Creates path (must not exist), sized to fit the tree. */
int image_ext4_write(struct fs_tree *t, const char *path, pv_err_t **err);

#endif
