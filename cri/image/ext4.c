#include "ext4.h"

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

#define BLOCK_SIZE 4096
#define INODE_SIZE 256

struct writer {
	ext2_filsys fs;
	struct fs_tree *tree;
	char *buf;
};

static int e2err(pv_err_t **err, errcode_t rc, const char *what, const char *name)
{
	int enospc = rc == EXT2_ET_BLOCK_ALLOC_FAIL || rc == EXT2_ET_INODE_ALLOC_FAIL || rc == EXT2_ET_DIR_NO_SPACE ||
		     rc == ENOSPC || rc == EXT2_ET_TOOSMALL;
	return pv_err_set(err, enospc ? PV_RESOURCE_EXHAUSTED : PV_INTERNAL, enospc ? ENOSPC : EIO,
			  "ext4: %s %s: %s", what, name ? name : "", error_message(rc));
}

static int file_type(mode_t m)
{
	if (S_ISREG(m))
		return EXT2_FT_REG_FILE;
	if (S_ISDIR(m))
		return EXT2_FT_DIR;
	if (S_ISLNK(m))
		return EXT2_FT_SYMLINK;
	if (S_ISCHR(m))
		return EXT2_FT_CHRDEV;
	if (S_ISBLK(m))
		return EXT2_FT_BLKDEV;
	if (S_ISFIFO(m))
		return EXT2_FT_FIFO;
	if (S_ISSOCK(m))
		return EXT2_FT_SOCK;
	return EXT2_FT_UNKNOWN;
}

static errcode_t link_entry(ext2_filsys fs, ext2_ino_t dir, const char *name, ext2_ino_t ino, int ft)
{
	errcode_t rc;
	for (int i = 0; i < 64; i++) {
		rc = ext2fs_link(fs, dir, name, ino, ft);
		if (rc != EXT2_ET_DIR_NO_SPACE)
			return rc;
		if ((rc = ext2fs_expand_dir(fs, dir)))
			return rc;
	}
	return EXT2_ET_DIR_NO_SPACE;
}

/* Give a new directory room for all its entries up front, so linking never fails for space. */
static errcode_t presize_dir(ext2_filsys fs, ext2_ino_t ino, const struct fs_node *n)
{
	uint64_t bytes = 24;
	for (const struct fs_dent *d = n->children; d; d = d->next)
		bytes += (8 + strlen(d->name) + 3) & ~3u;
	uint64_t blocks = (bytes + (BLOCK_SIZE - 264) - 1) / (BLOCK_SIZE - 264);
	for (uint64_t i = 1; i < blocks; i++) {
		errcode_t rc = ext2fs_expand_dir(fs, ino);
		if (rc)
			return rc;
	}
	return 0;
}

static void set_meta(struct ext2_inode *in, const struct fs_node *n)
{
	in->i_mode = n->mode;
	in->i_uid = n->uid & 0xffff;
	ext2fs_set_i_uid_high(*in, n->uid >> 16);
	in->i_gid = n->gid & 0xffff;
	ext2fs_set_i_gid_high(*in, n->gid >> 16);
	uint32_t t = n->mtime < 0 ? 0 : (uint32_t)n->mtime;
	in->i_atime = in->i_ctime = in->i_mtime = t;
}

static int set_xattrs(struct writer *w, ext2_ino_t ino, const struct fs_node *n, const char *name,
		      pv_err_t **err)
{
	if (!n->xattrs)
		return 0;
	struct ext2_xattr_handle *h;
	errcode_t rc = ext2fs_xattrs_open(w->fs, ino, &h);
	if (!rc)
		rc = ext2fs_xattrs_read(h);
	for (const struct fs_xattr *x = n->xattrs; !rc && x; x = x->next)
		rc = ext2fs_xattr_set(h, x->name, x->value, x->len);
	errcode_t rc2 = ext2fs_xattrs_close(&h);
	if (rc || rc2)
		return e2err(err, rc ? rc : rc2, "setting xattrs on", name);
	return 0;
}

