/* Unit tests for the CNI client: config loading, stdin, results, errors, exec with fake plugins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "net/cni.h"
#include "net/podnet.h"
#include "util.h"

struct fixture {
	char dir[64];
	char *conf;
	char *bin;
	char *log;
};

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char *p = pv_xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

static int setup(void **state)
{
	struct fixture *fx = pv_xcalloc(1, sizeof(*fx));
	strcpy(fx->dir, "/tmp/pv-test-cni-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->conf = pv_xasprintf("%s/conf", fx->dir);
	fx->bin = pv_xasprintf("%s/bin", fx->dir);
	fx->log = pv_xasprintf("%s/calls.log", fx->dir);
	assert_int_equal(mkdir(fx->conf, 0755), 0);
	assert_int_equal(mkdir(fx->bin, 0755), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	assert_int_equal(pv_rm_rf(fx->dir, NULL), 0);
	free(fx->conf);
	free(fx->bin);
	free(fx->log);
	free(fx);
	return 0;
}

static const char GOOD_LIST[] =
	"{\"cniVersion\":\"1.0.0\",\"name\":\"good\",\"plugins\":["
	"{\"type\":\"bridge\",\"bridge\":\"cni0\"},"
	"{\"type\":\"portmap\",\"capabilities\":{\"portMappings\":true}}]}";

/* ---- config loading ---------------------------------------------- */

static void test_load_picks_first_valid(void **state)
{
	struct fixture *fx = *state;
	struct pv_cni_net *net = NULL;
	pv_err_t *err = NULL;

	write_file(fx->conf, "05-broken.conflist", "{not json", 0644);
	write_file(fx->conf, "06-noname.conflist", "{\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":\"x\"}]}", 0644);
	write_file(fx->conf, "07-notype.conflist", "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{}]}", 0644);
	write_file(fx->conf, "08-pathtype.conflist",
		   "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"../bin/sh\"}]}", 0644);
	write_file(fx->conf, "09-noversion.conflist", "{\"name\":\"n\",\"plugins\":[{\"type\":\"x\"}]}", 0644);
	write_file(fx->conf, "10-good.conflist", GOOD_LIST, 0644);
	write_file(fx->conf, "20-later.conflist",
		   "{\"cniVersion\":\"1.0.0\",\"name\":\"later\",\"plugins\":[{\"type\":\"x\"}]}", 0644);
	write_file(fx->conf, "00-ignored.txt", "{}", 0644);
	assert_int_equal(pv_cni_net_load(fx->conf, &net, &err), 0);
	assert_null(err);
	assert_string_equal(net->name, "good");
	assert_string_equal(net->cni_version, "1.0.0");
	assert_non_null(strstr(net->source, "10-good.conflist"));
	assert_int_equal(json_array_size(json_object_get(net->conf, "plugins")), 2);
	pv_cni_net_free(net);
}

static void test_load_single_conf_wrapped(void **state)
{
	struct fixture *fx = *state;
	struct pv_cni_net *net = NULL;

	write_file(fx->conf, "50-single.conf",
		   "{\"cniVersion\":\"0.4.0\",\"name\":\"single\",\"type\":\"bridge\",\"bridge\":\"br9\"}", 0644);
	assert_int_equal(pv_cni_net_load(fx->conf, &net, NULL), 0);
	assert_string_equal(net->name, "single");
	assert_string_equal(net->cni_version, "0.4.0");
	json_t *p0 = json_array_get(json_object_get(net->conf, "plugins"), 0);
	assert_string_equal(json_string_value(json_object_get(p0, "type")), "bridge");
	assert_string_equal(json_string_value(json_object_get(p0, "bridge")), "br9");
	pv_cni_net_free(net);
}

