/* Host-path volumes: checks, host bind mounts into the pod's 9p share, their removal. */
#include "volumes.h"
#include "cleanup.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- checks ------------------------------------------------------------------------ */

static int has_dot_component(const char *path)
{
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchrnul(p, '/');
		size_t len = (size_t)(e - p);
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return 1;
		p = e;
	}
	return 0;
}

static int check_one(const Runtime__V1__Mount *m, size_t i, bool on_host, pv_err_t **err)
{
	const char *cp = m->container_path ? m->container_path : "";
	const char *hp = m->host_path ? m->host_path : "";
	if (cp[0] != '/')
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "config.mounts[%zu].container_path \"%s\" must be an absolute path", i, PV_ECHO(cp));
	if (has_dot_component(cp))
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "config.mounts[%zu].container_path \"%s\" may not contain '.' or '..' components", i,
				  PV_ECHO(cp));
	if (!cp[strspn(cp, "/")])
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "config.mounts[%zu].container_path may not be \"/\"", i);
	if (strlen(cp) >= PATH_MAX || strlen(hp) >= PATH_MAX)
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENAMETOOLONG, "config.mounts[%zu]: path too long", i);
	if (m->image && m->image->image && *m->image->image)
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENOTSUP,
				  "config.mounts[%zu] (%s): image volumes are not supported by podvisor", i,
				  PV_ECHO(cp));
	if (hp[0] != '/')
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "config.mounts[%zu].host_path \"%s\" must be an absolute path", i, PV_ECHO(hp));
	if (m->n_uidmappings || m->n_gidmappings)
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENOTSUP,
				  "config.mounts[%zu] (%s): id-mapped mounts are not supported by podvisor", i,
				  PV_ECHO(cp));
	if (m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL && !on_host)
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENOTSUP,
				  "config.mounts[%zu] (%s): bidirectional (rshared) propagation is not supported: "
				  "mounts made inside the pod VM cannot reach the host",
				  i, PV_ECHO(cp));
	if (m->propagation != RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE &&
	    m->propagation != RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER &&
	    m->propagation != RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "config.mounts[%zu] (%s): unknown propagation %d",
				  i, PV_ECHO(cp), (int)m->propagation);
	if (m->recursive_read_only && !m->readonly)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL,
				  "config.mounts[%zu] (%s): recursive_read_only needs readonly", i, PV_ECHO(cp));
	struct stat st;
	if (stat(hp, &st) < 0)
		return pv_err_sys(err, PV_INVALID_ARGUMENT, "config.mounts[%zu].host_path %s", i, PV_ECHO(hp));
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !on_host)
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENOTSUP,
				  "config.mounts[%zu].host_path %s is neither a directory nor a regular file: "
				  "sockets and devices cannot be shared into the pod VM",
				  i, PV_ECHO(hp));
	return 0;
}

/* p and d resolved: 1 if p is d or inside it, 2 if p is a directory above d, else 0. */
static int relation(const char *p, const char *d)
{
	size_t pl = strlen(p), dl = strlen(d);
	if (!strncmp(p, d, dl) && (p[dl] == '\0' || p[dl] == '/' || (dl == 1 && d[0] == '/')))
		return 1;
	if (!strcmp(p, "/") || (!strncmp(d, p, pl) && d[pl] == '/'))
		return 2;
	return 0;
}

/* The host path (resolved: real) against podvisor's own directories. */
static int check_own(const Runtime__V1__Mount *m, size_t i, const char *real, const char *const *own,
		     pv_err_t **err)
{
	for (size_t k = 0; own && own[k]; k++) {
		cleanup_free char *d = realpath(own[k], NULL);
		const char *dir = d ? d : own[k];
		int rel = relation(real, dir);
		if (rel == 1)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EPERM,
					  "config.mounts[%zu].host_path %s is in podvisor's own directory %s: podvisor's "
					  "root and state directories and everything in them cannot be volumes",
					  i, PV_ECHO(real), dir);
		if (rel == 2 && !(m->readonly && m->recursive_read_only &&
				  m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE))
			return pv_err_set(err, PV_INVALID_ARGUMENT, EPERM,
					  "config.mounts[%zu].host_path %s contains podvisor's own directory %s: a "
					  "directory above podvisor's root or state directory can only be mounted "
					  "read-only, recursively (recursive_read_only) and with private propagation",
					  i, PV_ECHO(real), dir);
	}
	return 0;
}