static int write_data(struct writer *w, ext2_ino_t ino, const struct fs_node *n, const char *name, pv_err_t **err)
{
	ext2_file_t f;
	errcode_t rc = ext2fs_file_open(w->fs, ino, EXT2_FILE_WRITE, &f);
	if (rc)
		return e2err(err, rc, "opening", name);
	int64_t done = 0;
	while (!rc && done < n->size) {
		size_t chunk = n->size - done > (1 << 20) ? (1 << 20) : n->size - done;
		ssize_t r = pread(w->tree->spool_fd, w->buf, chunk, n->data_off + done);
		if (r <= 0) {
			ext2fs_file_close(f);
			return pv_err_sys(err, PV_INTERNAL, "reading spool file");
		}
		unsigned int wrote = 0;
		rc = ext2fs_file_write(f, w->buf, r, &wrote);
		if (!rc && wrote != (unsigned int)r)
			rc = EXT2_ET_SHORT_WRITE;
		done += r;
	}
	errcode_t rc2 = ext2fs_file_close(f);
	if (rc || rc2)
		return e2err(err, rc ? rc : rc2, "writing", name);
	return 0;
}

static int write_node(struct writer *w, ext2_ino_t parent, const char *name, struct fs_node *n, pv_err_t **err);

static int write_children(struct writer *w, ext2_ino_t ino, struct fs_node *n, pv_err_t **err)
{
	for (struct fs_dent *d = n->children; d; d = d->next)
		if (write_node(w, ino, d->name, d->node, err) < 0)
			return -1;
	return 0;
}

static int write_dir(struct writer *w, ext2_ino_t ino, struct fs_node *n, const char *name, pv_err_t **err)
{
	errcode_t rc = presize_dir(w->fs, ino, n);
	if (rc)
		return e2err(err, rc, "sizing directory", name);
	if (write_children(w, ino, n, err) < 0)
		return -1;
	struct ext2_inode in;
	if ((rc = ext2fs_read_inode(w->fs, ino, &in)))
		return e2err(err, rc, "reading inode of", name);
	set_meta(&in, n);
	if ((rc = ext2fs_write_inode(w->fs, ino, &in)))
		return e2err(err, rc, "writing inode of", name);
	return set_xattrs(w, ino, n, name, err);
}

