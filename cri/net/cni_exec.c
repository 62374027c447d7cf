/* Running CNI plugin binaries: environment, stdin, timeout, the ADD/DEL chains. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "net/cni.h"
#include "util.h"

extern char **environ;

#define CNI_OUTPUT_MAX (1 << 20)

struct outbuf {
	char *data;
	size_t len;
};

static char *find_plugin(const char *bin_dirs, const char *type)
{
	return pv_find_executable(bin_dirs, type);
}

static char **build_env(const struct pv_cni_opts *opts, const char *command, const struct pv_cni_pod *pod,
			const char *netns_path, const char *bin_dirs)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = pv_xcalloc(n + 8, sizeof(char *));
	/* Keep PATH and the rest (plugins run iptables), but never an inherited CNI_*. */
	for (size_t i = 0; i < n; i++)
		if (!pv_str_has_prefix(environ[i], "CNI_"))
			env[k++] = pv_xstrdup(environ[i]);
	env[k++] = pv_xasprintf("CNI_COMMAND=%s", command);
	env[k++] = pv_xasprintf("CNI_CONTAINERID=%s", pod->id ? pod->id : "");
	env[k++] = pv_xasprintf("CNI_NETNS=%s", netns_path ? netns_path : "");
	env[k++] = pv_xasprintf("CNI_IFNAME=%s", opts->ifname ? opts->ifname : PV_CNI_DEFAULT_IFNAME);
	cleanup_free char *args = pv_cni_args(pod);
	env[k++] = pv_xasprintf("CNI_ARGS=%s", args);
	env[k++] = pv_xasprintf("CNI_PATH=%s", bin_dirs);
	return env;
}

static void free_env(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}

static void append(struct outbuf *b, const char *data, size_t n)
{
	if (b->len + n > CNI_OUTPUT_MAX)
		n = CNI_OUTPUT_MAX - b->len;
	b->data = pv_xrealloc(b->data, b->len + n + 1);
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* Feed stdin and collect stdout/stderr until both close or the deadline passes. 0, or -ETIMEDOUT. */
static int pump(int *in_fdp, const char *in, size_t in_len, int out_fd, int err_fd, struct outbuf *out,
		struct outbuf *errb, int64_t deadline_ns)
{
	size_t in_off = 0;
	char buf[8192];
	int in_fd = *in_fdp;

	for (;;) {
		struct pollfd p[3];
		int n = 0, ix_in = -1, ix_out = -1, ix_err = -1;
		int64_t left_ms = (deadline_ns - pv_now_monotonic_ns()) / 1000000;

		if (in_fd >= 0) {
			ix_in = n;
			p[n++] = (struct pollfd){ .fd = in_fd, .events = POLLOUT };
		}
		if (out_fd >= 0) {
			ix_out = n;
			p[n++] = (struct pollfd){ .fd = out_fd, .events = POLLIN };
		}
		if (err_fd >= 0) {
			ix_err = n;
			p[n++] = (struct pollfd){ .fd = err_fd, .events = POLLIN };
		}
		if (n == 0 || (ix_out < 0 && ix_err < 0))
			return 0;
		if (left_ms <= 0)
			return -ETIMEDOUT;
		int r = poll(p, n, left_ms > 1000 ? 1000 : (int)left_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (ix_in >= 0 && p[ix_in].revents) {
			ssize_t w = write(in_fd, in + in_off, in_len - in_off);
			if (w > 0)
				in_off += (size_t)w;
			if (w < 0 && errno != EINTR && errno != EAGAIN)
				in_off = in_len; /* plugin closed stdin: stop feeding */
			if (in_off == in_len) {
				/* EOF on stdin: plugins read it to the end before acting. */
				close(in_fd);
				in_fd = *in_fdp = -1;
			}
		}
		int fds[2] = { ix_out, ix_err };
		for (int k = 0; k < 2; k++) {
			if (fds[k] < 0 || !p[fds[k]].revents)
				continue;
			ssize_t rd = read(p[fds[k]].fd, buf, sizeof(buf));
			if (rd < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (rd <= 0) {
				if (k == 0)
					out_fd = -1;
				else
					err_fd = -1;
				continue;
			}
			append(k == 0 ? out : errb, buf, (size_t)rd);
		}
	}
}

/* Start bin with the pipe ends as stdio, in its own process group (so a timeout kills the
 * plugin's children too), with default signal dispositions and nothing blocked. */
static int spawn(char *bin, char **env, int in, int out, int errfd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, defs;
	char *argv[] = { bin, NULL };
	int r;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in, 0);
	posix_spawn_file_actions_adddup2(&fa, out, 1);
	posix_spawn_file_actions_adddup2(&fa, errfd, 2);
	sigemptyset(&none);
	sigfillset(&defs);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defs);
	r = posix_spawn(pid, bin, &fa, &attr, argv, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return r;
}

int pv_cni_exec(const struct pv_cni_opts *opts, const char *type, const char *command,
		const struct pv_cni_pod *pod, const char *netns_path, json_t *input, char **stdout_out,
		pv_err_t **err)
{
	const char *bin_dirs = opts->bin_dirs ? opts->bin_dirs : PV_CNI_DEFAULT_BIN_DIRS;
	int timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : PV_CNI_DEFAULT_TIMEOUT_MS;
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	struct outbuf out = { 0 }, errb = { 0 };
	char **env = NULL;
	pid_t pid;
	int status, r, ret = -1;

	cleanup_free char *bin = find_plugin(bin_dirs, type);
	if (!bin)
		return pv_err_set(err, PV_FAILED_PRECONDITION, ENOENT, "CNI plugin \"%s\" not found in %s", type,
				  bin_dirs);
	cleanup_free char *in = json_dumps(input, JSON_COMPACT);
	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
		pv_err_sys(err, PV_RESOURCE_EXHAUSTED, "pipe");
		goto out;
	}
	env = build_env(opts, command, pod, netns_path, bin_dirs);
	r = spawn(bin, env, pin[0], pout[1], perr[1], &pid);
	if (r != 0) {
		pv_err_set(err, PV_INTERNAL, r, "exec CNI plugin %s: %s", bin, strerror(r));
		goto out;
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	/* SIGPIPE from a plugin that exits without reading must not kill the caller. */
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	r = pump(&pin[1], in, strlen(in), pout[0], perr[0], &out, &errb,
		 pv_now_monotonic_ns() + (int64_t)timeout_ms * 1000000);
	pv_closep(&pin[1]);
	pin[1] = -1;
	{
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == -ETIMEDOUT)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r == -ETIMEDOUT) {
		pv_err_set(err, PV_DEADLINE_EXCEEDED, ETIMEDOUT, "CNI plugin %s %s timed out after %d ms", type, command,
			   timeout_ms);
		goto out;
	}
	if (r < 0) {
		pv_err_set(err, PV_INTERNAL, -r, "CNI plugin %s %s: poll: %s", type, command, strerror(-r));
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		pv_cni_plugin_error(type, command, WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status),
				    out.data, errb.data, err);
		goto out;
	}
	*stdout_out = out.data ? steal_pointer(&out.data) : pv_xstrdup("");
	ret = 0;
out:
	for (int i = 0; i < 2; i++) {
		pv_closep(&pin[i]);
		pv_closep(&pout[i]);
		pv_closep(&perr[i]);
	}
	free(out.data);
	free(errb.data);
	free_env(env);
	return ret;
}

