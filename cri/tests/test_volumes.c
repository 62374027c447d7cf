/* Host-path volumes: config.mounts checks, mountinfo unescaping, host bind mounts made and removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "volumes.h"

struct cfg1 {
	Runtime__V1__ContainerConfig cfg;
	Runtime__V1__Mount m[2];
	Runtime__V1__Mount *mp[2];
};

static void cfg_init(struct cfg1 *c, size_t n)
{
	runtime__v1__container_config__init(&c->cfg);
	for (size_t i = 0; i < 2; i++) {
		runtime__v1__mount__init(&c->m[i]);
		c->m[i].container_path = "/data";
		c->m[i].host_path = "/tmp";
		c->mp[i] = &c->m[i];
	}
	c->cfg.mounts = c->mp;
	c->cfg.n_mounts = n;
}

/* Check fails with INVALID_ARGUMENT and a message containing each of the words. */
static void expect_bad(struct cfg1 *c, const char *w1, const char *w2)
{
	pv_err_t *err = NULL;
	assert_int_equal(cri_volumes_check(&c->cfg, NULL, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	if (!strstr(err->msg, w1) || (w2 && !strstr(err->msg, w2)))
		fail_msg("message \"%s\" lacks \"%s\"/\"%s\"", err->msg, w1, w2 ? w2 : "");
	pv_err_free(err);
}

static void test_check(void **state)
{
	struct cfg1 c;
	cfg_init(&c, 2);
	pv_err_t *err = NULL;
	assert_int_equal(cri_volumes_check(&c.cfg, NULL, &err), 0);
	c.m[1].container_path = "data";
	expect_bad(&c, "config.mounts[1].container_path", "absolute");
	c.m[1].container_path = "/data/../etc";
	expect_bad(&c, "config.mounts[1].container_path", "'..'");
	c.m[1].container_path = "/./x";
	expect_bad(&c, "config.mounts[1]", "'.'");
	c.m[1].container_path = "//";
	expect_bad(&c, "config.mounts[1].container_path", "\"/\"");
	c.m[1].container_path = "/data";
	c.m[0].host_path = "relative/dir";
	expect_bad(&c, "config.mounts[0].host_path", "absolute");
	c.m[0].host_path = "/no/such/podvisor/path";
	expect_bad(&c, "config.mounts[0].host_path /no/such/podvisor/path", "No such file");
	c.m[0].host_path = "/dev/null";
	expect_bad(&c, "config.mounts[0].host_path /dev/null", "neither");
	c.m[0].host_path = "/etc/hostname";
	c.m[0].propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL;
	expect_bad(&c, "config.mounts[0]", "bidirectional");
	c.m[0].propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER;
	assert_int_equal(cri_volumes_check(&c.cfg, NULL, &err), 0);
	c.m[0].recursive_read_only = 1;
	expect_bad(&c, "config.mounts[0]", "readonly");
	c.m[0].readonly = 1;
	assert_int_equal(cri_volumes_check(&c.cfg, NULL, &err), 0);
	Runtime__V1__ImageSpec img = RUNTIME__V1__IMAGE_SPEC__INIT;
	img.image = "busybox";
	c.m[1].image = &img;
	expect_bad(&c, "config.mounts[1]", "image volumes");
}

static void test_unescape(void **state)
{
	char s[] = "/var/lib/a\\040b\\011c\\134d\\012";
	cri_volumes_unescape(s);
	assert_string_equal(s, "/var/lib/a b\tc\\d\n");
	char t[] = "\\04x\\9";
	cri_volumes_unescape(t);
	assert_string_equal(t, "\\04x\\9");
}

static int mounted_under(const char *prefix)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	int n = 0;
	while (f && fgets(line, sizeof(line), f)) {
		char mp[4096];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && !strncmp(mp, prefix, strlen(prefix)))
			n++;
	}
	if (f)
		fclose(f);
	return n;
}

