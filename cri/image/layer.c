#include "layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "digest.h"
#include "util.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

static struct fs_node *node_new(mode_t mode)
{
	struct fs_node *n = pv_xcalloc(1, sizeof(*n));
	n->mode = mode;
	return n;
}

static void xattrs_free(struct fs_xattr *x)
{
	while (x) {
		struct fs_xattr *next = x->next;
		free(x->name);
		free(x->value);
		free(x);
		x = next;
	}
}

static void node_unref(struct fs_node *n);

static void dent_free(struct fs_dent *d)
{
	node_unref(d->node);
	free(d->name);
	free(d);
}

static void node_unref(struct fs_node *n)
{
	if (!n || --n->refs > 0)
		return;
	struct fs_dent *d = n->children;
	while (d) {
		struct fs_dent *next = d->next;
		dent_free(d);
		d = next;
	}
	xattrs_free(n->xattrs);
	free(n->target);
	free(n);
}

int fs_tree_new(const char *spool_dir, struct fs_tree **out, pv_err_t **err)
{
	int fd = open(spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "creating spool file in %s", spool_dir);
	struct fs_tree *t = pv_xcalloc(1, sizeof(*t));
	t->spool_fd = fd;
	t->root = node_new(S_IFDIR | 0755);
	t->root->refs = 1;
	*out = t;
	return 0;
}

void fs_tree_set_limits(struct fs_tree *t, uint64_t max_bytes, uint64_t max_entries)
{
	t->max_unpacked = max_bytes;
	t->max_entries = max_entries;
}

/* layer: uncompressed bytes of the current layer read so far. */
static int check_bytes(struct fs_tree *t, uint64_t layer, pv_err_t **err)
{
	if (t->max_unpacked && t->unpacked + layer > t->max_unpacked)
		return pv_err_set(err, PV_RESOURCE_EXHAUSTED, EFBIG,
				  "the image unpacks to more than %llu bytes (image.max_unpacked_bytes)",
				  (unsigned long long)t->max_unpacked);
	return 0;
}

/* Uncompressed bytes the tar reader has taken from this layer. */
static uint64_t layer_bytes(struct archive *a)
{
	la_int64_t n = archive_filter_bytes(a, 0);
	return n > 0 ? (uint64_t)n : 0;
}

void fs_tree_free(struct fs_tree *t)
{
	if (!t)
		return;
	node_unref(t->root);
	if (t->spool_fd >= 0)
		close(t->spool_fd);
	free(t);
}

static struct fs_dent *dir_find(struct fs_node *dir, const char *name, struct fs_dent ***link)
{
	struct fs_dent **pp = &dir->children;
	for (; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->name, name)) {
			if (link)
				*link = pp;
			return *pp;
		}
	return NULL;
}

static void dir_remove(struct fs_node *dir, struct fs_dent **link)
{
	struct fs_dent *d = *link;
	*link = d->next;
	dir->n_children--;
	dent_free(d);
}

static struct fs_dent *dir_add(struct fs_node *dir, const char *name, struct fs_node *n, int layer)
{
	struct fs_dent *d = pv_xcalloc(1, sizeof(*d));
	d->name = pv_xstrdup(name);
	d->node = n;
	d->layer = layer;
	n->refs++;
	d->next = dir->children;
	dir->children = d;
	dir->n_children++;
	return d;
}

/* Split a tar path into components, rejecting anything that could leave the root. */
static int split_path(const char *path, char ***out, size_t *n_out, pv_err_t **err)
{
	if (!path || !*path)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "layer entry with an empty path");
	if (path[0] == '/')
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "layer entry \"%s\": absolute path", path);
	cleanup_free char *buf = pv_xstrdup(path);
	size_t n = 0, cap = 8;
	char **v = pv_xcalloc(cap, sizeof(char *));
	char *save = NULL;
	for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..") || strlen(c) > 255) {
			for (size_t i = 0; i < n; i++)
				free(v[i]);
			free(v);
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "layer entry \"%s\": %s", path,
					  strlen(c) > 255 ? "name too long" : "\"..\" escapes the root");
		}
		if (n + 1 >= cap)
			v = pv_xrealloc(v, (cap *= 2) * sizeof(char *));
		v[n++] = pv_xstrdup(c);
	}
	v[n] = NULL;
	*out = v;
	*n_out = n;
	return 0;
}

