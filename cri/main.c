/* podvisord: the CRI server. Thin: parse flags and config, start the services, serve, shut down. */
#include "check.h"
#include "cleanup.h"
#include "config.h"
#include "daemon.h"
#include "image_service.h"
#include "log.h"
#include "network.h"
#include "runtime.h"
#include "runtime_info.h"
#include "server.h"
#include "version.h"
#include "util.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#define SHUTDOWN_GRACE_MS 10000

struct flags {
	const char *config;
	const char *listen;
	const char *root;
	const char *state_dir;
	const char *log_level;
	int check;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: podvisord [options]\n"
		"  --config PATH      config file (default " PV_DEFAULT_CONFIG ", optional)\n"
		"  --listen PATH      CRI unix socket (default " PV_DEFAULT_SOCKET ")\n"
		"  --root DIR         persistent state: images, pods (default " PV_DEFAULT_ROOT ")\n"
		"  --state-dir DIR    runtime state: shim sockets (default " PV_DEFAULT_STATE ")\n"
		"  --log-level LEVEL  debug, info, warn or error (default info)\n"
		"  --check            print whether each requirement of a pod is met; exit 1 if one is not\n"
		"  --version          print the version and exit\n"
		"Flags override the config file; see docs/configuration.md.\n");
}

static int parse_flags(int argc, char **argv, struct flags *f)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },    { "listen", required_argument, NULL, 'l' },
		{ "root", required_argument, NULL, 'r' },      { "state-dir", required_argument, NULL, 's' },
		{ "log-level", required_argument, NULL, 'L' }, { "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },	       { "check", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c': f->config = optarg; break;
		case 'l': f->listen = optarg; break;
		case 'r': f->root = optarg; break;
		case 's': f->state_dir = optarg; break;
		case 'L': f->log_level = optarg; break;
		case 'C': f->check = 1; break;
		case 'V': printf("podvisord %s (CRI runtime.v1)\n", PODVISOR_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "podvisord: unexpected argument: %s\n", argv[optind]);
		return -1;
	}
	return 0;
}

static void override(char **dst, const char *flag)
{
	if (flag) {
		free(*dst);
		*dst = pv_xstrdup(flag);
	}
}

static int apply_flags(struct pv_config *cfg, const struct flags *f)
{
	override(&cfg->socket_path, f->listen);
	override(&cfg->root_dir, f->root);
	override(&cfg->state_dir, f->state_dir);
	if (f->log_level && pv_log_parse_level(f->log_level, &cfg->log_level) < 0) {
		fprintf(stderr, "podvisord: --log-level: \"%s\" is not one of debug, info, warn, error\n",
			f->log_level);
		return -1;
	}
	return 0;
}

struct signal_waiter {
	sigset_t set;
	struct cri_server *srv;
	struct pv_daemon *d;
};

static void *wait_for_signal(void *arg)
{
	struct signal_waiter *w = arg;
	int sig = 0;
	sigwait(&w->set, &sig);
	pv_info("shutting down", "signal=%s grace_ms=%d", strsignal(sig), SHUTDOWN_GRACE_MS);
	/* Long-lived calls (GetContainerEvents) end now rather than at the grace deadline. */
	atomic_store(&w->d->stopping, 1);
	cri_server_shutdown(w->srv, SHUTDOWN_GRACE_MS);
	return NULL;
}

/* podvisord --check: the same resolution of assets and CNI dirs as a real start, then the checks. */
static int check(struct pv_config *cfg)
{
	struct pv_daemon d = { .cfg = cfg };
	pthread_mutex_init(&d.lock, NULL);
	cleanup_err pv_err_t *err = NULL;
	int rc = 1;
	if (cri_runtime_info_init(&d, &err) == 0 && cri_net_init(&d, &err) == 0)
		rc = cri_check_run(&d, stdout) == 0 ? 0 : 1;
	else
		printf("FAIL  config: %s\n", err->msg);
	cri_net_fini(&d);
	cri_runtime_info_fini(&d);
	pthread_mutex_destroy(&d.lock);
	return rc;
}

static int run(struct pv_config *cfg)
{
	struct pv_daemon d = { .cfg = cfg };
	pthread_mutex_init(&d.lock, NULL);
	cleanup_err pv_err_t *err = NULL;
	int rc = 1;
	struct cri_server *srv = NULL;

	int images_up = 0, runtime_up = 0;
	if (pv_mkdir_p(cfg->root_dir, 0711, &err) < 0 || pv_mkdir_p(cfg->state_dir, 0711, &err) < 0 ||
	    cri_runtime_info_init(&d, &err) < 0 || cri_net_init(&d, &err) < 0)
		goto out;
	if (cri_image_service_init(&d, &err) < 0)
		goto out;
	images_up = 1;
	if (cri_runtime_init(&d, &err) < 0)
		goto out;
	runtime_up = 1;
	if (cri_server_start(&d, cfg->socket_path, cfg->max_concurrent_calls, &srv, &err) < 0)
		goto out;

	struct signal_waiter w = { .srv = srv, .d = &d };
	sigemptyset(&w.set);
	sigaddset(&w.set, SIGTERM);
	sigaddset(&w.set, SIGINT);
	pthread_t sig_thread;
	if (pthread_create(&sig_thread, NULL, wait_for_signal, &w) != 0) {
		pv_err_set(&err, PV_INTERNAL, 0, "cannot start the signal thread");
		cri_server_shutdown(srv, 0);
		cri_server_run(srv);
		goto out;
	}
	pv_info("podvisord ready", "version=%s listen=%s root=%s config=%s", PODVISOR_VERSION,
		cfg->socket_path, cfg->root_dir, cfg->config_path ? cfg->config_path : "(defaults)");
	/* Type=notify: the socket accepts calls from here on (a no-op outside systemd). */
	sd_notify(0, "READY=1\nSTATUS=serving the CRI");
	cri_server_run(srv);
	/* Run returns only after a signal: the waiter has finished. */
	pthread_join(sig_thread, NULL);
	sd_notify(0, "STOPPING=1");
	pv_info("podvisord stopped", NULL);
	rc = 0;
out:
	if (err)
		pv_error("podvisord failed", "error=%s", err->msg);
	cri_server_free(srv);
	if (runtime_up)
		cri_runtime_fini(&d);
	if (images_up)
		cri_image_service_fini(&d);
	cri_net_fini(&d);
	cri_runtime_info_fini(&d);
	pthread_mutex_destroy(&d.lock);
	return rc;
}

int main(int argc, char **argv)
{
	struct flags f = { 0 };
	if (parse_flags(argc, argv, &f) < 0)
		return 2;
	/* Block the shutdown signals before any thread exists: one thread sigwait()s for them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	pv_log_init("podvisord", PV_LOG_INFO);
	struct pv_config *cfg = NULL;
	cleanup_err pv_err_t *err = NULL;
	if (pv_config_load(f.config ? f.config : PV_DEFAULT_CONFIG, f.config != NULL, &cfg, &err) < 0) {
		fprintf(stderr, "podvisord: %s\n", err->msg);
		return 2;
	}
	if (apply_flags(cfg, &f) < 0) {
		pv_config_free(cfg);
		return 2;
	}
	pv_log_set_level(cfg->log_level);
	if (f.check)
		pv_log_set_level(f.log_level ? cfg->log_level : PV_LOG_WARN); /* the checks speak for themselves */
	int rc = f.check ? check(cfg) : run(cfg);
	pv_config_free(cfg);
	return rc;
}
