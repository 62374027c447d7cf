/* Request dispatch: decode -> validate -> one handler -> reply. */
#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"
#include "validate.h"
#include "version.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

static void reply_empty(uint32_t id)
{
	Podvisor__Agent__Response r = PODVISOR__AGENT__RESPONSE__INIT;
	Podvisor__Agent__Empty e = PODVISOR__AGENT__EMPTY__INIT;
	r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_EMPTY;
	r.empty = &e;
	channel_send_response(id, &r);
}

static void do_ping(uint32_t id)
{
	Podvisor__Agent__Response r = PODVISOR__AGENT__RESPONSE__INIT;
	Podvisor__Agent__PingResponse p = PODVISOR__AGENT__PING_RESPONSE__INIT;
	struct utsname u;
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	uname(&u);
	p.agent_version = (char *)PODVISOR_VERSION;
	p.protocol_version = PV_AGENT_PROTOCOL_VERSION;
	p.uptime_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	p.kernel_release = u.release;
	r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_PING;
	r.ping = &p;
	channel_send_response(id, &r);
}

static void reply_pid(uint32_t id, bool exec, pid_t pid)
{
	Podvisor__Agent__Response r = PODVISOR__AGENT__RESPONSE__INIT;
	Podvisor__Agent__StartContainerResponse s = PODVISOR__AGENT__START_CONTAINER_RESPONSE__INIT;
	Podvisor__Agent__ExecProcessResponse e = PODVISOR__AGENT__EXEC_PROCESS_RESPONSE__INIT;
	if (exec) {
		e.pid = (uint32_t)pid;
		r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_EXEC_PROCESS;
		r.exec_process = &e;
	} else {
		s.pid = (uint32_t)pid;
		r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_START_CONTAINER;
		r.start_container = &s;
	}
	channel_send_response(id, &r);
}

/* Both agents fill a StatsSandbox answer from the heap in their own stats.c. */
void stats_sandbox_free(Podvisor__Agent__StatsSandboxResponse *out)
{
	for (size_t i = 0; i < out->n_interfaces; i++) {
		free(out->interfaces[i]->name);
		free(out->interfaces[i]);
	}
	free(out->interfaces);
	for (size_t i = 0; i < out->n_containers; i++) {
		free(out->containers[i]->container_id);
		free(out->containers[i]);
	}
	free(out->containers);
}

static int do_network(uint32_t id, Podvisor__Agent__Request *req, pv_err_t **err)
{
	Podvisor__Agent__Response r = PODVISOR__AGENT__RESPONSE__INIT;
	switch (req->req_case) {
	case PODVISOR__AGENT__REQUEST__REQ_SET_INTERFACE: {
		Podvisor__Agent__Interface *out = NULL;
		if (!req->set_interface->interface)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "interface is required");
		if (net_set_interface(req->set_interface->interface, &out, err) < 0)
			return -1;
		r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_INTERFACE;
		r.interface = out;
		channel_send_response(id, &r);
		net_free_interface(out);
		return 0;
	}
	case PODVISOR__AGENT__REQUEST__REQ_LIST_INTERFACES: {
		Podvisor__Agent__ListInterfacesResponse out = PODVISOR__AGENT__LIST_INTERFACES_RESPONSE__INIT;
		if (net_list_interfaces(&out, err) < 0)
			return -1;
		r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_LIST_INTERFACES;
		r.list_interfaces = &out;
		channel_send_response(id, &r);
		net_free_interfaces(&out);
		return 0;
	}
	case PODVISOR__AGENT__REQUEST__REQ_SET_ROUTES:
		if (net_set_routes(req->set_routes, err) < 0)
			return -1;
		reply_empty(id);
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ_LIST_ROUTES: {
		Podvisor__Agent__ListRoutesResponse out = PODVISOR__AGENT__LIST_ROUTES_RESPONSE__INIT;
		if (net_list_routes(&out, err) < 0)
			return -1;
		r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_LIST_ROUTES;
		r.list_routes = &out;
		channel_send_response(id, &r);
		net_free_routes(&out);
		return 0;
	}
	default:
		return pv_err_set(err, PV_INTERNAL, EINVAL, "not a network request");
	}
}