static void comps_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Walk to the directory holding the last component; create missing parents if asked. */
static int walk_parent(struct fs_tree *t, const char *path, char **comps, size_t n, int create,
		       struct fs_node **out, pv_err_t **err)
{
	struct fs_node *dir = t->root;
	for (size_t i = 0; i + 1 < n; i++) {
		struct fs_dent *d = dir_find(dir, comps[i], NULL);
		if (!d) {
			if (!create)
				return pv_err_set(err, PV_INVALID_ARGUMENT, ENOENT, "layer entry \"%s\": no such parent",
						  path);
			d = dir_add(dir, comps[i], node_new(S_IFDIR | 0755), t->layer);
		}
		if (S_ISLNK(d->node->mode))
			return pv_err_set(err, PV_INVALID_ARGUMENT, ELOOP,
					  "layer entry \"%s\": path goes through symlink \"%s\"", path, comps[i]);
		if (!S_ISDIR(d->node->mode))
			return pv_err_set(err, PV_INVALID_ARGUMENT, ENOTDIR,
					  "layer entry \"%s\": \"%s\" is not a directory", path, comps[i]);
		dir = d->node;
	}
	*out = dir;
	return 0;
}

struct fs_node *fs_tree_lookup(struct fs_tree *t, const char *path)
{
	char **comps;
	size_t n;
	if (split_path(path, &comps, &n, NULL) < 0)
		return NULL;
	struct fs_node *cur = t->root;
	for (size_t i = 0; i < n && cur; i++) {
		struct fs_dent *d = S_ISDIR(cur->mode) ? dir_find(cur, comps[i], NULL) : NULL;
		cur = d ? d->node : NULL;
	}
	comps_free(comps, n);
	return cur;
}

static int whiteout(struct fs_tree *t, struct fs_node *dir, const char *name)
{
	if (!strcmp(name, WH_OPAQUE)) {
		struct fs_dent **pp = &dir->children;
		while (*pp) {
			if ((*pp)->layer < t->layer)
				dir_remove(dir, pp);
			else
				pp = &(*pp)->next;
		}
		return 0;
	}
	struct fs_dent **link;
	struct fs_dent *d = dir_find(dir, name + strlen(WH_PREFIX), &link);
	if (d && d->layer < t->layer)
		dir_remove(dir, link);
	return 0;
}

static int read_xattrs(struct archive_entry *e, struct fs_node *n)
{
	const char *name;
	const void *val;
	size_t len;
	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &name, &val, &len) == ARCHIVE_OK) {
		struct fs_xattr *x = pv_xcalloc(1, sizeof(*x));
		x->name = pv_xstrdup(name);
		x->value = pv_xmalloc(len ? len : 1);
		memcpy(x->value, val, len);
		x->len = len;
		x->next = n->xattrs;
		n->xattrs = x;
	}
	return 0;
}

static int spool_data(struct fs_tree *t, struct archive *a, struct fs_node *n, const char *path, pv_err_t **err)
{
	n->data_off = t->spool_len;
	int64_t want = n->size, got = 0;
	char buf[65536];
	for (;;) {
		la_ssize_t r = archive_read_data(a, buf, sizeof(buf));
		if (r < 0)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EIO, "layer entry \"%s\": %s", path,
					  archive_error_string(a));
		if (r == 0)
			break;
		if (got + r > want)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EIO, "layer entry \"%s\": more data than its size",
					  path);
		/* A small layer that inflates to a huge file is stopped here, not after the spool filled up. */
		if (check_bytes(t, layer_bytes(a), err) < 0)
			return -1;
		if (pwrite(t->spool_fd, buf, r, t->spool_len + got) != r)
			return pv_err_sys(err, PV_INTERNAL, "writing spool file");
		got += r;
	}
	if (got != want)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EIO, "layer entry \"%s\": truncated (%lld of %lld bytes)",
				  path, (long long)got, (long long)want);
	t->spool_len += want;
	return 0;
}

/* Another name for an existing non-directory inode of the tree; the target is never followed out. */
static int apply_hardlink(struct fs_tree *t, struct fs_node *dir, const char *name, const char *path,
			  const char *hardlink, pv_err_t **err)
{
	char **hc;
	size_t hn;
	if (split_path(hardlink, &hc, &hn, err) < 0) {
		pv_err_prefix(err, "hardlink \"%s\"", path);
		return -1;
	}
	struct fs_node *hdir = NULL;
	int r = hn ? walk_parent(t, hardlink, hc, hn, 0, &hdir, err) : 0;
	struct fs_dent *target = r == 0 && hdir ? dir_find(hdir, hc[hn - 1], NULL) : NULL;
	comps_free(hc, hn);
	if (r < 0) {
		pv_err_prefix(err, "hardlink \"%s\"", path);
		return -1;
	}
	if (!target || S_ISDIR(target->node->mode))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "layer entry \"%s\": hardlink target \"%s\" is missing or a directory", path, hardlink);
	struct fs_node *node = target->node;
	struct fs_dent **link;
	struct fs_dent *old = dir_find(dir, name, &link);
	if (old && old->node == node)
		return 0;
	node->refs++; /* keep it alive while replacing */
	if (old)
		dir_remove(dir, link);
	dir_add(dir, name, node, t->layer);
	node->refs--;
	return 0;
}

