/*
 * Pulls from a registry served by this test (plain HTTP on loopback): the store's tmp/ stays
 * empty whatever is pulled, by how many threads; an image over image.max_unpacked_bytes fails
 * with RESOURCE_EXHAUSTED and leaves no blob, ext4 image or record behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../digest.h"
#include "../store.h"
#include "error.h"
#include "util.h"

/* ---- a registry: path -> body ---------------------------------------------------- */

struct route {
	char *path;
	char *body;
	size_t len;
	const char *ctype;
};

static struct route routes[32];
static size_t n_routes;
static int lfd = -1, port;
static volatile int stopping;
static pthread_t server;

static void serve(int c)
{
	char req[4096];
	size_t got = 0;
	req[0] = '\0';
	while (got < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
		ssize_t n = read(c, req + got, sizeof(req) - 1 - got);
		if (n <= 0)
			return;
		got += (size_t)n;
		req[got] = '\0';
	}
	char path[1024] = "";
	sscanf(req, "GET %1023s", path);
	for (size_t i = 0; i < n_routes; i++) {
		if (strcmp(routes[i].path, path))
			continue;
		if (getenv("PV_TEST_DEBUG"))
			fprintf(stderr, "GET %s -> %zu\n", path, routes[i].len);
		char *head = pv_xasprintf("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
					  "Connection: close\r\n\r\n",
					  routes[i].ctype, routes[i].len);
		if (pv_write_full(c, head, strlen(head)) == 0)
			pv_write_full(c, routes[i].body, routes[i].len);
		free(head);
		return;
	}
	const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	pv_write_full(c, nf, strlen(nf));
}

static void *server_main(void *arg)
{
	while (!stopping) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		serve(c);
		close(c);
	}
	return NULL;
}

static void route(const char *path, const char *body, size_t len, const char *ctype)
{
	struct route *r = &routes[n_routes++];
	r->path = pv_xstrdup(path);
	r->body = pv_xmalloc(len ? len : 1);
	memcpy(r->body, body, len);
	r->len = len;
	r->ctype = ctype;
}

/* A tar layer of one file of n bytes of `fill`. */
static char *layer(const char *name, size_t n, char fill, size_t *len)
{
	size_t cap = n + (64 << 10);
	char *buf = pv_xcalloc(1, cap);
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_open_memory(a, buf, cap, len), ARCHIVE_OK);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_mode(e, S_IFREG | 0644);
	archive_entry_set_size(e, (la_int64_t)n);
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	char *data = pv_xmalloc(n ? n : 1);
	memset(data, fill, n);
	assert_int_equal(archive_write_data(a, data, n), (la_ssize_t)n);
	free(data);
	archive_entry_free(e);
	archive_write_close(a);
	archive_write_free(a);
	return buf;
}

/* Serve repo:tag with the given layers (uncompressed tars). */
static void serve_image(const char *repo, const char *tag, char **layers, size_t *lens, size_t n)
{
	char dg[IMAGE_DIGEST_LEN + 1];
	char *diff = pv_xstrdup(""), *descs = pv_xstrdup("");
	for (size_t i = 0; i < n; i++) {
		image_digest_buf(layers[i], lens[i], dg);
		char *p = pv_xasprintf("/v2/%s/blobs/%s", repo, dg);
		route(p, layers[i], lens[i], "application/octet-stream");
		free(p);
		char *d2 = pv_xasprintf("%s%s\"%s\"", diff, i ? "," : "", dg);
		char *s2 = pv_xasprintf("%s%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\","
					"\"size\":%zu}",
					descs, i ? "," : "", dg, lens[i]);
		free(diff);
		free(descs);
		diff = d2;
		descs = s2;
	}
	char *cfg = pv_xasprintf("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},"
				 "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[%s]}}",
				 diff);
	image_digest_buf(cfg, strlen(cfg), dg);
	char *p = pv_xasprintf("/v2/%s/blobs/%s", repo, dg);
	route(p, cfg, strlen(cfg), "application/vnd.oci.image.config.v1+json");
	free(p);
	char *man = pv_xasprintf("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
				 "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
				 "\"digest\":\"%s\",\"size\":%zu},\"layers\":[%s]}",
				 dg, strlen(cfg), descs);
	p = pv_xasprintf("/v2/%s/manifests/%s", repo, tag);
	route(p, man, strlen(man), "application/vnd.oci.image.manifest.v1+json");
	free(p);
	free(man);
	free(cfg);
	free(diff);
	free(descs);
}

static char root[64];