static void test_load_none_valid(void **state)
{
	struct fixture *fx = *state;
	struct pv_cni_net *net = NULL;
	pv_err_t *err = NULL;
	char *reason = NULL;

	/* Empty dir. */
	assert_int_equal(pv_cni_status(fx->conf, &reason), 0);
	assert_non_null(strstr(reason, "no *.conflist"));
	free(reason);

	write_file(fx->conf, "10-bad.conflist", "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[]}", 0644);
	write_file(fx->conf, "20-bad.json", "[1,2]", 0644);
	assert_true(pv_cni_net_load(fx->conf, &net, &err) < 0);
	assert_null(net);
	assert_int_equal(err->status, PV_FAILED_PRECONDITION);
	/* Each skipped file is named with its reason. */
	assert_non_null(strstr(err->msg, "10-bad.conflist: \"plugins\" must be a non-empty array"));
	assert_non_null(strstr(err->msg, "20-bad.json"));
	pv_err_free(err);

	assert_int_equal(pv_cni_status("/nonexistent/cni", &reason), 0);
	assert_non_null(strstr(reason, "/nonexistent/cni"));
	free(reason);

	write_file(fx->conf, "30-good.conflist", GOOD_LIST, 0644);
	assert_int_equal(pv_cni_status(fx->conf, &reason), 1);
}

/* ---- stdin ------------------------------------------------------- */

static void test_stdin_injection(void **state)
{
	struct pv_cni_net *net = NULL;
	struct pv_cni_port_mapping ports[] = {
		{ .host_port = 8080, .container_port = 80, .protocol = "tcp" },
		{ .host_port = 0, .container_port = 81 }, /* not published */
		{ .host_port = 5353, .container_port = 53, .protocol = "udp", .host_ip = "127.0.0.1" },
	};
	struct pv_cni_pod pod = { .id = "abc", .name = "web", .namespace = "default", .uid = "u-1",
				  .ports = ports, .n_ports = 3 };
	json_t *prev = json_pack("{s:s}", "cniVersion", "1.0.0");

	assert_int_equal(pv_cni_net_parse(GOOD_LIST, 1, "", &net, NULL), 0);

	/* bridge: no capability, so no runtimeConfig; name/version injected; no prevResult for the first. */
	json_t *in0 = pv_cni_plugin_stdin(net, 0, NULL, &pod);
	assert_string_equal(json_string_value(json_object_get(in0, "name")), "good");
	assert_string_equal(json_string_value(json_object_get(in0, "cniVersion")), "1.0.0");
	assert_string_equal(json_string_value(json_object_get(in0, "bridge")), "cni0");
	assert_null(json_object_get(in0, "runtimeConfig"));
	assert_null(json_object_get(in0, "prevResult"));
	json_decref(in0);

	/* portmap: capability declared, so the published ports are injected. */
	json_t *in1 = pv_cni_plugin_stdin(net, 1, prev, &pod);
	assert_true(json_equal(json_object_get(in1, "prevResult"), prev));
	json_t *pm = json_object_get(json_object_get(in1, "runtimeConfig"), "portMappings");
	assert_int_equal(json_array_size(pm), 2);
	json_t *m0 = json_array_get(pm, 0), *m1 = json_array_get(pm, 1);
	assert_int_equal(json_integer_value(json_object_get(m0, "hostPort")), 8080);
	assert_int_equal(json_integer_value(json_object_get(m0, "containerPort")), 80);
	assert_string_equal(json_string_value(json_object_get(m0, "protocol")), "tcp");
	assert_null(json_object_get(m0, "hostIP"));
	assert_string_equal(json_string_value(json_object_get(m1, "protocol")), "udp");
	assert_string_equal(json_string_value(json_object_get(m1, "hostIP")), "127.0.0.1");
	json_decref(in1);

	/* No ports: no runtimeConfig at all. */
	pod.n_ports = 0;
	json_t *in2 = pv_cni_plugin_stdin(net, 1, NULL, &pod);
	assert_null(json_object_get(in2, "runtimeConfig"));
	json_decref(in2);

	char *args = pv_cni_args(&pod);
	assert_string_equal(args, "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
				  "K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1");
	free(args);
	json_decref(prev);
	pv_cni_net_free(net);
}