/* Real bind mounts, in a private mount namespace of this test (root only). */
static void test_setup_release(void **state)
{
	if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		skip();
	char base[] = "/tmp/pv-vol-XXXXXX";
	assert_non_null(mkdtemp(base));
	char *host = pv_xasprintf("%s/host", base), *share = pv_xasprintf("%s/share", base);
	char *file = pv_xasprintf("%s/host/f.txt", base), *ro = pv_xasprintf("%s/ro.txt", base);
	assert_int_equal(mkdir(host, 0755), 0);
	assert_int_equal(mkdir(share, 0755), 0);
	assert_int_equal(pv_write_file_atomic(file, "hello", 5, 0644, NULL), 0);
	assert_int_equal(pv_write_file_atomic(ro, "ro", 2, 0644, NULL), 0);

	struct cfg1 c;
	cfg_init(&c, 2);
	c.m[0].host_path = host;
	c.m[1].host_path = ro;
	c.m[1].container_path = "/etc/ro.txt";
	c.m[1].readonly = 1;
	struct cri_volumes v;
	pv_err_t *err = NULL;
	assert_int_equal(cri_volumes_setup(share, "c1", &c.cfg, NULL, &v, &err), 0);
	assert_int_equal(v.n, 2);
	assert_string_equal(v.mounts[0].source, CRI_VOLUMES_GUEST_DIR "/c1/0");
	assert_string_equal(v.mounts[0].destination, "/data");
	assert_int_equal(v.mounts[0].n_options, 1);
	assert_string_equal(v.mounts[1].source, CRI_VOLUMES_GUEST_DIR "/c1/1");
	assert_int_equal(v.mounts[1].n_options, 2);
	assert_string_equal(v.mounts[1].options[1], "ro");
	cri_volumes_free(&v);

	char *seen = pv_xasprintf("%s/c1/0/f.txt", share), *rot = pv_xasprintf("%s/c1/1", share);
	char *buf = NULL;
	size_t len = 0;
	assert_int_equal(pv_read_file(seen, 100, &buf, &len, NULL), 0);
	assert_int_equal(len, 5);
	free(buf);
	int fd = open(rot, O_WRONLY | O_CLOEXEC);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EROFS);
	/* A second container's volumes are released on their own. */
	assert_int_equal(cri_volumes_setup(share, "c2", &c.cfg, NULL, &v, &err), 0);
	cri_volumes_free(&v);
	char *prefix = pv_xasprintf("%s/", share);
	assert_int_equal(mounted_under(prefix), 4);
	assert_int_equal(cri_volumes_release(share, "c1", &err), 0);
	assert_int_equal(mounted_under(prefix), 2);
	char *c1 = pv_xasprintf("%s/c1", share);
	assert_int_equal(access(c1, F_OK), -1);
	assert_int_equal(cri_volumes_release(share, NULL, &err), 0);
	assert_int_equal(mounted_under(prefix), 0);
	assert_int_equal(rmdir(share), 0); /* empty: every mount point removed */
	assert_int_equal(access(file, R_OK), 0); /* the host's files untouched */
	assert_int_equal(cri_volumes_release(share, NULL, &err), 0); /* gone is fine */

	/* A host path that vanished between check and set-up: named, nothing left. */
	assert_int_equal(mkdir(share, 0755), 0);
	c.m[1].host_path = "/no/such/file";
	assert_int_equal(cri_volumes_setup(share, "c3", &c.cfg, NULL, &v, &err), -1);
	assert_non_null(strstr(err->msg, "config.mounts[1].host_path /no/such/file"));
	pv_err_free(err);
	assert_int_equal(mounted_under(prefix), 0);
	pv_rm_rf(base, NULL);
	free(host);
	free(share);
	free(file);
	free(ro);
	free(seen);
	free(rot);
	free(prefix);
	free(c1);
}

/* Check with podvisor's own directories; INVALID_ARGUMENT with `word`, or 0 when word is NULL. */
static void expect_own(struct cfg1 *c, const char *const *own, const char *word)
{
	pv_err_t *err = NULL;
	int r = cri_volumes_check(&c->cfg, own, &err);
	if (!word) {
		if (r != 0)
			fail_msg("refused: %s", err->msg);
		return;
	}
	assert_int_equal(r, -1);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	if (!strstr(err->msg, word) || !strstr(err->msg, "config.mounts[0].host_path"))
		fail_msg("\"%s\" lacks \"%s\"", err->msg, word);
	pv_err_free(err);
}