static int apply_entry(struct fs_tree *t, struct archive *a, struct archive_entry *e, pv_err_t **err)
{
	const char *path = archive_entry_pathname(e);
	char **comps;
	size_t n;
	if (split_path(path, &comps, &n, err) < 0)
		return -1;
	int r = 0;
	struct fs_node *dir;
	if (n == 0) { /* "./": the root's own metadata */
		if (archive_entry_filetype(e) == AE_IFDIR) {
			t->root->mode = S_IFDIR | (archive_entry_perm(e) & 07777);
			t->root->uid = archive_entry_uid(e);
			t->root->gid = archive_entry_gid(e);
			t->root->mtime = archive_entry_mtime(e);
		}
		goto out;
	}
	if ((r = walk_parent(t, path, comps, n, 1, &dir, err)) < 0)
		goto out;
	const char *name = comps[n - 1];
	if (!strncmp(name, WH_PREFIX, strlen(WH_PREFIX))) {
		r = whiteout(t, dir, name);
		goto out;
	}
	const char *hardlink = archive_entry_hardlink(e);
	if (hardlink) {
		r = apply_hardlink(t, dir, name, path, hardlink, err);
		goto out;
	}
	struct fs_node *node = NULL;
	mode_t type;
	switch (archive_entry_filetype(e)) {
	case AE_IFREG: type = S_IFREG; break;
	case AE_IFDIR: type = S_IFDIR; break;
	case AE_IFLNK: type = S_IFLNK; break;
	case AE_IFCHR: type = S_IFCHR; break;
	case AE_IFBLK: type = S_IFBLK; break;
	case AE_IFIFO: type = S_IFIFO; break;
	case AE_IFSOCK: type = S_IFSOCK; break;
	default:
		r = pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "layer entry \"%s\": unsupported file type", path);
		goto out;
	}
	struct fs_dent **link;
	struct fs_dent *old = dir_find(dir, name, &link);
	if (old && type == S_IFDIR && S_ISDIR(old->node->mode)) {
		node = old->node; /* merge: keep the children, take the new metadata */
		xattrs_free(node->xattrs);
		node->xattrs = NULL;
	} else {
		if (old)
			dir_remove(dir, link);
		node = node_new(type);
		dir_add(dir, name, node, t->layer);
	}
	node->mode = type | (archive_entry_perm(e) & 07777);
	node->uid = archive_entry_uid(e);
	node->gid = archive_entry_gid(e);
	node->mtime = archive_entry_mtime(e);
	read_xattrs(e, node);
	if (type == S_IFLNK) {
		const char *tg = archive_entry_symlink(e);
		if (!tg || !*tg) {
			r = pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "layer entry \"%s\": empty symlink", path);
			goto out;
		}
		node->target = pv_xstrdup(tg);
	} else if (type == S_IFCHR || type == S_IFBLK) {
		node->rdev = archive_entry_rdev(e);
	} else if (type == S_IFREG) {
		node->size = archive_entry_size(e);
		if (node->size < 0) {
			r = pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "layer entry \"%s\": negative size", path);
			goto out;
		}
		r = spool_data(t, a, node, path, err);
	}
out:
	comps_free(comps, n);
	return r;
}

static int apply(struct fs_tree *t, struct archive *a, pv_err_t **err)
{
	t->layer++;
	struct archive_entry *e;
	for (;;) {
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r == ARCHIVE_RETRY)
			continue;
		if (r < ARCHIVE_WARN)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EIO, "reading layer: %s", archive_error_string(a));
		if (t->max_entries && ++t->entries > t->max_entries)
			return pv_err_set(err, PV_RESOURCE_EXHAUSTED, EFBIG,
					  "the image has more than %llu files (image.max_unpacked_entries)",
					  (unsigned long long)t->max_entries);
		if (check_bytes(t, layer_bytes(a), err) < 0 || apply_entry(t, a, e, err) < 0)
			return -1;
	}
	return 0;
}

/* A layer read to its end: its bytes count toward the limit of the next. */
static int finish_layer(struct fs_tree *t, uint64_t bytes, pv_err_t **err)
{
	if (check_bytes(t, bytes, err) < 0)
		return -1;
	t->unpacked += bytes;
	return 0;
}