/* ---- results ----------------------------------------------------- */

static void test_result_v1(void **state)
{
	static const char text[] =
		"{\"cniVersion\":\"1.0.0\",\"interfaces\":["
		"{\"name\":\"cni0\",\"mac\":\"aa:bb:cc:00:00:01\"},"
		"{\"name\":\"veth1\",\"mac\":\"aa:bb:cc:00:00:02\"},"
		"{\"name\":\"eth0\",\"mac\":\"aa:bb:cc:00:00:03\",\"sandbox\":\"/run/netns/x\"}],"
		"\"ips\":[{\"interface\":2,\"address\":\"10.88.0.5/16\",\"gateway\":\"10.88.0.1\"},"
		"{\"interface\":2,\"address\":\"fd00::5/64\",\"gateway\":\"fd00::1\"}],"
		"\"routes\":[{\"dst\":\"0.0.0.0/0\"},{\"dst\":\"192.168.0.0/16\",\"gw\":\"10.88.0.254\"}],"
		"\"dns\":{\"nameservers\":[\"10.96.0.10\"],\"domain\":\"cluster.local\",\"search\":[\"a\",\"b\"],"
		"\"options\":[\"ndots:5\"]}}";
	struct pv_cni_result *res = NULL;

	assert_int_equal(pv_cni_result_parse(text, &res, NULL), 0);
	assert_string_equal(res->cni_version, "1.0.0");
	assert_int_equal(res->n_ifaces, 3);
	assert_null(res->ifaces[0].sandbox);
	assert_string_equal(res->ifaces[2].sandbox, "/run/netns/x");
	assert_int_equal(res->n_ips, 2);
	assert_int_equal(res->ips[0].family, 4);
	assert_int_equal(res->ips[1].family, 6);
	assert_int_equal(res->ips[0].interface, 2);
	assert_string_equal(res->ips[0].gateway, "10.88.0.1");
	assert_int_equal(res->n_routes, 2);
	assert_null(res->routes[0].gw);
	assert_string_equal(res->routes[1].gw, "10.88.0.254");
	assert_int_equal(res->dns.n_nameservers, 1);
	assert_string_equal(res->dns.nameservers[0], "10.96.0.10");
	assert_string_equal(res->dns.domain, "cluster.local");
	assert_int_equal(res->dns.n_search, 2);
	assert_string_equal(res->dns.options[0], "ndots:5");
	assert_string_equal(pv_cni_result_pod_ip(res, 4, "eth0")->address, "10.88.0.5/16");
	assert_string_equal(pv_cni_result_pod_ip(res, 6, NULL)->address, "fd00::5/64");
	assert_string_equal(pv_cni_result_pod_mac(res, "eth0"), "aa:bb:cc:00:00:03");
	assert_null(pv_cni_result_pod_ip(res, 4, "eth1"));
	pv_cni_result_free(res);
}

static void test_result_v040(void **state)
{
	/* 0.4.0 carries "version" per IP and may omit the interface index. */
	static const char text[] =
		"{\"cniVersion\":\"0.4.0\",\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"/proc/1/ns/net\"}],"
		"\"ips\":[{\"version\":\"4\",\"address\":\"10.22.0.7/24\",\"gateway\":\"10.22.0.1\"}],"
		"\"dns\":{}}";
	struct pv_cni_result *res = NULL;

	assert_int_equal(pv_cni_result_parse(text, &res, NULL), 0);
	assert_string_equal(res->cni_version, "0.4.0");
	assert_int_equal(res->n_ips, 1);
	assert_int_equal(res->ips[0].interface, -1);
	assert_int_equal(res->n_routes, 0);
	assert_int_equal(res->dns.n_nameservers, 0);
	assert_string_equal(pv_cni_result_pod_ip(res, 4, "eth0")->address, "10.22.0.7/24");
	assert_null(pv_cni_result_pod_mac(res, "eth0"));
	pv_cni_result_free(res);
}