static int check_all(const Runtime__V1__ContainerConfig *cfg, const char *const *own, bool on_host, pv_err_t **err)
{
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		if (check_one(cfg->mounts[i], i, on_host, err) < 0)
			return -1;
		cleanup_free char *real = realpath(cfg->mounts[i]->host_path, NULL);
		if (!real)
			return pv_err_sys(err, PV_INVALID_ARGUMENT, "config.mounts[%zu].host_path %s", i,
					  PV_ECHO(cfg->mounts[i]->host_path));
		if (check_own(cfg->mounts[i], i, real, own, err) < 0)
			return -1;
	}
	return 0;
}

int cri_volumes_check(const Runtime__V1__ContainerConfig *cfg, const char *const *own, pv_err_t **err)
{
	return check_all(cfg, own, false, err);
}

int cri_volumes_check_host(const Runtime__V1__ContainerConfig *cfg, const char *const *own, pv_err_t **err)
{
	return check_all(cfg, own, true, err);
}

/* ---- mountinfo ----------------------------------------------------------------------- */

void cri_volumes_unescape(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
		    p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

/* Mount points of this mount namespace starting with prefix, in mountinfo order (parents first). */
static int mounts_under(const char *prefix, char ***out, size_t *n, pv_err_t **err)
{
	cleanup_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return pv_err_sys(err, PV_INTERNAL, "open /proc/self/mountinfo");
	char **v = NULL;
	size_t cnt = 0;
	cleanup_free char *line = NULL;
	size_t cap = 0;
	size_t plen = strlen(prefix);
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *field = strtok_r(line, " ", &save);
		for (int k = 0; field && k < 4; k++)
			field = strtok_r(NULL, " ", &save);
		if (!field)
			continue;
		cri_volumes_unescape(field);
		if (strncmp(field, prefix, plen))
			continue;
		v = pv_xrealloc(v, (cnt + 1) * sizeof(*v));
		v[cnt++] = pv_xstrdup(field);
	}
	*out = v;
	*n = cnt;
	return 0;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Remove the mount points (files or empty directories) in dir, then dir; never recursive:
 * a mount point still mounted answers EBUSY and stays, with the host's files under it. */
static void remove_points(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0 && (errno == EISDIR || errno == EPERM))
			unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
	rmdir(dir);
}

/* Is path (resolved) a mount point of this namespace? */
static bool is_mount_point(const char *path)
{
	char **pts = NULL;
	size_t n = 0;
	if (mounts_under(path, &pts, &n, NULL) < 0)
		return false;
	bool found = false;
	for (size_t i = 0; i < n; i++)
		found |= !strcmp(pts[i], path);
	strv_free(pts, n);
	return found;
}

int cri_volumes_prepare(const char *share_dir, pv_err_t **err)
{
	if (pv_mkdir_p(share_dir, 0750, err) < 0)
		return -1;
	cleanup_free char *real = realpath(share_dir, NULL);
	if (!real)
		return pv_err_sys(err, PV_INTERNAL, "resolve %s", share_dir);
	if (!is_mount_point(real) && mount(real, real, NULL, MS_BIND, NULL) < 0)
		return pv_err_sys(err, PV_INTERNAL, "bind %s on itself", real);
	/* Private: the volume binds made in here propagate to no other mount namespace of
	 * the node (where / is shared, as under systemd, they would otherwise). */
	if (mount(NULL, real, NULL, MS_PRIVATE, NULL) < 0) {
		pv_err_sys(err, PV_INTERNAL, "make %s private", real);
		umount2(real, MNT_DETACH | UMOUNT_NOFOLLOW);
		return -1;
	}
	return 0;
}

