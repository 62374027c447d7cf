/* Config file parsing: defaults, overrides, and errors that name file, key and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

static void test_defaults_when_default_file_missing(void **state)
{
	struct pv_config *c = NULL;
	pv_err_t *err = NULL;
	assert_int_equal(pv_config_load("/nonexistent/podvisor.json", 0, &c, &err), 0);
	assert_null(err);
	assert_string_equal(c->socket_path, PV_DEFAULT_SOCKET);
	assert_string_equal(c->root_dir, PV_DEFAULT_ROOT);
	assert_string_equal(c->cgroup_driver, "cgroupfs");
	assert_int_equal(c->max_concurrent_calls, 1024);
	assert_null(c->config_path);
	pv_config_free(c);
}

static void test_explicit_missing_file_is_error(void **state)
{
	struct pv_config *c = NULL;
	pv_err_t *err = NULL;
	assert_true(pv_config_load("/nonexistent/podvisor.json", 1, &c, &err) < 0);
	assert_null(c);
	assert_non_null(strstr(err->msg, "/nonexistent/podvisor.json"));
	pv_err_free(err);
}

static void test_values_are_read(void **state)
{
	struct pv_config *c = NULL;
	pv_err_t *err = NULL;
	const char *doc = "{\n \"listen\": \"/tmp/x.sock\",\n \"root\": \"/tmp/root\",\n"
			  " \"log_level\": \"debug\", \"cgroup_driver\": \"systemd\",\n"
			  " \"max_concurrent_calls\": 7, \"image\": {\"a\": 1}\n}";
	assert_int_equal(pv_config_parse("t.json", doc, &c, &err), 0);
	assert_string_equal(c->socket_path, "/tmp/x.sock");
	assert_string_equal(c->root_dir, "/tmp/root");
	assert_int_equal(c->log_level, PV_LOG_DEBUG);
	assert_string_equal(c->cgroup_driver, "systemd");
	assert_int_equal(c->max_concurrent_calls, 7);
	assert_non_null(c->image);
	assert_int_equal(json_integer_value(json_object_get(c->image, "a")), 1);
	assert_null(c->runtime);
	pv_config_free(c);
}

static void expect_error(const char *doc, const char *needle1, const char *needle2)
{
	struct pv_config *c = NULL;
	pv_err_t *err = NULL;
	assert_true(pv_config_parse("cfg.json", doc, &c, &err) < 0);
	assert_null(c);
	assert_non_null(err);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	if (!strstr(err->msg, needle1) || !strstr(err->msg, needle2))
		fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err->msg, needle1, needle2);
	pv_err_free(err);
}

static void test_unknown_key_names_file_key_and_line(void **state)
{
	expect_error("{\n  \"root\": \"/r\",\n\n  \"colour\": \"blue\"\n}", "cfg.json:4:", "\"colour\": unknown key");
}

static void test_malformed_json_names_line(void **state)
{
	expect_error("{\n \"root\": \"/r\",\n \"listen\" \"/x\"\n}", "cfg.json:3:", "invalid JSON");
}

static void test_duplicate_key_rejected(void **state)
{
	expect_error("{\"root\": \"/a\", \"root\": \"/b\"}", "cfg.json:1:", "invalid JSON");
}

static void test_wrong_types_rejected(void **state)
{
	expect_error("{\"root\": 5}", "\"root\"", "non-empty string");
	expect_error("{\"log_level\": \"loud\"}", "\"log_level\"", "debug, info, warn, error");
	expect_error("{\"cgroup_driver\": \"yes\"}", "\"cgroup_driver\"", "cgroupfs");
	expect_error("{\"max_concurrent_calls\": 0}", "\"max_concurrent_calls\"", "1 to 65536");
	expect_error("{\"image\": []}", "\"image\"", "object");
	expect_error("[1, 2]", "cfg.json", "top level must be a JSON object");
}

static void test_streaming_keys(void **state)
{
	struct pv_config *c = NULL;
	assert_int_equal(pv_config_parse("t.json", "{}", &c, NULL), 0);
	assert_string_equal(c->stream_address, "127.0.0.1");
	assert_int_equal(c->stream_port, 0);
	assert_null(c->stream_tls_cert);
	pv_config_free(c);
	const char *doc = "{\"streaming\": {\"address\": \"::1\", \"port\": 10010, \"tls_cert\": \"/c.pem\", "
			  "\"tls_key\": \"/k.pem\"}}";
	assert_int_equal(pv_config_parse("t.json", doc, &c, NULL), 0);
	assert_string_equal(c->stream_address, "::1");
	assert_int_equal(c->stream_port, 10010);
	assert_string_equal(c->stream_tls_cert, "/c.pem");
	assert_string_equal(c->stream_tls_key, "/k.pem");
	pv_config_free(c);
	expect_error("{\n \"streaming\": {\n  \"adress\": \"x\"}}", "cfg.json:3:", "\"streaming.adress\": unknown key");
	expect_error("{\"streaming\": {\"port\": 70000}}", "\"streaming.port\"", "0 to 65535");
	expect_error("{\"streaming\": {\"address\": \"\"}}", "\"streaming.address\"", "non-empty string");
	expect_error("{\"streaming\": {\"tls_cert\": \"/c\"}}", "\"streaming.tls_cert\"", "go together");
	expect_error("{\"streaming\": 1}", "\"streaming\"", "object");
}

static void test_key_line(void **state)
{
	assert_int_equal(pv_config_key_line("{\n\n \"a\": 1}", "a"), 3);
	assert_int_equal(pv_config_key_line("{}", "a"), 0);
	assert_int_equal(pv_config_key_line(NULL, "a"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_when_default_file_missing),
		cmocka_unit_test(test_explicit_missing_file_is_error),
		cmocka_unit_test(test_values_are_read),
		cmocka_unit_test(test_unknown_key_names_file_key_and_line),
		cmocka_unit_test(test_malformed_json_names_line),
		cmocka_unit_test(test_duplicate_key_rejected),
		cmocka_unit_test(test_wrong_types_rejected),
		cmocka_unit_test(test_streaming_keys),
		cmocka_unit_test(test_key_line),
	};
	return cmocka_run_group_tests_name("cri_config", tests, NULL, NULL);
}