static struct archive *reader(void)
{
	struct archive *a = archive_read_new();
	if (!a)
		abort();
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_none(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_empty(a);
	return a;
}

int fs_tree_apply_file(struct fs_tree *t, const char *path, pv_err_t **err)
{
	struct archive *a = reader();
	int r;
	if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK)
		r = pv_err_set(err, PV_INVALID_ARGUMENT, EIO, "opening layer %s: %s", path, archive_error_string(a));
	else
		r = apply(t, a, err);
	if (r == 0)
		r = finish_layer(t, layer_bytes(a), err);
	archive_read_free(a);
	return r;
}

int fs_tree_apply_mem(struct fs_tree *t, const void *buf, size_t len, pv_err_t **err)
{
	struct archive *a = reader();
	int r;
	if (archive_read_open_memory(a, buf, len) != ARCHIVE_OK)
		r = pv_err_set(err, PV_INVALID_ARGUMENT, EIO, "opening layer: %s", archive_error_string(a));
	else
		r = apply(t, a, err);
	if (r == 0)
		r = finish_layer(t, layer_bytes(a), err);
	archive_read_free(a);
	return r;
}

static void count(struct fs_tree *t, struct fs_node *n)
{
	if (n->ino == 1) /* seen (hardlink) */
		return;
	n->ino = 1;
	t->n_nodes++;
	if (S_ISREG(n->mode))
		t->data_bytes += n->size;
	for (struct fs_dent *d = n->children; d; d = d->next)
		count(t, d->node);
}

static void uncount(struct fs_node *n)
{
	if (n->ino == 0)
		return;
	n->ino = 0;
	for (struct fs_dent *d = n->children; d; d = d->next)
		uncount(d->node);
}

void fs_tree_count(struct fs_tree *t)
{
	t->n_nodes = t->data_bytes = 0;
	count(t, t->root);
	uncount(t->root);
}

/* The decompressed stream of a layer, hashed as the tar reader pulls it (one pass gives the diff ID). */
struct hashed_stream {
	struct archive *outer;
	struct image_hasher *hasher;
	char *buf;
	int failed;
	uint64_t bytes; /* decompressed so far */
};

static la_ssize_t hashed_read(struct archive *inner, void *ud, const void **out)
{
	struct hashed_stream *hs = ud;
	la_ssize_t n = archive_read_data(hs->outer, hs->buf, 1 << 16);
	if (n < 0) {
		hs->failed = 1;
		archive_set_error(inner, EIO, "decompressing: %s", archive_error_string(hs->outer));
		return -1;
	}
	image_hasher_update(hs->hasher, hs->buf, n);
	hs->bytes += (uint64_t)n;
	*out = hs->buf;
	return n;
}

int fs_tree_apply_file_digest(struct fs_tree *t, const char *path, char *diff_id, pv_err_t **err)
{
	struct archive *outer = archive_read_new();
	if (!outer)
		abort();
	archive_read_support_filter_gzip(outer);
	archive_read_support_filter_zstd(outer);
	archive_read_support_filter_none(outer);
	archive_read_support_format_raw(outer);
	struct hashed_stream hs = { .outer = outer, .hasher = image_hasher_new(), .buf = pv_xmalloc(1 << 16) };
	struct archive_entry *e;
	int r = 0;
	if (archive_read_open_filename(outer, path, 1 << 16) != ARCHIVE_OK ||
	    archive_read_next_header(outer, &e) != ARCHIVE_OK) {
		r = pv_err_set(err, PV_INVALID_ARGUMENT, EIO, "opening layer %s: %s", path,
			       archive_error_string(outer));
	} else {
		struct archive *inner = archive_read_new();
		if (!inner)
			abort();
		archive_read_support_format_tar(inner);
		archive_read_support_format_empty(inner);
		if (archive_read_open(inner, &hs, NULL, hashed_read, NULL) != ARCHIVE_OK)
			r = pv_err_set(err, PV_INVALID_ARGUMENT, EIO, "reading layer: %s", archive_error_string(inner));
		else
			r = apply(t, inner, err);
		archive_read_free(inner);
		/* hash what follows the end-of-archive marker too: the diff ID covers every byte
		 * (and counts toward the limit: zeros after the tar would still cost their inflation) */
		const void *dummy;
		while (r == 0 && !hs.failed && hashed_read(outer, &hs, &dummy) > 0)
			r = check_bytes(t, hs.bytes, err);
		if (r == 0 && hs.failed)
			r = pv_err_set(err, PV_INVALID_ARGUMENT, EIO, "decompressing layer: %s",
				       archive_error_string(outer));
		if (r == 0)
			r = finish_layer(t, hs.bytes, err);
	}
	archive_read_free(outer);
	free(hs.buf);
	if (r < 0) {
		image_hasher_free(hs.hasher);
		return r;
	}
	image_hasher_final(hs.hasher, diff_id);
	return 0;
}