static void test_result_invalid(void **state)
{
	static const char *bad[] = {
		"not json",
		"[1]",
		"{\"ips\":[{\"address\":\"10.0.0.1\"}]}",                     /* no prefix length */
		"{\"interfaces\":[],\"ips\":[{\"address\":\"10.0.0.1/8\",\"interface\":0}]}", /* bad index */
		"{\"routes\":[{\"gw\":\"1.2.3.4\"}]}",
		"{\"dns\":{\"nameservers\":[1]}}",
		"{\"ips\":{}}",
		"{\"cniVersion\":\"0.2.0\",\"ip4\":{\"ip\":\"10.0.0.2/8\"}}",
	};
	for (size_t i = 0; i < PV_ARRAY_SIZE(bad); i++) {
		struct pv_cni_result *res = NULL;
		pv_err_t *err = NULL;
		assert_true(pv_cni_result_parse(bad[i], &res, &err) < 0);
		assert_null(res);
		assert_non_null(err);
		pv_err_free(err);
	}
}

/* ---- errors ------------------------------------------------------ */

static void test_error_json(void **state)
{
	pv_err_t *err = NULL;

	pv_cni_plugin_error("bridge", "ADD", 1,
			    "{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"cannot reach foo\",\"details\":\"try later\"}",
			    "", &err);
	assert_int_equal(err->status, PV_UNAVAILABLE);
	assert_string_equal(err->msg, "CNI plugin bridge ADD failed (code 11): cannot reach foo: try later");
	pv_err_free(err);
	err = NULL;

	pv_cni_plugin_error("x", "DEL", 1, "{\"code\":7,\"msg\":\"bad config\"}", NULL, &err);
	assert_int_equal(err->status, PV_INVALID_ARGUMENT);
	assert_string_equal(err->msg, "CNI plugin x DEL failed (code 7): bad config");
	pv_err_free(err);
	err = NULL;

	/* No JSON: stderr tells what happened. */
	pv_cni_plugin_error("x", "ADD", 2, "", "panic: oops\n", &err);
	assert_int_equal(err->status, PV_UNKNOWN);
	assert_string_equal(err->msg, "CNI plugin x ADD failed (exit status 2): panic: oops");
	pv_err_free(err);
	err = NULL;
	pv_cni_plugin_error("x", "ADD", -9, NULL, NULL, &err);
	assert_string_equal(err->msg, "CNI plugin x ADD failed (signal 9)");
	pv_err_free(err);
}

/* ---- exec with fake plugins ------------------------------------- */

/* A fake plugin logs its call and env, then prints a canned result. */
static void fake_plugin(struct fixture *fx, const char *type, const char *body)
{
	char *script = pv_xasprintf("#!/bin/sh\n"
				    "in=$(cat)\n"
				    "echo \"%s $CNI_COMMAND id=$CNI_CONTAINERID netns=$CNI_NETNS if=$CNI_IFNAME "
				    "path=$CNI_PATH args=$CNI_ARGS stdin=$in\" >> %s\n%s\n",
				    type, fx->log, body);
	write_file(fx->bin, type, script, 0755);
	free(script);
}

static char *read_log(struct fixture *fx)
{
	char *text = NULL;
	if (pv_read_file(fx->log, 1 << 20, &text, NULL, NULL) < 0)
		return pv_xstrdup("");
	return text;
}

static const char FAKE_RESULT[] =
	"echo '{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\",\"mac\":\"02:00:00:00:00:09\","
	"\"sandbox\":\"/x\"}],\"ips\":[{\"address\":\"10.1.0.9/24\",\"interface\":0}]}'";

