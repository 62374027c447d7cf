/*
 * Exec, Attach and PortForward: check the request as containerd does, mint a one-time
 * token on the streaming server (cri/stream/) and answer with its URL. The session the
 * client then opens is relayed to the pod's shim (docs/streaming.md).
 */
#include "runtime.h"
#include "arena.h"
#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "util.h"

#include "stream/stream.h"
#include "proto/shim.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * The one place a streaming session connects to a pod's shim: a connection of its own
 * (the session turns it into a stream of frames), so it never shares the pod's pooled one.
 */
static int dial_shim(void *opaque, const char *pod_id, int *out, pv_err_t **err)
{
	struct pv_daemon *d = opaque;
	cleanup_free char *dir = cri_pod_dir(d, pod_id);
	cleanup_free char *path = pv_xasprintf("%s/shim.sock", dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return pv_err_set(err, PV_INTERNAL, ENAMETOOLONG, "shim socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return pv_err_sys(err, PV_UNAVAILABLE, "connect to the shim of pod %s", pod_id);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	*out = steal_fd(&fd);
	return 0;
}

int cri_streaming_start(struct pv_daemon *d, pv_err_t **err)
{
	struct cri_stream_config sc = {
		.address = d->cfg->stream_address,
		.port = d->cfg->stream_port,
		.tls_cert = d->cfg->stream_tls_cert,
		.tls_key = d->cfg->stream_tls_key,
	};
	if (cri_stream_start(&sc, dial_shim, d, &d->stream, err) < 0)
		return -1;
	pv_info("streaming server listening", "url=%s", cri_stream_base_url(d->stream));
	return 0;
}

void cri_streaming_stop(struct pv_daemon *d)
{
	cri_stream_stop(d->stream);
	d->stream = NULL;
}

/* ---- checks ----------------------------------------------------------------------------------- */

static int check_streams(bool in, bool out, bool errs, bool tty, pv_err_t **err)
{
	if (tty && errs)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "tty and stderr cannot both be true");
	if (!in && !out && !errs)
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "one of stdin, stdout, or stderr must be set");
	return 0;
}

