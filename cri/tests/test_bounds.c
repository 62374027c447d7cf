/* Bounds on CRI requests (names, ids, sizes) and the wire scan for NUL bytes in strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "cleanup.h"
#include "server.h"
#include "util.h"
#include "wire.h"

static char *repeat(char c, size_t n)
{
	char *s = pv_xmalloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* The request is refused, the message names `field` and stays short whatever the input's size. */
static void expect_bad(const ProtobufCMessage *m, const char *field, const char *word)
{
	pv_err_t *err = NULL;
	assert_int_equal(cri_bounds_check(m, &err), -1);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	if (strncmp(err->msg, field, strlen(field)) || (word && !strstr(err->msg, word)))
		fail_msg("\"%s\" does not start with \"%s\" or lacks \"%s\"", err->msg, field, word ? word : "");
	assert_true(strlen(err->msg) < 1024);
	pv_err_free(err);
}

static void expect_ok(const ProtobufCMessage *m)
{
	pv_err_t *err = NULL;
	if (cri_bounds_check(m, &err) < 0)
		fail_msg("refused: %s", err->msg);
}

/* What kubelet sends for a pod: passes. */
struct pod {
	Runtime__V1__RunPodSandboxRequest req;
	Runtime__V1__PodSandboxConfig cfg;
	Runtime__V1__PodSandboxMetadata md;
	Runtime__V1__DNSConfig dns;
	Runtime__V1__PodSandboxConfig__LabelsEntry label, *labels[1];
	Runtime__V1__PodSandboxConfig__AnnotationsEntry ann, *anns[1];
	char *servers[4], *searches[40];
};

static void pod_init(struct pod *p)
{
	runtime__v1__run_pod_sandbox_request__init(&p->req);
	runtime__v1__pod_sandbox_config__init(&p->cfg);
	runtime__v1__pod_sandbox_metadata__init(&p->md);
	runtime__v1__dnsconfig__init(&p->dns);
	runtime__v1__pod_sandbox_config__labels_entry__init(&p->label);
	runtime__v1__pod_sandbox_config__annotations_entry__init(&p->ann);
	p->md.name = "coredns-5d78c9869d-x2w9k";
	p->md.namespace_ = "kube-system";
	p->md.uid = "0b5f4a8e-7c1d-4a63-9a3e-2f6c1d7e9b01";
	p->md.attempt = 3;
	p->cfg.metadata = &p->md;
	p->cfg.hostname = "coredns-5d78c9869d-x2w9k";
	p->cfg.log_directory = "/var/log/pods/kube-system_coredns-5d78c9869d-x2w9k_0b5f4a8e-7c1d-4a63-9a3e-2f6c1d7e9b01";
	p->servers[0] = "10.96.0.10";
	p->searches[0] = "kube-system.svc.cluster.local";
	p->dns.servers = p->servers;
	p->dns.n_servers = 1;
	p->dns.searches = p->searches;
	p->dns.n_searches = 1;
	p->cfg.dns_config = &p->dns;
	p->label.key = "io.kubernetes.pod.name";
	p->label.value = p->md.name;
	p->labels[0] = &p->label;
	p->cfg.labels = p->labels;
	p->cfg.n_labels = 1;
	p->ann.key = "kubernetes.io/config.seen";
	p->ann.value = "2026-11-27T12:00:00.000000000Z";
	p->anns[0] = &p->ann;
	p->cfg.annotations = p->anns;
	p->cfg.n_annotations = 1;
	p->req.config = &p->cfg;
	p->req.runtime_handler = "podvisor";
}