/* Returns 0 if a reply was sent (or will be, for wait), negative with *err otherwise. */
static int handle(uint32_t id, Podvisor__Agent__Request *req, pv_err_t **err)
{
	pid_t pid;
	if (validate_request(req, err) < 0)
		return -1;
	switch (req->req_case) {
	case PODVISOR__AGENT__REQUEST__REQ_PING:
		do_ping(id);
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ_CREATE_SANDBOX:
		if (sandbox_create(req->create_sandbox, err) < 0)
			return -1;
		reply_empty(id);
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ_CREATE_CONTAINER: {
		/* The container keeps its spec: detach it from the request. */
		Podvisor__Agent__CreateContainerRequest *spec = req->create_container;
		int rc = container_create(spec, id, err);
		if (rc < 0)
			return -1;
		req->create_container = NULL;
		req->req_case = PODVISOR__AGENT__REQUEST__REQ__NOT_SET;
		if (rc == 0)
			reply_empty(id);
		return 0;
	}
	case PODVISOR__AGENT__REQUEST__REQ_START_CONTAINER:
		if (container_start(req->start_container->container_id, &pid, err) < 0)
			return -1;
		reply_pid(id, false, pid);
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ_EXEC_PROCESS:
		if (container_exec(req->exec_process, &pid, err) < 0)
			return -1;
		reply_pid(id, true, pid);
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ_SIGNAL_PROCESS:
		if (container_signal(req->signal_process, err) < 0)
			return -1;
		reply_empty(id);
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ_WAIT_PROCESS:
		return container_wait(req->wait_process->container_id, req->wait_process->exec_id, id, err);
	case PODVISOR__AGENT__REQUEST__REQ_CLOSE_STDIN:
		if (container_close_stdin(req->close_stdin->container_id, req->close_stdin->exec_id, err) < 0)
			return -1;
		reply_empty(id);
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ_RESIZE_TTY:
		if (container_resize(req->resize_tty, err) < 0)
			return -1;
		reply_empty(id);
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ_STATS_CONTAINER: {
		Podvisor__Agent__Response r = PODVISOR__AGENT__RESPONSE__INIT;
		Podvisor__Agent__StatsContainerResponse s = PODVISOR__AGENT__STATS_CONTAINER_RESPONSE__INIT;
		if (container_stats(req->stats_container->container_id, &s, err) < 0)
			return -1;
		r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_STATS_CONTAINER;
		r.stats_container = &s;
		channel_send_response(id, &r);
		return 0;
	}
	case PODVISOR__AGENT__REQUEST__REQ_STATS_SANDBOX: {
		Podvisor__Agent__Response r = PODVISOR__AGENT__RESPONSE__INIT;
		Podvisor__Agent__StatsSandboxResponse s = PODVISOR__AGENT__STATS_SANDBOX_RESPONSE__INIT;
		if (stats_sandbox(&s, err) < 0)
			return -1;
		r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_STATS_SANDBOX;
		r.stats_sandbox = &s;
		channel_send_response(id, &r);
		stats_sandbox_free(&s);
		return 0;
	}
	case PODVISOR__AGENT__REQUEST__REQ_UPDATE_RESOURCES:
		if (!req->update_resources->resources)
			return pv_err_set(err, PV_INVALID_ARGUMENT, EINVAL, "resources is required");
		if (container_update(req->update_resources->container_id, req->update_resources->resources, err) < 0)
			return -1;
		reply_empty(id);
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ_REMOVE_CONTAINER:
		if (container_remove(req->remove_container->container_id, err) < 0)
			return -1;
		reply_empty(id);
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ_SET_INTERFACE:
	case PODVISOR__AGENT__REQUEST__REQ_LIST_INTERFACES:
	case PODVISOR__AGENT__REQUEST__REQ_SET_ROUTES:
	case PODVISOR__AGENT__REQUEST__REQ_LIST_ROUTES:
		return do_network(id, req, err);
	case PODVISOR__AGENT__REQUEST__REQ_REFRESH: {
		Podvisor__Agent__Response r = PODVISOR__AGENT__RESPONSE__INIT;
		Podvisor__Agent__RefreshResponse out = PODVISOR__AGENT__REFRESH_RESPONSE__INIT;
		if (agent_refresh(req->refresh, &out, err) < 0)
			return -1;
		r.resp_case = PODVISOR__AGENT__RESPONSE__RESP_REFRESH;
		r.refresh = &out;
		channel_send_response(id, &r);
		return 0;
	}
	case PODVISOR__AGENT__REQUEST__REQ_PORT_FORWARD:
		if (portfwd_open(req->port_forward->port, req->port_forward->stream, err) < 0)
			return -1;
		reply_empty(id);
		return 0;
	case PODVISOR__AGENT__REQUEST__REQ_SHUTDOWN:
		g_agent.shutting_down = true;
		g_agent.shutdown_reboot = req->shutdown->reboot;
		reply_empty(id);
		return 0;
	default:
		return pv_err_set(err, PV_UNIMPLEMENTED, ENOSYS, "request type %d not implemented", req->req_case);
	}
}

void dispatch_request(uint32_t id, Podvisor__Agent__Request *req)
{
	cleanup_err pv_err_t *err = NULL;
	int64_t t0 = pv_now_monotonic_ns();
	if (handle(id, req, &err) < 0) {
		if (!err)
			pv_err_set(&err, PV_INTERNAL, 0, "request failed");
		pv_warn("request failed", "id=%u type=%d status=%s error=%s", id, req->req_case,
			pv_status_name(err->status), err->msg);
		channel_send_error(id, err);
	} else {
		pv_debug("request", "id=%u type=%d ms=%lld", id, req->req_case,
			 (long long)((pv_now_monotonic_ns() - t0) / 1000000));
	}
	podvisor__agent__request__free_unpacked(req, NULL);
}
