/* Unit tests: one-time streaming tokens (single use, expiry, the table's bound). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "token.h"

static const int32_t ports[] = { 80, 8080 };

static void test_single_use(void **state)
{
	(void)state;
	struct stream_tokens t;
	stream_tokens_init(&t);
	struct cri_stream_req req = { .kind = CRI_STREAM_PORTFORWARD, .pod_id = "pod1", .ports = ports, .nports = 2 };
	char a[STREAM_TOKEN_LEN + 1], b[STREAM_TOKEN_LEN + 1];
	assert_int_equal(stream_token_add(&t, &req, a, NULL), 0);
	assert_int_equal(stream_token_add(&t, &req, b, NULL), 0);
	assert_int_equal(strlen(a), STREAM_TOKEN_LEN);
	assert_string_not_equal(a, b);
	struct stream_req *r = stream_token_take(&t, a);
	assert_non_null(r);
	assert_string_equal(r->pod_id, "pod1");
	assert_int_equal(r->nports, 2);
	assert_int_equal(r->ports[1], 8080);
	stream_req_free(r);
	assert_null(stream_token_take(&t, a)); /* used */
	assert_null(stream_token_take(&t, "0123456789abcdef0123456789abcdef"));
	assert_null(stream_token_take(&t, "short"));
	assert_null(stream_token_take(&t, NULL));
	stream_tokens_fini(&t); /* b is freed with the table */
}

static void test_expiry(void **state)
{
	(void)state;
	struct stream_tokens t;
	stream_tokens_init(&t);
	assert_true(t.ttl_ns == 60LL * 1000 * 1000 * 1000);
	t.ttl_ns = 50 * 1000 * 1000; /* 50 ms for the test */
	uint8_t open[] = { 1, 2, 3 };
	struct cri_stream_req req = { .kind = CRI_STREAM_EXEC, .pod_id = "p", .open_req = open, .open_len = 3 };
	char a[STREAM_TOKEN_LEN + 1], b[STREAM_TOKEN_LEN + 1];
	assert_int_equal(stream_token_add(&t, &req, a, NULL), 0);
	struct timespec ts = { 0, 80 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	assert_int_equal(stream_token_add(&t, &req, b, NULL), 0);
	assert_null(stream_token_take(&t, a));
	struct stream_req *r = stream_token_take(&t, b);
	assert_non_null(r);
	assert_int_equal(r->open_len, 3);
	assert_memory_equal(r->open_req, open, 3);
	stream_req_free(r);
	stream_tokens_fini(&t);
}

static void test_table_is_bounded(void **state)
{
	(void)state;
	struct stream_tokens t;
	stream_tokens_init(&t);
	struct cri_stream_req req = { .kind = CRI_STREAM_EXEC, .pod_id = "p" };
	char a[STREAM_TOKEN_LEN + 1];
	for (int i = 0; i < STREAM_TOKEN_MAX; i++)
		assert_int_equal(stream_token_add(&t, &req, a, NULL), 0);
	pv_err_t *err = NULL;
	assert_true(stream_token_add(&t, &req, a, &err) < 0);
	assert_int_equal(err->status, PV_RESOURCE_EXHAUSTED);
	pv_err_free(err);
	stream_tokens_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_use),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_table_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