static int write_node(struct writer *w, ext2_ino_t parent, const char *name, struct fs_node *n, pv_err_t **err)
{
	ext2_filsys fs = w->fs;
	errcode_t rc;
	ext2_ino_t ino;
	if (n->ino) { /* another name of an inode already written */
		if ((rc = link_entry(fs, parent, name, n->ino, file_type(n->mode))))
			return e2err(err, rc, "linking", name);
		return 0;
	}
	if (S_ISDIR(n->mode)) {
		if ((rc = ext2fs_new_inode(fs, parent, LINUX_S_IFDIR | 0755, 0, &ino)))
			return e2err(err, rc, "allocating inode for", name);
		if ((rc = ext2fs_mkdir(fs, parent, ino, name)))
			return e2err(err, rc, "creating directory", name);
		n->ino = ino;
		return write_dir(w, ino, n, name, err);
	}
	if ((rc = ext2fs_new_inode(fs, parent, n->mode, 0, &ino)))
		return e2err(err, rc, "allocating inode for", name);
	n->ino = ino;
	if (S_ISLNK(n->mode)) {
		if ((rc = ext2fs_symlink(fs, parent, ino, NULL, n->target)))
			return e2err(err, rc, "creating symlink", name);
		struct ext2_inode in;
		if ((rc = ext2fs_read_inode(fs, ino, &in)))
			return e2err(err, rc, "reading inode of", name);
		set_meta(&in, n);
		in.i_links_count = n->refs;
		if ((rc = ext2fs_write_inode(fs, ino, &in)))
			return e2err(err, rc, "writing inode of", name);
	} else {
		struct ext2_inode in;
		memset(&in, 0, sizeof(in));
		set_meta(&in, n);
		in.i_links_count = n->refs;
		if (S_ISREG(n->mode)) {
			if ((rc = ext2fs_inode_size_set(fs, &in, n->size)))
				return e2err(err, rc, "sizing", name);
			ext2_extent_handle_t eh;
			if ((rc = ext2fs_extent_open2(fs, ino, &in, &eh)))
				return e2err(err, rc, "initialising extents of", name);
			ext2fs_extent_free(eh);
		} else if (S_ISCHR(n->mode) || S_ISBLK(n->mode)) {
			unsigned int ma = major(n->rdev), mi = minor(n->rdev);
			if (ma < 256 && mi < 256) {
				in.i_block[0] = ma * 256 + mi;
			} else {
				in.i_block[1] = (mi & 0xff) | (ma << 8) | ((mi & ~0xffu) << 12);
			}
		}
		if ((rc = ext2fs_write_new_inode(fs, ino, &in)))
			return e2err(err, rc, "writing inode of", name);
		ext2fs_inode_alloc_stats2(fs, ino, +1, 0);
	}
	if ((rc = link_entry(fs, parent, name, ino, file_type(n->mode))))
		return e2err(err, rc, "linking", name);
	if (S_ISREG(n->mode) && n->size > 0 && write_data(w, ino, n, name, err) < 0)
		return -1;
	return set_xattrs(w, ino, n, name, err);
}

static void reset_inos(struct fs_node *n)
{
	n->ino = 0;
	for (struct fs_dent *d = n->children; d; d = d->next)
		reset_inos(d->node);
}

/* Estimate what the tree needs, in blocks and inodes. */
static void estimate(struct fs_node *n, uint64_t *blocks, uint64_t *inodes, int top)
{
	if (n->ino == 1)
		return;
	n->ino = 1;
	(*inodes)++;
	if (S_ISREG(n->mode)) {
		uint64_t b = (n->size + BLOCK_SIZE - 1) / BLOCK_SIZE;
		*blocks += b + b / 32768 / 300 + (b > 4 * 32768 ? 1 : 0);
	} else if (S_ISLNK(n->mode) && strlen(n->target) >= 60) {
		*blocks += 1;
	} else if (S_ISDIR(n->mode)) {
		uint64_t bytes = 24;
		for (struct fs_dent *d = n->children; d; d = d->next)
			bytes += (8 + strlen(d->name) + 3) & ~3u;
		*blocks += (bytes + (BLOCK_SIZE - 264) - 1) / (BLOCK_SIZE - 264) + 1;
	}
	if (n->xattrs)
		*blocks += 1;
	for (struct fs_dent *d = n->children; d; d = d->next)
		estimate(d->node, blocks, inodes, 0);
	if (top)
		reset_inos(n);
}