/* The container, RUNNING in a ready pod. */
static int running_in_ready_pod(struct pv_daemon *d, const char *id, struct pv_ctr **out, pv_err_t **err)
{
	/* The monitor keeps the store current with the shims' Watch. */
	struct pv_ctr *c = NULL;
	if (pv_store_ctr_get(d->store, id, &c, err) < 0)
		return -1;
	struct pv_pod *pod = NULL;
	int r = pv_store_pod_get(d->store, c->pod_id, &pod, err);
	if (r == 0 && !pod->st.ready)
		r = pv_err_set(err, PV_FAILED_PRECONDITION, EINVAL, "pod sandbox %s of container %s is not ready", pod->id,
			       c->id);
	else if (r == 0 && c->st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
		r = pv_err_set(err, PV_FAILED_PRECONDITION, EINVAL, "container %s is in %s state, not running", c->id,
			       runtime__v1__container_state__descriptor.values[c->st.state].name);
	pv_pod_free(pod);
	if (r < 0) {
		pv_ctr_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

static char *url_for(struct cri_call *call, struct pv_daemon *d, struct cri_stream_req *sr,
		     Podvisor__Shim__StreamOpenRequest *open, pv_err_t **err)
{
	size_t len = open ? podvisor__shim__stream_open_request__get_packed_size(open) : 0;
	cleanup_free uint8_t *buf = pv_xmalloc(len ? len : 1);
	if (open)
		podvisor__shim__stream_open_request__pack(open, buf);
	sr->open_req = buf;
	sr->open_len = len;
	if (!d->stream) {
		pv_err_set(err, PV_UNAVAILABLE, ENOTCONN, "the streaming server is not running");
		return NULL;
	}
	cleanup_free char *url = cri_stream_url_for(d->stream, sr, err);
	return url ? cri_call_strdup(call, url) : NULL;
}

static void open_streams(Podvisor__Shim__StreamOpenRequest *o, bool in, bool out, bool errs, bool tty)
{
	o->stdin_stream = in ? CRI_STREAM_ID_STDIN : 0;
	o->stdout_stream = out ? CRI_STREAM_ID_STDOUT : 0;
	o->stderr_stream = errs && !tty ? CRI_STREAM_ID_STDERR : 0;
}

/* ---- handlers ---------------------------------------------------------------------------------- */

CRI_HANDLER(cri_ctr_exec)
{
	const Runtime__V1__ExecRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	if (!in->n_cmd || !in->cmd[0] || !*in->cmd[0])
		return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "cmd is empty");
	if (check_streams(in->stdin, in->stdout, in->stderr, in->tty, err) < 0)
		return -1;
	struct pv_ctr *c = NULL;
	if (running_in_ready_pod(d, in->container_id, &c, err) < 0)
		return -1;
	struct cri_arena a = { 0 };
	Podvisor__Agent__Process *proc = NULL;
	char *url = NULL;
	if (cri_ctr_exec_process(d, &a, c, in->cmd, in->n_cmd, in->tty, &proc, err) == 0) {
		Podvisor__Shim__StreamExec ex = PODVISOR__SHIM__STREAM_EXEC__INIT;
		ex.container_id = c->id;
		ex.process = proc;
		Podvisor__Shim__StreamOpenRequest open = PODVISOR__SHIM__STREAM_OPEN_REQUEST__INIT;
		open.kind_case = PODVISOR__SHIM__STREAM_OPEN_REQUEST__KIND_EXEC;
		open.exec = &ex;
		open_streams(&open, in->stdin, in->stdout, in->stderr, in->tty);
		struct cri_stream_req sr = { .kind = CRI_STREAM_EXEC, .pod_id = c->pod_id, .stdin = in->stdin,
					     .stdout = in->stdout, .stderr = in->stderr, .tty = in->tty };
		url = url_for(call, d, &sr, &open, err);
	}
	cri_arena_free(&a);
	pv_ctr_free(c);
	if (!url)
		return -1;
	Runtime__V1__ExecResponse *o = cri_call_new(call, Runtime__V1__ExecResponse);
	runtime__v1__exec_response__init(o);
	o->url = url;
	*resp = &o->base;
	return 0;
}

CRI_HANDLER(cri_ctr_attach)
{
	const Runtime__V1__AttachRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	if (check_streams(in->stdin, in->stdout, in->stderr, in->tty, err) < 0)
		return -1;
	struct pv_ctr *c = NULL;
	if (running_in_ready_pod(d, in->container_id, &c, err) < 0)
		return -1;
	Podvisor__Shim__StreamAttach at = PODVISOR__SHIM__STREAM_ATTACH__INIT;
	at.container_id = c->id;
	Podvisor__Shim__StreamOpenRequest open = PODVISOR__SHIM__STREAM_OPEN_REQUEST__INIT;
	open.kind_case = PODVISOR__SHIM__STREAM_OPEN_REQUEST__KIND_ATTACH;
	open.attach = &at;
	open_streams(&open, in->stdin, in->stdout, in->stderr, in->tty);
	struct cri_stream_req sr = { .kind = CRI_STREAM_ATTACH, .pod_id = c->pod_id, .stdin = in->stdin,
				     .stdout = in->stdout, .stderr = in->stderr, .tty = in->tty };
	char *url = url_for(call, d, &sr, &open, err);
	pv_ctr_free(c);
	if (!url)
		return -1;
	Runtime__V1__AttachResponse *o = cri_call_new(call, Runtime__V1__AttachResponse);
	runtime__v1__attach_response__init(o);
	o->url = url;
	*resp = &o->base;
	return 0;
}

CRI_HANDLER(cri_pod_port_forward)
{
	const Runtime__V1__PortForwardRequest *in = (const void *)req;
	struct pv_daemon *d = cri_call_daemon(call);
	for (size_t i = 0; i < in->n_port; i++)
		if (in->port[i] <= 0 || in->port[i] > 65535)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "port %d is out of range (1-65535)",
					  in->port[i]);
	struct pv_pod *pod = NULL;
	if (pv_store_pod_get(d->store, in->pod_sandbox_id, &pod, err) < 0)
		return -1;
	char *url = NULL;
	if (!pod->st.ready) {
		pv_err_set(err, PV_FAILED_PRECONDITION, EINVAL, "pod sandbox %s is not ready", pod->id);
	} else {
		struct cri_stream_req sr = { .kind = CRI_STREAM_PORTFORWARD, .pod_id = pod->id,
					     .ports = in->port, .nports = in->n_port };
		url = url_for(call, d, &sr, NULL, err);
	}
	pv_pod_free(pod);
	if (!url)
		return -1;
	Runtime__V1__PortForwardResponse *o = cri_call_new(call, Runtime__V1__PortForwardResponse);
	runtime__v1__port_forward_response__init(o);
	o->url = url;
	*resp = &o->base;
	return 0;
}
