/* Manifest / index / config parsing, platform selection, digests and chain IDs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "../digest.h"
#include "../manifest.h"
#include "../registry.h"
#include "error.h"

#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static const char oci_manifest[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	"\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" DA "\",\"size\":10},"
	"\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" DB "\",\"size\":20},"
	"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"" DC "\",\"size\":30}]}";

static void test_oci_manifest(void **state)
{
	struct image_doc d;
	pv_err_t *e = NULL;
	assert_int_equal(image_doc_parse(oci_manifest, strlen(oci_manifest), NULL, &d, &e), 0);
	assert_int_equal(d.kind, IMAGE_DOC_MANIFEST);
	assert_string_equal(d.config.digest, DA);
	assert_int_equal(d.config.size, 10);
	assert_int_equal(d.n_layers, 2);
	assert_int_equal(d.layers[0].comp, IMAGE_COMP_GZIP);
	assert_int_equal(d.layers[1].comp, IMAGE_COMP_ZSTD);
	assert_int_equal(d.layers[1].size, 30);
	image_doc_free(&d);
}

static void test_docker_manifest_by_content_type(void **state)
{
	const char *m = "{\"schemaVersion\":2,"
			"\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"digest\":\"" DA
			"\",\"size\":1},\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\","
			"\"digest\":\"" DB "\",\"size\":2}]}";
	struct image_doc d;
	pv_err_t *e = NULL;
	assert_int_equal(image_doc_parse(m, strlen(m), MT_DOCKER_MANIFEST "; charset=utf-8", &d, &e), 0);
	assert_string_equal(d.media_type, MT_DOCKER_MANIFEST);
	assert_int_equal(d.n_layers, 1);
	image_doc_free(&d);
}

static const char index_json[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DA "\",\"size\":1,"
	"\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DB "\",\"size\":2,"
	"\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DC "\",\"size\":3,"
	"\"platform\":{\"os\":\"windows\",\"architecture\":\"amd64\"}}]}";

static void test_index_select(void **state)
{
	struct image_doc d;
	pv_err_t *e = NULL;
	const struct image_descriptor *sel;
	assert_int_equal(image_doc_parse(index_json, strlen(index_json), NULL, &d, &e), 0);
	assert_int_equal(d.kind, IMAGE_DOC_INDEX);
	assert_int_equal(d.n_manifests, 3);
	assert_int_equal(image_doc_select(&d, "linux", "amd64", NULL, &sel, &e), 0);
	assert_string_equal(sel->digest, DB);
	assert_int_equal(image_doc_select(&d, "linux", "arm64", "v8", &sel, &e), 0);
	assert_string_equal(sel->digest, DA);
	assert_int_equal(image_doc_select(&d, "windows", "amd64", NULL, &sel, &e), 0);
	assert_string_equal(sel->digest, DC);
	assert_int_not_equal(image_doc_select(&d, "linux", "s390x", NULL, &sel, &e), 0);
	assert_int_equal(e->status, PV_NOT_FOUND);
	assert_non_null(strstr(e->msg, "linux/arm64/v8, linux/amd64, windows/amd64"));
	pv_err_free(e);
	image_doc_free(&d);
}

static void doc_bad(const char *txt, const char *want)
{
	struct image_doc d;
	pv_err_t *e = NULL;
	assert_int_not_equal(image_doc_parse(txt, strlen(txt), NULL, &d, &e), 0);
	assert_non_null(e);
	if (!strstr(e->msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", e->msg, want);
	pv_err_free(e);
}

static void test_bad_manifests(void **state)
{
	doc_bad("{not json", "not valid JSON");
	doc_bad("[]", "not a JSON object");
	doc_bad("{\"schemaVersion\":1}", "schemaVersion");
	doc_bad("{\"schemaVersion\":2,\"mediaType\":\"application/x-evil\"}", "unsupported manifest media type");
	doc_bad("{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\",\"config\":{\"mediaType\":\"" MT_OCI_CONFIG
		"\",\"digest\":\"" DA "\",\"size\":1},\"layers\":[{\"mediaType\":\"application/x-rar\",\"digest\":\"" DB
		"\",\"size\":1}]}",
		"unsupported media type \"application/x-rar\"");
	doc_bad("{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\",\"config\":{\"mediaType\":\"" MT_OCI_CONFIG
		"\",\"digest\":\"md5:abc\",\"size\":1},\"layers\":[]}",
		"unsupported digest");
	doc_bad("{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\",\"config\":{\"mediaType\":\"" MT_OCI_CONFIG
		"\",\"digest\":\"" DA "\",\"size\":-1},\"layers\":[]}",
		"negative size");
	doc_bad("{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":{}}", "manifests array");
	doc_bad("{\"schemaVersion\":2,\"schemaVersion\":2}", "not valid JSON"); /* duplicate keys */
}