static const char *plugin_type(const struct pv_cni_net *net, size_t i)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(net->conf, "plugins"), i), "type"));
}

int pv_cni_add(const struct pv_cni_opts *opts, const struct pv_cni_net *net, const struct pv_cni_pod *pod,
	       const char *netns_path, struct pv_cni_result **out, pv_err_t **err)
{
	size_t n = json_array_size(json_object_get(net->conf, "plugins"));
	json_t *prev = NULL;
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++) {
		json_t *in = pv_cni_plugin_stdin(net, i, prev, pod);
		cleanup_free char *text = NULL;
		json_error_t jerr;

		r = pv_cni_exec(opts, plugin_type(net, i), "ADD", pod, netns_path, in, &text, err);
		json_decref(in);
		if (r < 0)
			break;
		json_t *res = json_loads(text, 0, &jerr);
		if (!json_is_object(res)) {
			json_decref(res);
			r = pv_err_set(err, PV_INTERNAL, EINVAL, "CNI plugin %s ADD printed no result object: %s",
				       plugin_type(net, i), jerr.text);
			break;
		}
		json_decref(prev);
		prev = res;
	}
	struct pv_cni_result *result = NULL;
	if (r == 0)
		r = pv_cni_result_from_json(prev, &result, err);
	if (r < 0) {
		/* Undo what the plugins that did run allocated (veth, IPAM lease, port rules). */
		pv_cni_del(opts, net, pod, netns_path, NULL, NULL);
		pv_err_prefix(err, "CNI ADD on network %s", net->name);
		json_decref(prev);
		return r;
	}
	json_decref(prev);
	*out = result;
	return 0;
}

int pv_cni_del(const struct pv_cni_opts *opts, const struct pv_cni_net *net, const struct pv_cni_pod *pod,
	       const char *netns_path, json_t *prev_result, pv_err_t **err)
{
	size_t n = json_array_size(json_object_get(net->conf, "plugins"));
	int ret = 0;

	for (size_t i = n; i-- > 0;) {
		json_t *in = pv_cni_plugin_stdin(net, i, prev_result, pod);
		char *text = NULL;
		pv_err_t *e = NULL;

		if (pv_cni_exec(opts, plugin_type(net, i), "DEL", pod, netns_path, in, &text, &e) < 0) {
			pv_err_prefix(&e, "CNI DEL on network %s", net->name);
			pv_err_move(err, e);
			ret = -1;
		}
		free(text);
		json_decref(in);
	}
	return ret;
}