static void test_pod_names(void **state)
{
	struct pod p;
	pod_init(&p);
	expect_ok(&p.req.base);

	char *big = repeat('n', 3 << 20);
	p.md.namespace_ = big;
	expect_bad(&p.req.base, "config.metadata.namespace is 3145728 bytes long, more than 253", "nnnn...(3145728 bytes)");
	big[253] = '\0';
	expect_ok(&p.req.base);
	big[254] = '\0';
	big[253] = 'n';
	expect_bad(&p.req.base, "config.metadata.namespace", "more than 253");
	const char *bad_names[] = { "-a", ".a", " a", "a b", "a;b", "a=b", "a/b", "a\tb" };
	for (size_t i = 0; i < PV_ARRAY_SIZE(bad_names); i++) {
		p.md.namespace_ = (char *)bad_names[i];
		expect_bad(&p.req.base, "config.metadata.namespace", "only letters, digits");
	}
	/* what critest and containerd's users send */
	p.md.namespace_ = "Default_ns.1";
	expect_ok(&p.req.base);
	p.md.namespace_ = "kube-system";

	memset(big, 'a', 253);
	big[253] = '\0';
	big[100] = '.';
	p.md.name = big;
	expect_ok(&p.req.base);
	big[253] = 'a';
	big[254] = '\0';
	expect_bad(&p.req.base, "config.metadata.name", "more than 253");
	const char *bad_subs[] = { ".a", "a;K8S_POD_NAME=x", "a=b", "a b" };
	for (size_t i = 0; i < PV_ARRAY_SIZE(bad_subs); i++) {
		p.md.name = (char *)bad_subs[i];
		expect_bad(&p.req.base, "config.metadata.name", "only letters, digits");
	}
	p.md.name = "PodSandbox-for-test-stop-5f1c0c9a-2b7e-4bd1-9a0e-7c2d3f4e5a6b";
	expect_ok(&p.req.base);
	p.md.name = "web-0";

	p.md.uid = "uid;IgnoreUnknown=1";
	expect_bad(&p.req.base, "config.metadata.uid", "letters, digits");
	p.md.uid = big;
	expect_bad(&p.req.base, "config.metadata.uid", "more than 128");
	p.md.uid = "hdishd83djaidwnduwk28bcsb";
	p.md.attempt = (uint32_t)INT32_MAX + 1;
	expect_bad(&p.req.base, "config.metadata.attempt", "int32");
	p.md.attempt = INT32_MAX;
	expect_ok(&p.req.base);
	p.req.runtime_handler = big;
	expect_bad(&p.req.base, "runtime_handler", "more than 253");
	free(big);
}

static void test_pod_maps_and_dns(void **state)
{
	struct pod p;
	pod_init(&p);
	/* An annotation value far beyond the default string bound (kubectl's last-applied-configuration). */
	char *val = repeat('v', 300 << 10);
	p.ann.value = val;
	expect_ok(&p.req.base);
	free(val);
	val = repeat('v', 600 << 10);
	p.ann.value = val;
	expect_bad(&p.req.base, "config.annotations", "more than 524288 bytes");
	p.ann.value = "x";
	p.ann.key = "";
	expect_bad(&p.req.base, "config.annotations", "empty key");
	p.ann.key = val;
	expect_bad(&p.req.base, "config.annotations", "more than 317");
	p.ann.key = "a";
	val[100 << 10] = '\0';
	p.label.value = val;
	expect_bad(&p.req.base, "config.labels", "more than 65536 bytes");
	p.label.value = "x";
	free(val);

	p.dns.n_servers = 4;
	p.servers[1] = p.servers[2] = p.servers[3] = "10.0.0.1";
	expect_bad(&p.req.base, "config.dns_config.servers", "4 entries, more than 3");
	p.dns.n_servers = 1;
	char *dom = repeat('d', 200);
	for (size_t i = 0; i < 11; i++)
		p.searches[i] = dom;
	p.dns.n_searches = 11;
	expect_bad(&p.req.base, "config.dns_config.searches", "more than 2048");
	p.dns.n_searches = 33;
	expect_bad(&p.req.base, "config.dns_config.searches", "33 entries, more than 32");
	p.dns.n_searches = 10;
	expect_ok(&p.req.base);
	free(dom);
}

