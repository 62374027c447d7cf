/* Layer application: whiteouts, opaque dirs, metadata, and hand-made malicious tar layers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../ext4.h"
#include "../layer.h"
#include "error.h"
#include "util.h"

#define TAR_MAX (1 << 20)

struct tar {
	struct archive *a;
	char *buf;
	size_t used;
};

static void tar_open(struct tar *t)
{
	t->buf = pv_xcalloc(1, TAR_MAX);
	t->used = 0;
	t->a = archive_write_new();
	archive_write_set_format_pax_restricted(t->a);
	assert_int_equal(archive_write_open_memory(t->a, t->buf, TAR_MAX, &t->used), ARCHIVE_OK);
}

static void tar_add(struct tar *t, const char *path, mode_t mode, const char *data, const char *link, int hard)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, path);
	archive_entry_set_mode(e, mode);
	archive_entry_set_uid(e, 1000);
	archive_entry_set_gid(e, 100);
	archive_entry_set_mtime(e, 1700000000, 0);
	if (S_ISCHR(mode))
		archive_entry_set_rdev(e, makedev(1, 3));
	if (link && hard)
		archive_entry_set_hardlink(e, link);
	else if (link)
		archive_entry_set_symlink(e, link);
	if (!strcmp(path, "x/attr"))
		archive_entry_xattr_add_entry(e, "user.k", "v", 1);
	archive_entry_set_size(e, data ? strlen(data) : 0);
	assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
	if (data)
		assert_int_equal(archive_write_data(t->a, data, strlen(data)), (la_ssize_t)strlen(data));
	archive_entry_free(e);
}

static int tar_apply(struct tar *t, struct fs_tree *tree, pv_err_t **err)
{
	archive_write_close(t->a);
	archive_write_free(t->a);
	int r = fs_tree_apply_mem(tree, t->buf, t->used, err);
	free(t->buf);
	return r;
}

static struct fs_tree *new_tree(void)
{
	struct fs_tree *t;
	pv_err_t *e = NULL;
	assert_int_equal(fs_tree_new("/tmp", &t, &e), 0);
	return t;
}

static void test_whiteouts(void **state)
{
	struct fs_tree *t = new_tree();
	pv_err_t *e = NULL;
	struct tar l;
	tar_open(&l);
	tar_add(&l, "a/x", S_IFREG | 0644, "x", NULL, 0);
	tar_add(&l, "a/y", S_IFREG | 0644, "y", NULL, 0);
	tar_add(&l, "d/", S_IFDIR | 0750, NULL, NULL, 0);
	tar_add(&l, "d/old", S_IFREG | 0644, "old", NULL, 0);
	tar_add(&l, "d/sub/deep", S_IFREG | 0644, "deep", NULL, 0);
	assert_int_equal(tar_apply(&l, t, &e), 0);
	tar_open(&l);
	tar_add(&l, "d/new", S_IFREG | 0644, "new", NULL, 0); /* same layer as the opaque marker: kept */
	tar_add(&l, "a/.wh.x", S_IFREG | 0644, NULL, NULL, 0);
	tar_add(&l, "d/.wh..wh..opq", S_IFREG | 0644, NULL, NULL, 0);
	tar_add(&l, "a/.wh.missing", S_IFREG | 0644, NULL, NULL, 0);
	assert_int_equal(tar_apply(&l, t, &e), 0);
	assert_null(fs_tree_lookup(t, "a/x"));
	assert_null(fs_tree_lookup(t, "a/.wh.x"));
	assert_non_null(fs_tree_lookup(t, "a/y"));
	assert_null(fs_tree_lookup(t, "d/old"));
	assert_null(fs_tree_lookup(t, "d/sub/deep"));
	assert_non_null(fs_tree_lookup(t, "d/new"));
	assert_null(fs_tree_lookup(t, "d/.wh..wh..opq"));
	assert_int_equal(fs_tree_lookup(t, "d")->mode, S_IFDIR | 0750);
	/* a later layer replaces a file by a directory and back */
	tar_open(&l);
	tar_add(&l, "a/y/", S_IFDIR | 0755, NULL, NULL, 0);
	tar_add(&l, "d", S_IFREG | 0600, "now a file", NULL, 0);
	assert_int_equal(tar_apply(&l, t, &e), 0);
	assert_true(S_ISDIR(fs_tree_lookup(t, "a/y")->mode));
	assert_int_equal(fs_tree_lookup(t, "d")->mode, S_IFREG | 0600);
	assert_null(fs_tree_lookup(t, "d/new"));
	fs_tree_free(t);
}