static void test_exec_chain_env_and_prevresult(void **state)
{
	struct fixture *fx = *state;
	struct pv_cni_net *net = NULL;
	struct pv_cni_result *res = NULL;
	struct pv_cni_port_mapping ports[] = { { .host_port = 9000, .container_port = 90 } };
	struct pv_cni_pod pod = { .id = "pod1", .name = "n1", .namespace = "ns1", .uid = "uid1", .ports = ports,
				  .n_ports = 1 };
	char *bin_dirs = pv_xasprintf("/nonexistent:%s", fx->bin);
	struct pv_cni_opts opts = { .bin_dirs = bin_dirs, .timeout_ms = 20000 };
	pv_err_t *err = NULL;

	fake_plugin(fx, "first", FAKE_RESULT);
	fake_plugin(fx, "second", FAKE_RESULT);
	assert_int_equal(pv_cni_net_parse("{\"cniVersion\":\"1.0.0\",\"name\":\"chain\",\"plugins\":["
					  "{\"type\":\"first\"},"
					  "{\"type\":\"second\",\"capabilities\":{\"portMappings\":true}}]}",
					  1, "", &net, NULL),
			 0);
	setenv("CNI_COMMAND", "LEAKED", 1);
	int r = pv_cni_add(&opts, net, &pod, "/run/netns/p1", &res, &err);
	unsetenv("CNI_COMMAND");
	if (err)
		print_error("%s\n", err->msg);
	assert_int_equal(r, 0);
	assert_null(err);
	assert_string_equal(pv_cni_result_pod_ip(res, 4, "eth0")->address, "10.1.0.9/24");
	assert_string_equal(pv_cni_result_pod_mac(res, "eth0"), "02:00:00:00:00:09");

	char *log = read_log(fx);
	char *l2 = strstr(log, "second ADD");
	assert_non_null(strstr(log, "first ADD id=pod1 netns=/run/netns/p1 if=eth0"));
	assert_non_null(strstr(log, "args=IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=n1;"
				    "K8S_POD_INFRA_CONTAINER_ID=pod1;K8S_POD_UID=uid1"));
	assert_non_null(strstr(log, bin_dirs));
	assert_true(strstr(log, "first ADD") < l2);
	/* The first plugin's result is the second one's prevResult. */
	assert_non_null(strstr(l2, "\"prevResult\":{\"cniVersion\":\"1.0.0\",\"interfaces\""));
	assert_non_null(strstr(l2, "10.1.0.9/24"));
	assert_non_null(strstr(l2, "\"portMappings\":[{\"hostPort\":9000,\"containerPort\":90"));
	assert_null(strstr(log, "LEAKED"));
	free(log);

	/* DEL runs in reverse order with the given prevResult. */
	unlink(fx->log);
	assert_int_equal(pv_cni_del(&opts, net, &pod, "", res->json, &err), 0);
	log = read_log(fx);
	assert_true(strstr(log, "second DEL") < strstr(log, "first DEL"));
	assert_non_null(strstr(log, "first DEL id=pod1 netns= if=eth0"));
	assert_non_null(strstr(log, "\"prevResult\":{"));
	free(log);

	pv_cni_result_free(res);
	pv_cni_net_free(net);
	free(bin_dirs);
}