static int setup(void **state)
{
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 64), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
	port = ntohs(a.sin_port);
	size_t l1, l2, l3, l4;
	char *a1 = layer("a", 1000, 'a', &l1), *shared = layer("shared", 2000, 's', &l2);
	char *b1 = layer("b", 3000, 'b', &l3);
	char *bomb = layer("zeros", 4 << 20, 0, &l4); /* 4 MiB unpacked */
	char *la[] = { shared, a1 }, *lb[] = { shared, b1 }, *lc[] = { shared, bomb };
	size_t na[] = { l2, l1 }, nb[] = { l2, l3 }, nc[] = { l2, l4 };
	serve_image("test/a", "1", la, na, 2);
	serve_image("test/b", "1", lb, nb, 2);
	serve_image("test/bomb", "1", lc, nc, 2);
	free(a1);
	free(shared);
	free(b1);
	free(bomb);
	stopping = 0;
	assert_int_equal(pthread_create(&server, NULL, server_main, NULL), 0);
	snprintf(root, sizeof(root), "/tmp/pv-test-pull-XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	stopping = 1;
	pthread_join(server, NULL);
	close(lfd);
	for (size_t i = 0; i < n_routes; i++) {
		free(routes[i].path);
		free(routes[i].body);
	}
	n_routes = 0;
	pv_rm_rf(root, NULL);
	return 0;
}

/* Entries of <root>/images/<sub>, "." and ".." aside. */
static int count(const char *sub)
{
	char *p = pv_xasprintf("%s/images/%s", root, sub);
	DIR *d = opendir(p);
	free(p);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static char *ref(const char *repo)
{
	return pv_xasprintf("127.0.0.1:%d/%s:1", port, repo);
}

static void pull_ok(struct image_store *s, const char *repo)
{
	char *r = ref(repo), *id = NULL;
	pv_err_t *e = NULL;
	if (image_store_pull(s, r, NULL, &id, &e) < 0)
		fail_msg("pull %s: %s", r, e->msg);
	free(id);
	free(r);
}

struct puller {
	struct image_store *s;
	const char *repo;
	int rc;
};

static void *pull_thread(void *arg)
{
	struct puller *p = arg;
	char *r = ref(p->repo), *id = NULL;
	pv_err_t *e = NULL;
	p->rc = image_store_pull(p->s, r, NULL, &id, &e);
	pv_err_free(e);
	free(id);
	free(r);
	return NULL;
}

static void test_tmp_stays_clean(void **state)
{
	/* A lock file an older podvisord left behind goes at open. */
	struct image_store *s;
	pv_err_t *e = NULL;
	assert_int_equal(image_store_open(root, NULL, &s, &e), 0);
	image_store_close(s);
	char *old = pv_xasprintf("%s/images/tmp/chain-0123.lock", root);
	assert_int_equal(pv_write_file_atomic(old, "", 0, 0600, NULL), 0);
	free(old);
	assert_int_equal(image_store_open(root, NULL, &s, &e), 0);
	assert_int_equal(count("tmp"), 0);

	pull_ok(s, "test/a");
	assert_int_equal(count("tmp"), 0);
	pull_ok(s, "test/a"); /* everything there already */
	pull_ok(s, "test/b"); /* one layer shared */
	assert_int_equal(count("tmp"), 0);
	/* Many threads pulling the same blobs and chains at once. */
	int removed = 0;
	char *ra = ref("test/a"), *rb = ref("test/b");
	assert_int_equal(image_store_remove(s, ra, &removed, &e), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(image_store_remove(s, rb, &removed, &e), 0);
	assert_int_equal(removed, 1);
	free(ra);
	free(rb);
	assert_int_equal(count("blobs/sha256"), 0);
	pthread_t th[6];
	struct puller p[6];
	for (int i = 0; i < 6; i++) {
		p[i] = (struct puller){ s, i % 2 ? "test/a" : "test/b", -1 };
		assert_int_equal(pthread_create(&th[i], NULL, pull_thread, &p[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(p[i].rc, 0);
	}
	assert_int_equal(count("tmp"), 0);
	assert_int_equal(count("records"), 2);
	assert_int_equal(count("ext4"), 2);
	image_store_close(s);
}

static void test_unpacked_cap(void **state)
{
	json_t *cfg = json_pack("{s:I}", "max_unpacked_bytes", (json_int_t)(1 << 20));
	struct image_store *s;
	pv_err_t *e = NULL;
	assert_int_equal(image_store_open(root, cfg, &s, &e), 0);
	json_decref(cfg);
	char *r = ref("test/bomb"), *id = NULL;
	assert_true(image_store_pull(s, r, NULL, &id, &e) < 0);
	assert_null(id);
	assert_int_equal(e->status, PV_RESOURCE_EXHAUSTED);
	if (!strstr(e->msg, r) || !strstr(e->msg, "more than 1048576 bytes (image.max_unpacked_bytes)"))
		fail_msg("\"%s\" names not the image and the cap", e->msg);
	pv_err_free(e);
	e = NULL;
	/* Nothing of it stays: no blob, no ext4 image, no record, nothing in tmp/. */
	assert_int_equal(count("blobs/sha256"), 0);
	assert_int_equal(count("ext4"), 0);
	assert_int_equal(count("records"), 0);
	assert_int_equal(count("tmp"), 0);
	struct image_info *info = NULL;
	assert_true(image_store_resolve(s, r, &info, &e) < 0);
	assert_int_equal(e->status, PV_NOT_FOUND);
	pv_err_free(e);
	/* An image under the cap that shares a layer with it pulls, and keeps that layer. */
	pull_ok(s, "test/a");
	assert_int_equal(count("blobs/sha256"), 4); /* manifest, config, two layers */
	assert_int_equal(count("tmp"), 0);
	free(r);
	image_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tmp_stays_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpacked_cap, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