static void test_ids(void **state)
{
	Runtime__V1__StopPodSandboxRequest r = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
	r.pod_sandbox_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	expect_ok(&r.base);
	r.pod_sandbox_id = "01234567"; /* a prefix, as crictl users type */
	expect_ok(&r.base);
	r.pod_sandbox_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0";
	expect_bad(&r.base, "pod_sandbox_id", "more than 64");
	r.pod_sandbox_id = "../../etc";
	expect_bad(&r.base, "pod_sandbox_id", "not an id");
	Runtime__V1__ListContainersRequest l = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
	Runtime__V1__ContainerFilter f = RUNTIME__V1__CONTAINER_FILTER__INIT;
	l.filter = &f;
	f.id = "ABC";
	expect_bad(&l.base, "filter.id", "not an id");
	f.id = "";
	f.pod_sandbox_id = "xyz";
	expect_bad(&l.base, "filter.pod_sandbox_id", "not an id");
	assert_true(cri_bounds_id(""));
	assert_false(cri_bounds_id("0x1"));
	assert_true(cri_bounds_dns_label("a"));
	assert_true(cri_bounds_dns_subdomain("a.b-c.d"));
}

static void test_container(void **state)
{
	Runtime__V1__CreateContainerRequest r = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
	Runtime__V1__ContainerConfig c = RUNTIME__V1__CONTAINER_CONFIG__INIT;
	Runtime__V1__ContainerMetadata md = RUNTIME__V1__CONTAINER_METADATA__INIT;
	Runtime__V1__ImageSpec img = RUNTIME__V1__IMAGE_SPEC__INIT;
	r.pod_sandbox_id = "0123456789abcdef";
	r.config = &c;
	c.metadata = &md;
	c.image = &img;
	md.name = "app";
	img.image = "registry.example.com/team/app:1.2.3";
	c.log_path = "app/0.log";
	expect_ok(&r.base);
	md.name = "App_1";
	expect_ok(&r.base);
	md.name = "a;b";
	expect_bad(&r.base, "config.metadata.name", "only letters, digits");
	md.name = "app";
	char *big = repeat('x', 200 << 10);
	big[2000] = '\0';
	img.image = big;
	expect_bad(&r.base, "config.image.image", "more than 1024");
	img.image = "busybox";
	big[2000] = 'x';
	big[CRI_MAX_PATH + 1] = '\0';
	c.log_path = big;
	expect_bad(&r.base, "config.log_path", "more than 4095");
	c.log_path = "app/0.log";
	big[CRI_MAX_PATH + 1] = 'x';

	char *args[8] = { big };
	c.args = args;
	c.n_args = 1;
	expect_bad(&r.base, "config.args[0]", "more than 131072");
	big[100 << 10] = '\0';
	for (size_t i = 0; i < 8; i++)
		args[i] = big;
	c.n_args = 8;
	expect_bad(&r.base, "config (command, args and envs)", "more than 786432");
	c.n_args = 7;
	expect_ok(&r.base);
	c.n_args = 0;

	Runtime__V1__Mount m = RUNTIME__V1__MOUNT__INIT, **mp = pv_xcalloc(CRI_MAX_MOUNTS + 1, sizeof(*mp));
	m.container_path = "/data";
	m.host_path = "/srv";
	for (size_t i = 0; i <= CRI_MAX_MOUNTS; i++)
		mp[i] = &m;
	c.mounts = mp;
	c.n_mounts = CRI_MAX_MOUNTS;
	expect_ok(&r.base);
	c.n_mounts = CRI_MAX_MOUNTS + 1;
	expect_bad(&r.base, "config.mounts", "257 entries, more than 256");
	c.n_mounts = 1;
	big[CRI_MAX_PATH + 1] = '\0';
	m.host_path = big;
	expect_bad(&r.base, "config.mounts[0].host_path", "more than 4095");
	free(mp);
	free(big);
}

