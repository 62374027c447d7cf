#include "passwd.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (1u << 20)

struct pw_user {
	char *name;
	uint32_t uid, gid;
};

struct pw_group {
	char *name;
	uint32_t gid;
	char **members;
};

struct pv_passwd {
	struct pw_user *users;
	size_t n_users;
	struct pw_group *groups;
	size_t n_groups;
};

/* Split one line on ':' into at most max fields; returns the count. */
static size_t split_fields(char *line, char **f, size_t max)
{
	size_t n = 0;
	f[n++] = line;
	for (char *p = line; *p && n < max; p++) {
		if (*p == ':') {
			*p = '\0';
			f[n++] = p + 1;
		}
	}
	return n;
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > 0xffffffffUL)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static void parse_passwd(struct pv_passwd *pw, char *text)
{
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[7];
		uint32_t uid, gid;
		if (line[0] == '#' || split_fields(line, f, 7) < 4 || parse_u32(f[2], &uid) || parse_u32(f[3], &gid))
			continue;
		pw->users = pv_xrealloc(pw->users, (pw->n_users + 1) * sizeof(*pw->users));
		pw->users[pw->n_users++] = (struct pw_user){ pv_xstrdup(f[0]), uid, gid };
	}
}

static void parse_group(struct pv_passwd *pw, char *text)
{
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[4];
		uint32_t gid;
		if (line[0] == '#' || split_fields(line, f, 4) < 3 || parse_u32(f[2], &gid))
			continue;
		struct pw_group g = { pv_xstrdup(f[0]), gid, NULL };
		size_t n = 0;
		if (f[3] && *f[3]) {
			char *s2 = NULL;
			for (char *m = strtok_r(f[3], ",", &s2); m; m = strtok_r(NULL, ",", &s2)) {
				g.members = pv_xrealloc(g.members, (n + 2) * sizeof(char *));
				g.members[n++] = pv_xstrdup(m);
				g.members[n] = NULL;
			}
		}
		pw->groups = pv_xrealloc(pw->groups, (pw->n_groups + 1) * sizeof(*pw->groups));
		pw->groups[pw->n_groups++] = g;
	}
}

struct pv_passwd *pv_passwd_parse(const char *passwd, const char *group)
{
	struct pv_passwd *pw = pv_xcalloc(1, sizeof(*pw));
	if (passwd) {
		cleanup_free char *t = pv_xstrdup(passwd);
		parse_passwd(pw, t);
	}
	if (group) {
		cleanup_free char *t = pv_xstrdup(group);
		parse_group(pw, t);
	}
	return pw;
}

void pv_passwd_free(struct pv_passwd *pw)
{
	if (!pw)
		return;
	for (size_t i = 0; i < pw->n_users; i++)
		free(pw->users[i].name);
	for (size_t i = 0; i < pw->n_groups; i++) {
		free(pw->groups[i].name);
		for (size_t j = 0; pw->groups[i].members && pw->groups[i].members[j]; j++)
			free(pw->groups[i].members[j]);
		free(pw->groups[i].members);
	}
	free(pw->users);
	free(pw->groups);
	free(pw);
}

/* Read a file of the image; *out NULL when it does not exist. */
static int ext4_read(ext2_filsys fs, const char *path, char **out, pv_err_t **err)
{
	ext2_ino_t ino;
	*out = NULL;
	if (ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino))
		return 0;
	ext2_file_t file;
	if (ext2fs_file_open(fs, ino, 0, &file))
		return pv_err_set(err, PV_INTERNAL, EIO, "open %s in the image", path);
	__u64 size = 0;
	if (ext2fs_file_get_lsize(file, &size) || size > MAX_FILE) {
		ext2fs_file_close(file);
		return pv_err_set(err, PV_INVALID_ARGUMENT, EFBIG, "%s in the image is larger than %u bytes", path,
				  MAX_FILE);
	}
	char *buf = pv_xmalloc(size + 1);
	unsigned int got = 0;
	errcode_t e = ext2fs_file_read(file, buf, (unsigned int)size, &got);
	ext2fs_file_close(file);
	if (e) {
		free(buf);
		return pv_err_set(err, PV_INTERNAL, EIO, "read %s in the image", path);
	}
	buf[got] = '\0';
	*out = buf;
	return 0;
}

int pv_passwd_load_ext4(const char *ext4_path, struct pv_passwd **out, pv_err_t **err)
{
	ext2_filsys fs;
	if (ext2fs_open(ext4_path, 0, 0, 0, unix_io_manager, &fs))
		return pv_err_set(err, PV_INTERNAL, EIO, "open ext4 image %s", ext4_path);
	cleanup_free char *passwd = NULL, *group = NULL;
	int r = ext4_read(fs, "etc/passwd", &passwd, err);
	if (r == 0)
		r = ext4_read(fs, "etc/group", &group, err);
	ext2fs_close_free(&fs);
	if (r < 0)
		return r;
	*out = pv_passwd_parse(passwd, group);
	return 0;
}

static int op_user(void *o, const char *name, uint32_t *uid, uint32_t *gid)
{
	struct pv_passwd *pw = o;
	for (size_t i = 0; i < pw->n_users; i++) {
		if (!strcmp(pw->users[i].name, name)) {
			*uid = pw->users[i].uid;
			*gid = pw->users[i].gid;
			return 0;
		}
	}
	return -1;
}

static int op_group(void *o, const char *name, uint32_t *gid)
{
	struct pv_passwd *pw = o;
	for (size_t i = 0; i < pw->n_groups; i++) {
		if (!strcmp(pw->groups[i].name, name)) {
			*gid = pw->groups[i].gid;
			return 0;
		}
	}
	return -1;
}

static size_t op_groups_of(void *o, const char *user, uint32_t gid, uint32_t *out, size_t max)
{
	struct pv_passwd *pw = o;
	size_t n = 0;
	for (size_t i = 0; i < pw->n_groups && n < max; i++) {
		if (pw->groups[i].gid == gid)
			continue;
		for (size_t j = 0; pw->groups[i].members && pw->groups[i].members[j]; j++) {
			if (!strcmp(pw->groups[i].members[j], user)) {
				out[n++] = pw->groups[i].gid;
				break;
			}
		}
	}
	return n;
}

static const char *op_name_of(void *o, uint32_t uid)
{
	struct pv_passwd *pw = o;
	for (size_t i = 0; i < pw->n_users; i++)
		if (pw->users[i].uid == uid)
			return pw->users[i].name;
	return NULL;
}

struct spec_ids pv_passwd_ids(struct pv_passwd *pw)
{
	struct spec_ids ids = { op_user, op_group, op_groups_of, op_name_of, pw };
	return ids;
}
