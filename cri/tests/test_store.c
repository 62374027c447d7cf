/* Pod/container metadata: names, id prefixes, persistence across a reopen, half-made objects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

static char root[] = "/tmp/pv-store-test-XXXXXX";

static int setup(void **state)
{
	strcpy(root, "/tmp/pv-store-test-XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	return pv_rm_rf(root, NULL);
}

static Runtime__V1__PodSandboxConfig *pod_cfg(const char *name, unsigned attempt)
{
	static Runtime__V1__PodSandboxConfig cfg;
	static Runtime__V1__PodSandboxMetadata md;
	static Runtime__V1__PodSandboxConfig__LabelsEntry lab, *labs[1];
	runtime__v1__pod_sandbox_config__init(&cfg);
	runtime__v1__pod_sandbox_metadata__init(&md);
	runtime__v1__pod_sandbox_config__labels_entry__init(&lab);
	md.name = (char *)name;
	md.namespace_ = "default";
	md.uid = "uid-1";
	md.attempt = attempt;
	lab.key = "app";
	lab.value = (char *)name;
	labs[0] = &lab;
	cfg.metadata = &md;
	cfg.hostname = "host-a";
	cfg.n_labels = 1;
	cfg.labels = labs;
	return &cfg;
}

static Runtime__V1__ContainerConfig *ctr_cfg(const char *name, unsigned attempt)
{
	static Runtime__V1__ContainerConfig cfg;
	static Runtime__V1__ContainerMetadata md;
	runtime__v1__container_config__init(&cfg);
	runtime__v1__container_metadata__init(&md);
	md.name = (char *)name;
	md.attempt = attempt;
	cfg.metadata = &md;
	cfg.log_path = "c.log";
	return &cfg;
}

static void test_pod_names_unique(void **state)
{
	struct pv_store *s;
	pv_err_t *err = NULL;
	assert_int_equal(pv_store_open(root, &s, &err), 0);
	struct pv_pod_state st = { .ready = 1, .created_ns = 1 };
	char *id1 = NULL, *id2 = NULL;
	assert_int_equal(pv_store_pod_add(s, pod_cfg("web", 0), &st, &id1, &err), 0);
	assert_int_equal(strlen(id1), 64);
	assert_true(pv_store_pod_add(s, pod_cfg("web", 0), &st, &id2, &err) < 0);
	assert_int_equal(err->status, PV_ALREADY_EXISTS);
	assert_non_null(strstr(err->msg, id1));
	pv_err_free(err);
	err = NULL;
	assert_null(id2);
	/* A new attempt is a new name. */
	assert_int_equal(pv_store_pod_add(s, pod_cfg("web", 1), &st, &id2, &err), 0);
	assert_string_not_equal(id1, id2);
	free(id1);
	free(id2);
	pv_store_close(s);
}