static void test_metadata(void **state)
{
	struct fs_tree *t = new_tree();
	pv_err_t *e = NULL;
	struct tar l;
	tar_open(&l);
	tar_add(&l, "./", S_IFDIR | 0700, NULL, NULL, 0);
	tar_add(&l, "x/file", S_IFREG | 04755, "data", NULL, 0);
	tar_add(&l, "x/hard", S_IFREG | 0644, NULL, "x/file", 1);
	tar_add(&l, "x/sym", S_IFLNK | 0777, NULL, "/etc/passwd", 0);
	tar_add(&l, "x/null", S_IFCHR | 0666, NULL, NULL, 0);
	tar_add(&l, "x/fifo", S_IFIFO | 0600, NULL, NULL, 0);
	tar_add(&l, "x/attr", S_IFREG | 0644, "a", NULL, 0);
	assert_int_equal(tar_apply(&l, t, &e), 0);
	assert_int_equal(t->root->mode, S_IFDIR | 0700);
	struct fs_node *f = fs_tree_lookup(t, "x/file");
	assert_int_equal(f->mode, S_IFREG | 04755);
	assert_int_equal(f->uid, 1000);
	assert_int_equal(f->gid, 100);
	assert_int_equal(f->size, 4);
	assert_int_equal(f->refs, 2);
	assert_ptr_equal(fs_tree_lookup(t, "x/hard"), f);
	assert_string_equal(fs_tree_lookup(t, "x/sym")->target, "/etc/passwd");
	struct fs_node *n = fs_tree_lookup(t, "x/null");
	assert_true(S_ISCHR(n->mode));
	assert_int_equal(major(n->rdev), 1);
	assert_int_equal(minor(n->rdev), 3);
	assert_true(S_ISFIFO(fs_tree_lookup(t, "x/fifo")->mode));
	struct fs_node *a = fs_tree_lookup(t, "x/attr");
	assert_non_null(a->xattrs);
	assert_string_equal(a->xattrs->name, "user.k");

	/* ...and the ext4 image of it is clean */
	char dir[] = "/tmp/pv-test-ext4-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *img = pv_xasprintf("%s/root.ext4", dir);
	assert_int_equal(image_ext4_write(t, img, &e), 0);
	char *cmd = pv_xasprintf("e2fsck -fn %s >/dev/null 2>&1", img);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	cmd = pv_xasprintf("debugfs -R 'stat /x/file' %s 2>/dev/null | grep -q 'Mode:  04755'", img);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	cmd = pv_xasprintf("debugfs -R 'stat /x/file' %s 2>/dev/null | grep -q 'Links: 2'", img);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	unlink(img);
	rmdir(dir);
	free(img);
	fs_tree_free(t);
}

static void escape(const char *path, mode_t mode, const char *link, int hard, const char *want)
{
	struct fs_tree *t = new_tree();
	pv_err_t *e = NULL;
	struct tar l;
	tar_open(&l);
	tar_add(&l, "link", S_IFLNK | 0777, NULL, "/etc", 0);
	tar_add(&l, "dir/", S_IFDIR | 0755, NULL, NULL, 0);
	tar_add(&l, path, mode, S_ISREG(mode) && !link ? "evil" : NULL, link, hard);
	assert_int_not_equal(tar_apply(&l, t, &e), 0);
	assert_non_null(e);
	assert_int_equal(e->status, PV_INVALID_ARGUMENT);
	if (!strstr(e->msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", e->msg, want);
	pv_err_free(e);
	fs_tree_free(t);
}

static void test_escapes(void **state)
{
	escape("../evil", S_IFREG | 0644, NULL, 0, "escapes the root");
	escape("dir/../../evil", S_IFREG | 0644, NULL, 0, "escapes the root");
	escape("/etc/evil", S_IFREG | 0644, NULL, 0, "absolute path");
	escape("link/passwd", S_IFREG | 0644, NULL, 0, "through symlink");
	escape("h", S_IFREG | 0644, "../../etc/shadow", 1, "escapes the root");
	escape("h", S_IFREG | 0644, "/etc/shadow", 1, "absolute path");
	escape("h", S_IFREG | 0644, "link/shadow", 1, "symlink");
	escape("h", S_IFREG | 0644, "nothere", 1, "missing");
	escape("h", S_IFREG | 0644, "dir", 1, "directory");
	escape("dir/../.wh.x", S_IFREG | 0644, NULL, 0, "escapes the root");
}

static void test_garbage(void **state)
{
	struct fs_tree *t = new_tree();
	pv_err_t *e = NULL;
	static const char junk[2048] = "this is not a tar archive at all";
	assert_int_not_equal(fs_tree_apply_mem(t, junk, sizeof(junk), &e), 0);
	pv_err_free(e);
	e = NULL;
	/* a tar cut in the middle of a file's data */
	struct tar l;
	tar_open(&l);
	char *big = pv_xcalloc(1, 20000);
	memset(big, 'z', 19999);
	tar_add(&l, "big", S_IFREG | 0644, big, NULL, 0);
	archive_write_close(l.a);
	archive_write_free(l.a);
	assert_int_not_equal(fs_tree_apply_mem(t, l.buf, 512 + 8000, &e), 0);
	assert_non_null(e);
	pv_err_free(e);
	free(big);
	free(l.buf);
	fs_tree_free(t);
}

/* buf (len bytes) as one gzip stream, in a heap buffer of *out_len bytes. */
static char *gzip_buf(const char *buf, size_t len, size_t *out_len)
{
	size_t cap = len / 100 + (1 << 16);
	char *out = pv_xmalloc(cap);
	struct archive *a = archive_write_new();
	archive_write_set_format_raw(a);
	archive_write_add_filter_gzip(a);
	assert_int_equal(archive_write_open_memory(a, out, cap, out_len), ARCHIVE_OK);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_pathname(e, "layer");
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, buf, len), (la_ssize_t)len);
	archive_entry_free(e);
	archive_write_close(a);
	archive_write_free(a);
	return out;
}