/* podvisor's root and state directories, what is in them and what is above them. */
static void test_own_dirs(void **state)
{
	char base[] = "/tmp/pv-own-XXXXXX";
	assert_non_null(mkdtemp(base));
	char *root = pv_xasprintf("%s/root", base), *st = pv_xasprintf("%s/state", base);
	char *inside = pv_xasprintf("%s/root/pods", base), *link = pv_xasprintf("%s/link", base);
	char *sib = pv_xasprintf("%s/rootx", base);
	assert_int_equal(pv_mkdir_p(inside, 0755, NULL), 0);
	assert_int_equal(mkdir(st, 0755), 0);
	assert_int_equal(mkdir(sib, 0755), 0);
	assert_int_equal(symlink(st, link), 0);
	const char *const own[] = { root, st, NULL };
	struct cfg1 c;
	cfg_init(&c, 1);
	c.m[0].host_path = root;
	expect_own(&c, own, "own directory");
	c.m[0].readonly = c.m[0].recursive_read_only = 1; /* read-only does not help: no volume at all */
	expect_own(&c, own, "own directory");
	c.m[0].host_path = inside;
	expect_own(&c, own, "own directory");
	c.m[0].host_path = link; /* resolved: the state directory */
	expect_own(&c, own, "own directory");
	c.m[0].host_path = sib; /* a name that starts the same is another directory */
	c.m[0].readonly = c.m[0].recursive_read_only = 0;
	expect_own(&c, own, NULL);
	/* Above them: read-only, recursively, private, or refused. */
	c.m[0].host_path = base;
	expect_own(&c, own, "read-only, recursively");
	c.m[0].host_path = "/";
	expect_own(&c, own, "read-only, recursively");
	c.m[0].readonly = 1;
	expect_own(&c, own, "read-only, recursively");
	c.m[0].recursive_read_only = 1;
	c.m[0].propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER;
	expect_own(&c, own, "private propagation");
	c.m[0].propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE;
	expect_own(&c, own, NULL);
	c.m[0].host_path = base;
	expect_own(&c, own, NULL);
	pv_rm_rf(base, NULL);
	free(root);
	free(st);
	free(inside);
	free(link);
	free(sib);
}

/* A host path swapped for a symlink to podvisor's state after the check is still refused at set-up. */
static void test_own_dirs_at_setup(void **state)
{
	if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		skip();
	char base[] = "/tmp/pv-own-XXXXXX";
	assert_non_null(mkdtemp(base));
	char *st = pv_xasprintf("%s/state", base), *share = pv_xasprintf("%s/share", base);
	char *vol = pv_xasprintf("%s/vol", base);
	assert_int_equal(mkdir(st, 0755), 0);
	assert_int_equal(mkdir(share, 0755), 0);
	assert_int_equal(mkdir(vol, 0755), 0);
	const char *const own[] = { st, NULL };
	struct cfg1 c;
	cfg_init(&c, 1);
	c.m[0].host_path = vol;
	pv_err_t *err = NULL;
	assert_int_equal(cri_volumes_check(&c.cfg, own, &err), 0);
	assert_int_equal(rmdir(vol), 0);
	assert_int_equal(symlink(st, vol), 0);
	struct cri_volumes v;
	assert_int_equal(cri_volumes_setup(share, "c1", &c.cfg, own, &v, &err), -1);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "own directory"));
	pv_err_free(err);
	char *prefix = pv_xasprintf("%s/", share);
	assert_int_equal(mounted_under(prefix), 0);
	pv_rm_rf(base, NULL);
	free(st);
	free(share);
	free(vol);
	free(prefix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_unescape),
		cmocka_unit_test(test_setup_release),
		cmocka_unit_test(test_own_dirs),
		cmocka_unit_test(test_own_dirs_at_setup),
	};
	return cmocka_run_group_tests_name("cri_volumes", tests, NULL, NULL);
}