static void test_exec_failure_rolls_back(void **state)
{
	struct fixture *fx = *state;
	struct pv_cni_net *net = NULL;
	struct pv_cni_result *res = NULL;
	struct pv_cni_pod pod = { .id = "pod2" };
	struct pv_cni_opts opts = { .bin_dirs = fx->bin };
	pv_err_t *err = NULL;

	fake_plugin(fx, "ok", FAKE_RESULT);
	/* Fails ADD with a CNI error, succeeds DEL. */
	fake_plugin(fx, "failing",
		    "if [ \"$CNI_COMMAND\" = ADD ]; then echo '{\"cniVersion\":\"1.0.0\",\"code\":100,"
		    "\"msg\":\"quota of widgets exhausted\",\"details\":\"pool blue\"}'; echo noise >&2; exit 1; fi");
	fake_plugin(fx, "never", FAKE_RESULT);
	assert_int_equal(pv_cni_net_parse("{\"cniVersion\":\"1.0.0\",\"name\":\"fail\",\"plugins\":["
					  "{\"type\":\"ok\"},{\"type\":\"failing\"},{\"type\":\"never\"}]}",
					  1, "", &net, NULL),
			 0);
	assert_true(pv_cni_add(&opts, net, &pod, "/n", &res, &err) < 0);
	assert_null(res);
	assert_non_null(strstr(err->msg, "quota of widgets exhausted: pool blue"));
	assert_non_null(strstr(err->msg, "CNI ADD on network fail"));
	pv_err_free(err);
	err = NULL;

	char *log = read_log(fx);
	assert_null(strstr(log, "never ADD"));
	/* Rollback: DEL for the whole chain, in reverse. */
	char *d3 = strstr(log, "never DEL"), *d2 = strstr(log, "failing DEL"), *d1 = strstr(log, "ok DEL");
	assert_non_null(d3);
	assert_non_null(d2);
	assert_non_null(d1);
	assert_true(d3 < d2 && d2 < d1);
	free(log);

	/* A plugin binary that is missing. */
	pv_cni_net_free(net);
	assert_int_equal(pv_cni_net_parse("{\"cniVersion\":\"1.0.0\",\"name\":\"m\",\"plugins\":[{\"type\":\"nope\"}]}",
					  1, "", &net, NULL),
			 0);
	assert_true(pv_cni_add(&opts, net, &pod, "/n", &res, &err) < 0);
	assert_non_null(strstr(err->msg, "CNI plugin \"nope\" not found in"));
	pv_err_free(err);
	pv_cni_net_free(net);
}

/* Running or sleeping; a zombie or a vanished pid is dead (whoever reaps orphans here). */
static int process_alive(const char *procstat)
{
	char *text = NULL;
	int alive = 0;
	if (pv_read_file(procstat, 4096, &text, NULL, NULL) == 0) {
		const char *p = strrchr(text, ')');
		alive = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	}
	free(text);
	return alive;
}

static void test_exec_timeout_and_crash(void **state)
{
	struct fixture *fx = *state;
	struct pv_cni_net *net = NULL;
	struct pv_cni_pod pod = { .id = "pod3" };
	struct pv_cni_opts opts = { .bin_dirs = fx->bin, .timeout_ms = 300 };
	json_t *in = json_object();
	char *out = NULL;
	pv_err_t *err = NULL;

	/* exec so the shell does not leave an orphaned sleep holding the pipes. */
	fake_plugin(fx, "slow", "exec sleep 30");
	fake_plugin(fx, "crash", "echo 'goroutine 1 [running]: boom' >&2; kill -SEGV $$");
	fake_plugin(fx, "garbage", "echo 'this is not json'");
	(void)net;
	int64_t t0 = pv_now_monotonic_ns();
	assert_true(pv_cni_exec(&opts, "slow", "ADD", &pod, "", in, &out, &err) < 0);
	assert_true(pv_now_monotonic_ns() - t0 < 10LL * 1000000000);
	assert_int_equal(err->status, PV_DEADLINE_EXCEEDED);
	assert_non_null(strstr(err->msg, "timed out"));
	pv_err_free(err);
	err = NULL;

	/* A timed-out plugin's children die with it (it runs in its own process group). */
	char *body = pv_xasprintf("sleep 30 & echo $! > %s/kid.pid; wait", fx->dir);
	fake_plugin(fx, "slowkids", body);
	free(body);
	assert_true(pv_cni_exec(&opts, "slowkids", "ADD", &pod, "", in, &out, &err) < 0);
	assert_int_equal(err->status, PV_DEADLINE_EXCEEDED);
	pv_err_free(err);
	err = NULL;
	char *kidfile = pv_xasprintf("%s/kid.pid", fx->dir), *kid = NULL;
	assert_int_equal(pv_read_file(kidfile, 64, &kid, NULL, NULL), 0);
	char *procstat = pv_xasprintf("/proc/%d/stat", atoi(kid));
	int64_t until = pv_now_monotonic_ns() + 10LL * 1000000000;
	while (process_alive(procstat) && pv_now_monotonic_ns() < until)
		usleep(20000);
	assert_false(process_alive(procstat));
	free(procstat);
	free(kid);
	free(kidfile);

	opts.timeout_ms = 20000;
	assert_true(pv_cni_exec(&opts, "crash", "ADD", &pod, "", in, &out, &err) < 0);
	assert_non_null(strstr(err->msg, "signal 11"));
	assert_non_null(strstr(err->msg, "boom"));
	pv_err_free(err);
	err = NULL;

	assert_int_equal(pv_cni_net_parse("{\"cniVersion\":\"1.0.0\",\"name\":\"g\",\"plugins\":[{\"type\":\"garbage\"}]}",
					  1, "", &net, NULL),
			 0);
	struct pv_cni_result *res = NULL;
	assert_true(pv_cni_add(&opts, net, &pod, "", &res, &err) < 0);
	assert_non_null(strstr(err->msg, "printed no result object"));
	pv_err_free(err);
	pv_cni_net_free(net);
	json_decref(in);
	assert_null(out);
}