/* Every request type, empty, passes: the bounds never refuse what they do not bound. */
static void test_every_request_empty(void **state)
{
	for (size_t i = 0; i < cri_methods_count; i++) {
		const ProtobufCMessageDescriptor *d = cri_methods[i].request;
		ProtobufCMessage *m = pv_xcalloc(1, d->sizeof_message);
		d->message_init(m);
		expect_ok(m);
		uint8_t none = 0;
		pv_err_t *err = NULL;
		assert_int_equal(cri_wire_check_strings(d, &none, 0, &err), 0);
		free(m);
	}
}

/* ---- wire scan ------------------------------------------------------------------- */

static size_t put_ld(uint8_t *out, unsigned field, const void *data, size_t len)
{
	size_t n = 0;
	out[n++] = (uint8_t)(field << 3 | 2);
	assert_true(len < 128);
	out[n++] = (uint8_t)len;
	memcpy(out + n, data, len);
	return n + len;
}

static void expect_nul(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, const char *msg)
{
	pv_err_t *err = NULL;
	assert_true(cri_wire_check_strings(d, buf, len, &err) < 0);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_string_equal(err->msg, msg);
	pv_err_free(err);
}

static void test_wire_nul(void **state)
{
	uint8_t buf[256], md[64], cfg[128];
	/* StopPodSandboxRequest{pod_sandbox_id: "0123\0junk"}: protobuf-c would hand "0123" to C. */
	size_t n = put_ld(buf, 1, "0123\0junk", 9);
	ProtobufCMessage *m = protobuf_c_message_unpack(&runtime__v1__stop_pod_sandbox_request__descriptor, NULL, n, buf);
	assert_non_null(m);
	assert_string_equal(((Runtime__V1__StopPodSandboxRequest *)m)->pod_sandbox_id, "0123");
	protobuf_c_message_free_unpacked(m, NULL);
	expect_nul(&runtime__v1__stop_pod_sandbox_request__descriptor, buf, n, "pod_sandbox_id holds a NUL byte");

	/* RunPodSandboxRequest{config{metadata{name "a", namespace "b\0c"}}} */
	size_t k = put_ld(md, 1, "a", 1);
	k += put_ld(md + k, 3, "b\0c", 3);
	size_t j = put_ld(cfg, 1, md, k);
	n = put_ld(buf, 1, cfg, j);
	expect_nul(&runtime__v1__run_pod_sandbox_request__descriptor, buf, n,
		   "config.metadata.namespace holds a NUL byte");

	/* CreateContainerRequest{config{envs[0]{key "A"}, envs[1]{key "B", value "x\0"}}} */
	uint8_t kv0[16], kv1[16];
	size_t k0 = put_ld(kv0, 1, "A", 1);
	size_t k1 = put_ld(kv1, 1, "B", 1);
	k1 += put_ld(kv1 + k1, 2, "x\0", 2);
	j = put_ld(cfg, 6, kv0, k0);
	j += put_ld(cfg + j, 6, kv1, k1);
	n = put_ld(buf, 2, cfg, j);
	expect_nul(&runtime__v1__create_container_request__descriptor, buf, n, "config.envs[1].value holds a NUL byte");

	/* Bytes and unknown fields may hold anything; a clean request passes. */
	n = put_ld(buf, 1, "0123", 4);
	n += put_ld(buf + n, 99, "\0\0", 2);
	pv_err_t *err = NULL;
	assert_int_equal(cri_wire_check_strings(&runtime__v1__stop_pod_sandbox_request__descriptor, buf, n, &err), 0);
	/* Truncated input is named, not read past. */
	expect_nul(&runtime__v1__stop_pod_sandbox_request__descriptor, buf, 3,
		   "request is not well-formed protobuf (at top level)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pod_names),
		cmocka_unit_test(test_pod_maps_and_dns),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_container),
		cmocka_unit_test(test_every_request_empty),
		cmocka_unit_test(test_wire_nul),
	};
	return cmocka_run_group_tests_name("cri_bounds", tests, NULL, NULL);
}
