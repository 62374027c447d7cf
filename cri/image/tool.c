/* podvisor-image: debug CLI over the image store (pull/list/status/remove/ext4/unpack). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ext4.h"
#include "layer.h"
#include "log.h"
#include "store.h"
#include "util.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: podvisor-image [--root DIR] [--config FILE] [--user U --password P] COMMAND\n"
		"  pull REF        pull an image, print its id\n"
		"  list            print all images as JSON\n"
		"  status REF      print one image as JSON (exit 1 if absent)\n"
		"  remove REF      remove an image and collect unreferenced data\n"
		"  ext4 REF        print the path of the image's ext4 root filesystem\n"
		"  unpack OUT LAYER...  apply local tar layers and write OUT as ext4 (no store)\n"
		"  usage           print bytes and inodes used by the store\n");
	exit(2);
}

static json_t *strv_json(char **v)
{
	json_t *a = json_array();
	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static void print_info(const struct image_info *i)
{
	json_t *j = json_pack("{s:s, s:o, s:o, s:I, s:s, s:s}", "id", i->id, "repo_tags", strv_json(i->repo_tags),
			      "repo_digests", strv_json(i->repo_digests), "size", (json_int_t)i->size, "chain_id",
			      i->chain_id, "ext4", i->ext4_path);
	if (i->has_uid)
		json_object_set_new(j, "uid", json_integer(i->uid));
	if (i->username)
		json_object_set_new(j, "username", json_string(i->username));
	json_object_set_new(j, "entrypoint", strv_json(i->entrypoint));
	json_object_set_new(j, "cmd", strv_json(i->cmd));
	json_object_set_new(j, "env", strv_json(i->env));
	if (i->workdir)
		json_object_set_new(j, "workdir", json_string(i->workdir));
	char *s = json_dumps(j, JSON_COMPACT);
	printf("%s\n", s);
	free(s);
	json_decref(j);
}

static int fail(pv_err_t *e)
{
	fprintf(stderr, "podvisor-image: %s (%s)\n", e->msg, pv_status_name(e->status));
	int code = e->status == PV_NOT_FOUND ? 3 : 1;
	pv_err_free(e);
	return code;
}

static int do_unpack(int argc, char **argv)
{
	if (argc < 2)
		usage();
	pv_err_t *e = NULL;
	struct fs_tree *t;
	cleanup_free char *out = pv_xstrdup(argv[0]);
	cleanup_free char *dir = pv_xstrdup(out);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	if (fs_tree_new(slash ? dir : ".", &t, &e) < 0)
		return fail(e);
	for (int i = 1; i < argc; i++)
		if (fs_tree_apply_file(t, argv[i], &e) < 0) {
			fs_tree_free(t);
			return fail(e);
		}
	int r = image_ext4_write(t, out, &e);
	fs_tree_free(t);
	return r < 0 ? fail(e) : 0;
}

int main(int argc, char **argv)
{
	const char *root = "/var/lib/podvisor", *config = NULL, *user = NULL, *pass = NULL;
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },     { "config", required_argument, NULL, 'c' },
		{ "user", required_argument, NULL, 'u' },     { "password", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },           { NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "+r:c:u:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': root = optarg; break;
		case 'c': config = optarg; break;
		case 'u': user = optarg; break;
		case 'p': pass = optarg; break;
		default: usage();
		}
	}
	if (optind >= argc)
		usage();
	const char *cmd = argv[optind++];
	if (!strcmp(cmd, "unpack"))
		return do_unpack(argc - optind, argv + optind);
	json_t *cfg = NULL;
	if (config) {
		json_error_t je;
		json_t *all = json_load_file(config, 0, &je);
		if (!all) {
			fprintf(stderr, "podvisor-image: %s: %s\n", config, je.text);
			return 1;
		}
		cfg = json_incref(json_object_get(all, "image"));
		json_decref(all);
	}
	pv_err_t *e = NULL;
	struct image_store *s;
	int r = image_store_open(root, cfg, &s, &e);
	json_decref(cfg);
	if (r < 0)
		return fail(e);
	int code = 0;
	const char *arg = optind < argc ? argv[optind] : NULL;
	if (!strcmp(cmd, "pull") && arg) {
		struct registry_auth auth = { .username = user, .password = pass };
		cleanup_free char *id = NULL;
		if (image_store_pull(s, arg, user ? &auth : NULL, &id, &e) < 0)
			code = fail(e);
		else
			printf("%s\n", id);
	} else if (!strcmp(cmd, "list")) {
		struct image_info **v;
		size_t n;
		if (image_store_list(s, &v, &n, &e) < 0) {
			code = fail(e);
		} else {
			for (size_t i = 0; i < n; i++)
				print_info(v[i]);
			image_info_list_free(v, n);
		}
	} else if ((!strcmp(cmd, "status") || !strcmp(cmd, "ext4")) && arg) {
		struct image_info *i;
		if (image_store_resolve(s, arg, &i, &e) < 0) {
			code = fail(e);
		} else {
			if (!strcmp(cmd, "ext4"))
				printf("%s\n", i->ext4_path);
			else
				print_info(i);
			image_info_free(i);
		}
	} else if (!strcmp(cmd, "remove") && arg) {
		int removed = 0;
		if (image_store_remove(s, arg, &removed, &e) < 0)
			code = fail(e);
		else
			printf("%s\n", removed ? "removed" : "absent");
	} else if (!strcmp(cmd, "usage")) {
		uint64_t b, n;
		if (image_store_usage(s, &b, &n, &e) < 0)
			code = fail(e);
		else
			printf("{\"bytes\":%llu,\"inodes\":%llu}\n", (unsigned long long)b, (unsigned long long)n);
	} else {
		image_store_close(s);
		usage();
	}
	image_store_close(s);
	return code;
}