static int build(struct fs_tree *t, const char *path, uint64_t blocks, uint64_t inodes, pv_err_t **err)
{
	cleanup_close int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return pv_err_sys(err, PV_INTERNAL, "creating %s", path);
	if (ftruncate(fd, (off_t)blocks * BLOCK_SIZE) < 0)
		return pv_err_sys(err, PV_INTERNAL, "sizing %s", path);
	struct ext2_super_block param;
	memset(&param, 0, sizeof(param));
	ext2fs_blocks_count_set(&param, blocks);
	param.s_log_block_size = 2; /* 4 KiB */
	param.s_rev_level = EXT2_DYNAMIC_REV;
	param.s_inode_size = INODE_SIZE;
	param.s_inodes_count = inodes;
	param.s_r_blocks_count = 0;
	param.s_min_extra_isize = param.s_want_extra_isize = 32;
	ext2fs_set_feature_filetype(&param);
	ext2fs_set_feature_extents(&param);
	ext2fs_set_feature_sparse_super(&param);
	ext2fs_set_feature_large_file(&param);
	ext2fs_set_feature_huge_file(&param);
	ext2fs_set_feature_dir_nlink(&param);
	ext2fs_set_feature_extra_isize(&param);
	ext2fs_set_feature_xattr(&param);
	ext2_filsys fs;
	errcode_t rc = ext2fs_initialize(path, EXT2_FLAG_64BITS, &param, unix_io_manager, &fs);
	if (rc)
		return e2err(err, rc, "initialising", path);
	struct writer w = { .fs = fs, .tree = t, .buf = pv_xmalloc(1 << 20) };
	int r = -1;
	if (getrandom(fs->super->s_uuid, sizeof(fs->super->s_uuid), 0) < 0 ||
	    getrandom(fs->super->s_hash_seed, sizeof(fs->super->s_hash_seed), 0) < 0) {
		pv_err_sys(err, PV_INTERNAL, "getrandom");
		goto out;
	}
	fs->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
	fs->super->s_max_mnt_count = -1;
	strncpy((char *)fs->super->s_volume_name, "podvisor-image", sizeof(fs->super->s_volume_name));
	if ((rc = ext2fs_allocate_tables(fs))) {
		e2err(err, rc, "allocating tables of", path);
		goto out;
	}
	/* Reserved inodes, like mke2fs: everything below the first regular inode. */
	for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(fs->super); i++)
		ext2fs_inode_alloc_stats2(fs, i, +1, 0);
	ext2fs_mark_inode_bitmap2(fs->inode_map, EXT2_BAD_INO);
	ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
	if ((rc = ext2fs_update_bb_inode(fs, NULL))) {
		e2err(err, rc, "bad block inode of", path);
		goto out;
	}
	if ((rc = ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, 0))) {
		e2err(err, rc, "creating root of", path);
		goto out;
	}
	t->root->ino = EXT2_ROOT_INO;
	int has_lf = 0;
	for (struct fs_dent *d = t->root->children; d; d = d->next)
		if (!strcmp(d->name, "lost+found"))
			has_lf = 1;
	if (!has_lf && (rc = ext2fs_mkdir(fs, EXT2_ROOT_INO, 0, "lost+found"))) {
		e2err(err, rc, "creating lost+found in", path);
		goto out;
	}
	if (write_dir(&w, EXT2_ROOT_INO, t->root, "/", err) < 0)
		goto out;
	r = 0;
out:
	free(w.buf);
	rc = ext2fs_close_free(&fs);
	if (r == 0 && rc)
		r = e2err(err, rc, "closing", path);
	reset_inos(t->root);
	if (r == 0 && fsync(fd) < 0)
		r = pv_err_sys(err, PV_INTERNAL, "fsync %s", path);
	if (r < 0)
		unlink(path);
	return r;
}

int image_ext4_write(struct fs_tree *t, const char *path, pv_err_t **err)
{
	uint64_t blocks = 0, inodes = 0;
	estimate(t->root, &blocks, &inodes, 1);
	inodes += EXT2_GOOD_OLD_FIRST_INO + 64 + inodes / 16;
	/* inode tables, bitmaps, group descriptors, superblock backups; then 10% slack */
	uint64_t meta = inodes * INODE_SIZE / BLOCK_SIZE + 2 * (blocks / 32768 + 1) + 64;
	blocks = blocks + meta + blocks / 10 + 256;
	for (int attempt = 0;; attempt++) {
		pv_err_t *e = NULL;
		int r = build(t, path, blocks, inodes, &e);
		if (r == 0)
			return 0;
		if (e->status != PV_RESOURCE_EXHAUSTED || attempt >= 4) {
			pv_err_move(err, e);
			return r;
		}
		pv_err_free(e);
		blocks *= 2;
		inodes *= 2;
	}
}