int cri_volumes_release(const char *share_dir, const char *ctr_id, pv_err_t **err)
{
	cleanup_free char *real = realpath(share_dir, NULL);
	if (!real)
		return errno == ENOENT ? 0 : pv_err_sys(err, PV_INTERNAL, "resolve %s", share_dir);
	cleanup_free char *prefix = ctr_id ? pv_xasprintf("%s/%s/", real, ctr_id) : pv_xasprintf("%s/", real);
	char **pts = NULL;
	size_t n = 0;
	if (mounts_under(prefix, &pts, &n, err) < 0)
		return -1;
	/* Children before parents; detaching a parent takes its children along (EINVAL after). */
	for (size_t i = n; i-- > 0;)
		umount2(pts[i], MNT_DETACH | UMOUNT_NOFOLLOW);
	strv_free(pts, n);
	if (mounts_under(prefix, &pts, &n, err) < 0)
		return -1;
	if (n) {
		pv_err_set(err, PV_INTERNAL, EBUSY, "volume mount %s could not be unmounted", pts[0]);
		strv_free(pts, n);
		return -1;
	}
	free(pts);
	if (ctr_id) {
		cleanup_free char *dir = pv_xasprintf("%s/%s", real, ctr_id);
		remove_points(dir);
		return 0;
	}
	DIR *d = opendir(real);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			cleanup_free char *dir = pv_xasprintf("%s/%s", real, de->d_name);
			remove_points(dir);
		}
		closedir(d);
	}
	/* The share's own private bind (cri_volumes_prepare) goes with the pod. */
	if (is_mount_point(real) && umount2(real, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
		return pv_err_sys(err, PV_INTERNAL, "unmount the volume share %s", real);
	return 0;
}

int cri_volumes_unmount_under(const char *dir, pv_err_t **err)
{
	cleanup_free char *real = realpath(dir, NULL);
	if (!real)
		return errno == ENOENT ? 0 : pv_err_sys(err, PV_INTERNAL, "resolve %s", dir);
	cleanup_free char *prefix = pv_xasprintf("%s/", real);
	char **pts = NULL;
	size_t n = 0;
	if (mounts_under(prefix, &pts, &n, err) < 0)
		return -1;
	for (size_t i = n; i-- > 0;)
		umount2(pts[i], MNT_DETACH | UMOUNT_NOFOLLOW);
	strv_free(pts, n);
	if (mounts_under(prefix, &pts, &n, err) < 0)
		return -1;
	int r = n ? pv_err_set(err, PV_INTERNAL, EBUSY, "%s could not be unmounted", pts[0]) : 0;
	strv_free(pts, n);
	return r;
}

/* ---- set-up ------------------------------------------------------------------------- */

static char *keep(struct cri_volumes *v, char *s)
{
	v->strings = pv_xrealloc(v->strings, (v->nstrings + 1) * sizeof(*v->strings));
	v->strings[v->nstrings++] = s;
	return s;
}

void cri_volumes_free(struct cri_volumes *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++)
		free(v->mounts[i].options);
	free(v->mounts);
	for (size_t i = 0; i < v->nstrings; i++)
		free(v->strings[i]);
	free(v->strings);
	memset(v, 0, sizeof(*v));
}

/* host_path bound at target (created as a file or a directory to match), then made
 * private (or a slave: host mounts made later show through) and read-only as asked. */