static void test_config(void **state)
{
	const char *c = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"User\":\"1000:1000\","
			"\"Env\":[\"PATH=/bin\"],\"Entrypoint\":[\"/bin/sh\"],\"Cmd\":[\"-c\",\"true\"],"
			"\"WorkingDir\":\"/w\",\"StopSignal\":\"SIGINT\",\"ExposedPorts\":{\"80/tcp\":{}}},"
			"\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA "\",\"" DB "\"]}}";
	struct image_config cfg;
	pv_err_t *e = NULL;
	assert_int_equal(image_config_parse(c, strlen(c), &cfg, &e), 0);
	assert_string_equal(cfg.user, "1000:1000");
	assert_string_equal(cfg.env[0], "PATH=/bin");
	assert_string_equal(cfg.entrypoint[0], "/bin/sh");
	assert_string_equal(cfg.cmd[1], "true");
	assert_string_equal(cfg.workdir, "/w");
	assert_string_equal(cfg.stop_signal, "SIGINT");
	assert_string_equal(cfg.exposed_ports[0], "80/tcp");
	assert_int_equal(cfg.n_diff_ids, 2);
	/* chain ID: sha256("<id0> <id1>") per the OCI image spec */
	char chain[IMAGE_DIGEST_LEN + 1], want[IMAGE_DIGEST_LEN + 1];
	image_chain_id(cfg.diff_ids, cfg.n_diff_ids, chain);
	const char *s = DA " " DB;
	image_digest_buf(s, strlen(s), want);
	assert_string_equal(chain, want);
	image_chain_id(cfg.diff_ids, 1, chain);
	assert_string_equal(chain, DA);
	image_config_free(&cfg);

	const char *bad = "{\"rootfs\":{\"diff_ids\":[\"nope\"]}}";
	assert_int_not_equal(image_config_parse(bad, strlen(bad), &cfg, &e), 0);
	assert_non_null(strstr(e->msg, "diff_id"));
	pv_err_free(e);
	e = NULL;
	assert_int_not_equal(image_config_parse("{", 1, &cfg, &e), 0);
	assert_non_null(strstr(e->msg, "not valid JSON"));
	pv_err_free(e);
}

static void test_digest(void **state)
{
	char d[IMAGE_DIGEST_LEN + 1];
	image_digest_buf("abc", 3, d);
	assert_string_equal(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_true(image_digest_valid(d));
	assert_false(image_digest_valid("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
	assert_false(image_digest_valid("sha512:ba78"));
	assert_false(image_digest_valid(DA "a"));
	pv_err_t *e = NULL;
	assert_int_equal(image_digest_verify("abc", 3, d, &e), 0);
	assert_int_not_equal(image_digest_verify("abd", 3, d, &e), 0);
	assert_int_equal(e->status, PV_DATA_LOSS);
	assert_non_null(strstr(e->msg, "digest mismatch"));
	pv_err_free(e);
}

static void test_challenge(void **state)
{
	struct registry_challenge ch;
	assert_int_equal(registry_parse_challenge("Bearer realm=\"https://auth.example/token\",service=\"reg\","
						  "scope=\"repository:a/b:pull\"",
						  &ch),
			 0);
	assert_string_equal(ch.scheme, "Bearer");
	assert_string_equal(ch.realm, "https://auth.example/token");
	assert_string_equal(ch.service, "reg");
	assert_string_equal(ch.scope, "repository:a/b:pull");
	registry_challenge_free(&ch);
	assert_int_equal(registry_parse_challenge("Basic realm=\"Registry Realm\"", &ch), 0);
	assert_string_equal(ch.scheme, "Basic");
	assert_string_equal(ch.realm, "Registry Realm");
	registry_challenge_free(&ch);
	assert_int_not_equal(registry_parse_challenge("Bearer realm=\"unterminated", &ch), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oci_manifest),    cmocka_unit_test(test_docker_manifest_by_content_type),
		cmocka_unit_test(test_index_select),    cmocka_unit_test(test_bad_manifests),
		cmocka_unit_test(test_config),          cmocka_unit_test(test_digest),
		cmocka_unit_test(test_challenge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