/* ---- persisted attachment --------------------------------------- */

static void test_podnet_save_load(void **state)
{
	struct fixture *fx = *state;
	struct pv_podnet pn = { 0 }, *loaded = NULL;
	struct pv_cni_port_mapping ports[] = { { .host_port = 80, .container_port = 8080, .protocol = "tcp" } };
	char *path = pv_xasprintf("%s/net.json", fx->dir);

	pn.id = "id1";
	pn.name = "nm";
	pn.namespace = NULL;
	pn.uid = "u";
	pn.netns_path = "/run/podvisor/netns/id1";
	pn.ifname = "eth0";
	pn.conf = json_loads(GOOD_LIST, 0, NULL);
	pn.result = json_pack("{s:s}", "cniVersion", "1.0.0");
	pn.ports = ports;
	pn.n_ports = 1;
	assert_int_equal(pv_podnet_save(&pn, path, NULL), 0);
	assert_int_equal(pv_podnet_load(path, &loaded, NULL), 0);
	assert_string_equal(loaded->id, "id1");
	assert_string_equal(loaded->name, "nm");
	assert_null(loaded->namespace);
	assert_string_equal(loaded->netns_path, pn.netns_path);
	assert_true(json_equal(loaded->conf, pn.conf));
	assert_true(json_equal(loaded->result, pn.result));
	assert_int_equal(loaded->n_ports, 1);
	assert_int_equal(loaded->ports[0].container_port, 8080);
	assert_string_equal(loaded->ports[0].protocol, "tcp");
	assert_null(loaded->ports[0].host_ip);
	pv_podnet_free(loaded);
	loaded = NULL;

	write_file(fx->dir, "bad.json", "{\"id\":\"x\"}", 0600);
	char *bad = pv_xasprintf("%s/bad.json", fx->dir);
	pv_err_t *err = NULL;
	assert_true(pv_podnet_load(bad, &loaded, &err) < 0);
	assert_null(loaded);
	assert_int_equal(err->status, PV_DATA_LOSS);
	pv_err_free(err);
	free(bad);
	json_decref(pn.conf);
	json_decref(pn.result);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_load_picks_first_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_single_conf_wrapped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_none_valid, setup, teardown),
		cmocka_unit_test(test_stdin_injection),
		cmocka_unit_test(test_result_v1),
		cmocka_unit_test(test_result_v040),
		cmocka_unit_test(test_result_invalid),
		cmocka_unit_test(test_error_json),
		cmocka_unit_test_setup_teardown(test_exec_chain_env_and_prevresult, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_failure_rolls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_timeout_and_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_podnet_save_load, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