/* An uncompressed tar with one file of n zero bytes (and room after it: *len is the tar's size). */
static char *zero_tar(size_t n, size_t room, size_t *len)
{
	size_t cap = n + room + (1 << 16);
	char *buf = pv_xcalloc(1, cap);
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_open_memory(a, buf, cap, len), ARCHIVE_OK);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, "zeros");
	archive_entry_set_mode(e, S_IFREG | 0644);
	archive_entry_set_size(e, (la_int64_t)n);
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	char *z = pv_xcalloc(1, n ? n : 1);
	assert_int_equal(archive_write_data(a, z, n), (la_ssize_t)n);
	free(z);
	archive_entry_free(e);
	archive_write_close(a);
	archive_write_free(a);
	return buf;
}

static void expect_exhausted(int r, pv_err_t **ep, const char *key)
{
	pv_err_t *e = *ep;
	*ep = NULL;
	assert_true(r < 0);
	assert_int_equal(e->status, PV_RESOURCE_EXHAUSTED);
	if (!strstr(e->msg, key))
		fail_msg("\"%s\" lacks \"%s\"", e->msg, key);
	pv_err_free(e);
}

/* A small gzip that inflates past the limit is stopped as it inflates: the spool stays near the limit. */
static void test_limit_bytes(void **state)
{
	size_t tlen, glen;
	char *tar = zero_tar(8 << 20, 0, &tlen);
	char *gz = gzip_buf(tar, tlen, &glen);
	assert_true(glen < (64 << 10));
	struct fs_tree *t = new_tree();
	fs_tree_set_limits(t, 1 << 20, 0);
	pv_err_t *e = NULL;
	expect_exhausted(fs_tree_apply_mem(t, gz, glen, &e), &e, "more than 1048576 bytes (image.max_unpacked_bytes)");
	assert_true(t->spool_len <= (1 << 20) + (256 << 10));
	fs_tree_free(t);
	free(gz);
	free(tar);

	/* Two layers under the limit each, over it together. */
	tar = zero_tar(600 << 10, 0, &tlen);
	t = new_tree();
	fs_tree_set_limits(t, 1 << 20, 0);
	e = NULL;
	assert_int_equal(fs_tree_apply_mem(t, tar, tlen, &e), 0);
	assert_true(t->unpacked >= (600 << 10));
	expect_exhausted(fs_tree_apply_mem(t, tar, tlen, &e), &e, "image.max_unpacked_bytes");
	fs_tree_free(t);
	/* No limit: the same passes. */
	t = new_tree();
	assert_int_equal(fs_tree_apply_mem(t, tar, tlen, &e), 0);
	assert_int_equal(fs_tree_apply_mem(t, tar, tlen, &e), 0);
	fs_tree_free(t);
	free(tar);
}

/* The path pulls take (digest of the decompressed stream): bytes after the tar's end count too. */
static void test_limit_digest_path(void **state)
{
	size_t tlen, glen;
	char *tar = zero_tar(1024, 8 << 20, &tlen);
	tlen += 8 << 20; /* zeros after the end-of-archive marker, still inflated and hashed */
	char *gz = gzip_buf(tar, tlen, &glen);
	char path[] = "/tmp/pv-layer-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(pv_write_full(fd, gz, glen), 0);
	close(fd);
	char diff_id[80];
	struct fs_tree *t = new_tree();
	pv_err_t *e = NULL;
	assert_int_equal(fs_tree_apply_file_digest(t, path, diff_id, &e), 0);
	fs_tree_free(t);
	t = new_tree();
	fs_tree_set_limits(t, 1 << 20, 0);
	expect_exhausted(fs_tree_apply_file_digest(t, path, diff_id, &e), &e, "image.max_unpacked_bytes");
	fs_tree_free(t);
	unlink(path);
	free(gz);
	free(tar);
}

static void test_limit_entries(void **state)
{
	struct tar l;
	tar_open(&l);
	char name[32];
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		tar_add(&l, name, S_IFREG | 0644, "x", NULL, 0);
	}
	struct fs_tree *t = new_tree();
	fs_tree_set_limits(t, 0, 50);
	pv_err_t *e = NULL;
	expect_exhausted(tar_apply(&l, t, &e), &e, "more than 50 files (image.max_unpacked_entries)");
	fs_tree_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whiteouts),
		cmocka_unit_test(test_metadata),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_limit_bytes),
		cmocka_unit_test(test_limit_digest_path),
		cmocka_unit_test(test_limit_entries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