static int bind_one(const Runtime__V1__Mount *m, size_t i, const char *target, const char *const *own,
		    pv_err_t **err)
{
	/* Resolved once: what was checked is what gets bound, whatever happens to the path meanwhile. */
	cleanup_close int fd = open(m->host_path, O_PATH | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return pv_err_sys(err, PV_INVALID_ARGUMENT, "config.mounts[%zu].host_path %s", i,
				  PV_ECHO(m->host_path));
	char fdpath[64], real[PATH_MAX];
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	ssize_t rl = readlink(fdpath, real, sizeof(real) - 1);
	if (rl < 0)
		return pv_err_sys(err, PV_INTERNAL, "resolve %s", fdpath);
	real[rl] = '\0';
	if (check_own(m, i, real, own, err) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return pv_err_set(err, PV_INVALID_ARGUMENT, ENOTSUP,
				  "config.mounts[%zu].host_path %s is neither a directory nor a regular file", i,
				  PV_ECHO(real));
	if (S_ISDIR(st.st_mode)) {
		if (mkdir(target, 0755) < 0)
			return pv_err_sys(err, PV_INTERNAL, "mkdir %s", target);
	} else {
		int tfd = open(target, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (tfd < 0)
			return pv_err_sys(err, PV_INTERNAL, "create %s", target);
		close(tfd);
	}
	if (mount(fdpath, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		return pv_err_sys(err, PV_INTERNAL, "bind %s on %s", PV_ECHO(real), target);
	struct mount_attr prop = {
		.propagation = m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER
				       ? MS_SLAVE
				       : MS_PRIVATE,
	};
	if (mount_setattr(AT_FDCWD, target, AT_RECURSIVE, &prop, sizeof(prop)) < 0)
		return pv_err_sys(err, PV_INTERNAL, "set propagation of %s", target);
	if (m->readonly) {
		struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
		if (mount_setattr(AT_FDCWD, target, m->recursive_read_only ? AT_RECURSIVE : 0, &ro, sizeof(ro)) < 0)
			return pv_err_sys(err, PV_INTERNAL, "make %s read-only", target);
	}
	return 0;
}

int cri_volumes_setup(const char *share_dir, const char *ctr_id, const Runtime__V1__ContainerConfig *cfg,
		      const char *const *own, struct cri_volumes *out, pv_err_t **err)
{
	memset(out, 0, sizeof(*out));
	if (!cfg->n_mounts)
		return 0;
	cleanup_free char *dir = pv_xasprintf("%s/%s", share_dir, ctr_id);
	if (pv_mkdir_p(dir, 0755, err) < 0)
		return -1;
	out->mounts = pv_xcalloc(cfg->n_mounts, sizeof(*out->mounts));
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		const Runtime__V1__Mount *m = cfg->mounts[i];
		cleanup_free char *target = pv_xasprintf("%s/%zu", dir, i);
		if (bind_one(m, i, target, own, err) < 0) {
			pv_err_prefix(err, "volume %s", m->container_path);
			cri_volumes_release(share_dir, ctr_id, NULL);
			cri_volumes_free(out);
			return -1;
		}
		Podvisor__Agent__Mount *am = &out->mounts[out->n++];
		podvisor__agent__mount__init(am);
		am->destination = keep(out, pv_xstrdup(m->container_path));
		am->type = (char *)"bind";
		am->source = keep(out, pv_xasprintf(CRI_VOLUMES_GUEST_DIR "/%s/%zu", ctr_id, i));
		am->options = pv_xcalloc(2, sizeof(char *));
		am->options[am->n_options++] = (char *)"rbind";
		if (m->readonly)
			am->options[am->n_options++] = (char *)"ro";
	}
	return 0;
}

/* ---- host pods: the agent binds host paths itself ------------------------------------ */

int cri_volumes_direct(const Runtime__V1__ContainerConfig *cfg, struct cri_volumes *out)
{
	memset(out, 0, sizeof(*out));
	if (!cfg->n_mounts)
		return 0;
	out->mounts = pv_xcalloc(cfg->n_mounts, sizeof(*out->mounts));
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		const Runtime__V1__Mount *m = cfg->mounts[i];
		Podvisor__Agent__Mount *am = &out->mounts[out->n++];
		podvisor__agent__mount__init(am);
		am->destination = keep(out, pv_xstrdup(m->container_path));
		am->type = (char *)"bind";
		am->source = keep(out, pv_xstrdup(m->host_path));
		am->options = pv_xcalloc(3, sizeof(char *));
		am->options[am->n_options++] = (char *)"rbind";
		if (m->readonly)
			am->options[am->n_options++] = (char *)"ro";
		am->options[am->n_options++] =
			m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL	  ? (char *)"rshared"
			: m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER ? (char *)"rslave"
													   : (char *)"rprivate";
	}
	return 0;
}