static void test_prefix_lookup(void **state)
{
	struct pv_store *s;
	pv_err_t *err = NULL;
	assert_int_equal(pv_store_open(root, &s, &err), 0);
	struct pv_pod_state st = { .created_ns = 5 };
	char *id = NULL;
	assert_int_equal(pv_store_pod_add(s, pod_cfg("db", 0), &st, &id, &err), 0);
	struct pv_pod *p = NULL;
	char prefix[9];
	memcpy(prefix, id, 8);
	prefix[8] = '\0';
	assert_int_equal(pv_store_pod_get(s, prefix, &p, &err), 0);
	assert_string_equal(p->id, id);
	assert_string_equal(p->config->metadata->name, "db");
	pv_pod_free(p);
	p = NULL;
	assert_true(pv_store_pod_get(s, "zz", &p, &err) < 0); /* too short to be a prefix */
	assert_int_equal(err->status, PV_NOT_FOUND);
	assert_null(p);
	pv_err_free(err);
	err = NULL;
	assert_true(pv_store_pod_get(s, "", &p, &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	pv_err_free(err);
	free(id);
	pv_store_close(s);
}

static void test_persisted_across_reopen(void **state)
{
	struct pv_store *s;
	pv_err_t *err = NULL;
	assert_int_equal(pv_store_open(root, &s, &err), 0);
	char *pids[3], *cid = NULL;
	for (int i = 0; i < 3; i++) {
		char name[8];
		snprintf(name, sizeof(name), "p%d", i);
		struct pv_pod_state st = { .ready = 1, .created_ns = 100 - i }; /* reverse creation times */
		assert_int_equal(pv_store_pod_add(s, pod_cfg(name, 0), &st, &pids[i], &err), 0);
	}
	struct pv_ctr_state cst = { .state = 1, .created_ns = 7, .exit_code = 3 };
	cst.reason = "Error";
	cst.log_path = "/var/log/x.log";
	assert_int_equal(pv_store_ctr_add(s, pids[0], ctr_cfg("app", 0), &cst, &cid, &err), 0);
	struct pv_pod_state nr = { .ready = 0, .created_ns = 100, .ip = "10.1.2.3" };
	nr.reason = "VMExited";
	assert_int_equal(pv_store_pod_set_state(s, pids[0], &nr, &err), 0);
	pv_store_close(s);

	assert_int_equal(pv_store_open(root, &s, &err), 0);
	size_t n;
	struct pv_pod **pods = pv_store_pod_list(s, &n);
	assert_int_equal(n, 3);
	/* Loaded oldest first. */
	assert_string_equal(pods[0]->id, pids[2]);
	assert_string_equal(pods[2]->id, pids[0]);
	assert_int_equal(pods[2]->st.ready, 0);
	assert_string_equal(pods[2]->st.ip, "10.1.2.3");
	assert_string_equal(pods[2]->st.reason, "VMExited");
	assert_string_equal(pods[2]->config->hostname, "host-a");
	assert_true(pv_labels_match(NULL, 0, PV_MAP(pods[2]->config->labels), pods[2]->config->n_labels));
	pv_pod_list_free(pods, n);
	struct pv_ctr *c = NULL;
	assert_int_equal(pv_store_ctr_get(s, cid, &c, &err), 0);
	assert_string_equal(c->pod_id, pids[0]);
	assert_int_equal(c->st.exit_code, 3);
	assert_string_equal(c->st.reason, "Error");
	assert_string_equal(c->config->metadata->name, "app");
	pv_ctr_free(c);
	for (int i = 0; i < 3; i++)
		free(pids[i]);
	free(cid);
	pv_store_close(s);
}

static void test_container_rules(void **state)
{
	struct pv_store *s;
	pv_err_t *err = NULL;
	assert_int_equal(pv_store_open(root, &s, &err), 0);
	struct pv_pod_state st = { .created_ns = 1 };
	char *pid = NULL, *c1 = NULL, *c2 = NULL;
	assert_int_equal(pv_store_pod_add(s, pod_cfg("pod", 0), &st, &pid, &err), 0);
	struct pv_ctr_state cst = { 0 };
	assert_true(pv_store_ctr_add(s, "nope", ctr_cfg("a", 0), &cst, &c1, &err) < 0);
	assert_int_equal(err->status, PV_NOT_FOUND);
	pv_err_free(err);
	err = NULL;
	assert_int_equal(pv_store_ctr_add(s, pid, ctr_cfg("a", 0), &cst, &c1, &err), 0);
	assert_true(pv_store_ctr_add(s, pid, ctr_cfg("a", 0), &cst, &c2, &err) < 0);
	assert_int_equal(err->status, PV_ALREADY_EXISTS);
	pv_err_free(err);
	err = NULL;
	assert_int_equal(pv_store_ctr_add(s, pid, ctr_cfg("a", 1), &cst, &c2, &err), 0);
	assert_int_equal(pv_store_ctr_remove(s, c1, &err), 0);
	assert_true(pv_store_ctr_remove(s, c1, &err) < 0);
	assert_int_equal(err->status, PV_NOT_FOUND);
	pv_err_free(err);
	err = NULL;
	/* Removing the pod leaves c2 orphaned on disk: dropped at the next load. */
	assert_int_equal(pv_store_pod_remove(s, pid, &err), 0);
	pv_store_close(s);
	assert_int_equal(pv_store_open(root, &s, &err), 0);
	size_t n;
	struct pv_ctr **list = pv_store_ctr_list(s, &n);
	assert_int_equal(n, 0);
	pv_ctr_list_free(list, n);
	char *dir = pv_xasprintf("%s/containers/%s", root, c2);
	assert_int_equal(access(dir, F_OK), -1);
	free(dir);
	free(pid);
	free(c1);
	free(c2);
	pv_store_close(s);
}

static void test_half_made_object_dropped(void **state)
{
	char *dir = pv_xasprintf("%s/pods/deadbeef", root);
	assert_int_equal(pv_mkdir_p(dir, 0700, NULL), 0);
	char *junk = pv_xasprintf("%s/config.pb", dir);
	assert_int_equal(pv_write_file_atomic(junk, "\xff\xff", 2, 0600, NULL), 0);
	struct pv_store *s;
	pv_err_t *err = NULL;
	assert_int_equal(pv_store_open(root, &s, &err), 0);
	size_t n;
	struct pv_pod **pods = pv_store_pod_list(s, &n);
	assert_int_equal(n, 0);
	pv_pod_list_free(pods, n);
	assert_int_equal(access(dir, F_OK), -1);
	pv_store_close(s);
	free(dir);
	free(junk);
}

static void test_labels_match(void **state)
{
	struct pv_map_entry a = { .key = "app", .value = "web" }, b = { .key = "tier", .value = "fe" };
	struct pv_map_entry *labels[] = { &a, &b };
	struct pv_map_entry s1 = { .key = "app", .value = "web" }, s2 = { .key = "tier", .value = "be" };
	struct pv_map_entry *sel_ok[] = { &s1 }, *sel_bad[] = { &s1, &s2 };
	assert_true(pv_labels_match(sel_ok, 1, labels, 2));
	assert_false(pv_labels_match(sel_bad, 2, labels, 2));
	assert_true(pv_labels_match(NULL, 0, labels, 2));
	assert_false(pv_labels_match(sel_ok, 1, NULL, 0));
	assert_string_equal(pv_map_get(labels, 2, "tier"), "fe");
	assert_null(pv_map_get(labels, 2, "x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pod_names_unique, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefix_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persisted_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_container_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_made_object_dropped, setup, teardown),
		cmocka_unit_test(test_labels_match),
	};
	return cmocka_run_group_tests_name("cri_store", tests, NULL, NULL);
}
