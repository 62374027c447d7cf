/*
 * A root filesystem tree built in memory from OCI layers (libarchive), whiteouts
 * applied; file contents are spooled to an unlinked temp file. ext4.c writes it out.
 */
#ifndef PV_IMAGE_LAYER_H
#define PV_IMAGE_LAYER_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct fs_xattr {
	char *name;
	void *value;
	size_t len;
	struct fs_xattr *next;
};

struct fs_dent;

struct fs_node {
	mode_t mode; /* with file type bits */
	uid_t uid;
	gid_t gid;
	int64_t mtime;
	dev_t rdev;
	int64_t size;     /* regular files */
	int64_t data_off; /* offset of the contents in the spool file */
	char *target;     /* symlinks */
	struct fs_xattr *xattrs;
	unsigned refs;    /* directory entries naming it (hardlinks) */
	uint32_t ino;     /* assigned while writing ext4 */
	struct fs_dent *children; /* directories */
	size_t n_children;
};

struct fs_dent {
	char *name;
	struct fs_node *node;
	int layer; /* layer that created the entry */
	struct fs_dent *next;
};

struct fs_tree {
	struct fs_node *root;
	int spool_fd;
	int64_t spool_len;
	int layer;
	/* statistics for sizing the ext4 image */
	uint64_t n_nodes, data_bytes;
	/* limits over all layers applied (0: none) and what they have taken so far */
	uint64_t max_unpacked, max_entries;
	uint64_t unpacked, entries; /* uncompressed bytes of finished layers; entries read */
};

/* spool_dir: where the unlinked spool file lives (same filesystem as the output is best). */
int fs_tree_new(const char *spool_dir, struct fs_tree **out, pv_err_t **err);
void fs_tree_free(struct fs_tree *t);
/*
 * Stop unpacking (RESOURCE_EXHAUSTED, naming the config key) once the layers applied to t
 * hold more than max_bytes uncompressed bytes (tar headers and data, counted as they are
 * decompressed) or more than max_entries entries. 0 leaves a limit off.
 */
void fs_tree_set_limits(struct fs_tree *t, uint64_t max_bytes, uint64_t max_entries);
/* Apply one layer (tar, optionally gzip/zstd compressed: auto-detected) on top. */
int fs_tree_apply_file(struct fs_tree *t, const char *path, pv_err_t **err);
int fs_tree_apply_mem(struct fs_tree *t, const void *buf, size_t len, pv_err_t **err);
/* Same, in one pass also giving the sha256 of the uncompressed layer (its diff ID), out[72]. */
int fs_tree_apply_file_digest(struct fs_tree *t, const char *path, char *diff_id, pv_err_t **err);
/* Look a path up (no symlinks followed); NULL if absent. */
struct fs_node *fs_tree_lookup(struct fs_tree *t, const char *path);
/* Recount n_nodes/data_bytes over what is reachable now. */
void fs_tree_count(struct fs_tree *t);

#endif
