/* One control request -> the function that does it. */
#include "shim.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void add_disk_done(struct shim *s, void *opaque, const pv_err_t *err, unsigned scsi_id)
{
	struct shim_call *call = opaque;
	if (err) {
		shim_call_error(call, err);
		return;
	}
	Podvisor__Shim__Response resp = PODVISOR__SHIM__RESPONSE__INIT;
	Podvisor__Shim__AddDiskResponse ad = PODVISOR__SHIM__ADD_DISK_RESPONSE__INIT;
	char addr[PV_GUEST_SCSI_ADDR_LEN];
	pv_guest_scsi_address(addr, scsi_id);
	ad.scsi_address = addr;
	ad.scsi_id = scsi_id;
	resp.resp_case = PODVISOR__SHIM__RESPONSE__RESP_ADD_DISK;
	resp.add_disk = &ad;
	shim_call_reply(call, &resp);
}

static void add_disk(struct shim *s, struct shim_call *call, Podvisor__Shim__AddDiskRequest *r)
{
	cleanup_err pv_err_t *err = NULL;
	if (!r->id || !*r->id || !r->path || !*r->path)
		pv_err_set(&err, PV_INVALID_ARGUMENT, EINVAL, "add_disk: id and path are required");
	else
		shim_disk_add(s, r->id, r->path, NULL, *r->format ? r->format : NULL, r->read_only, add_disk_done,
			      call, &err);
	if (err)
		shim_call_error(call, err);
}

static void remove_disk_done(struct shim *s, void *opaque, const pv_err_t *err, unsigned scsi_id)
{
	if (err)
		shim_call_error(opaque, err);
	else
		shim_call_ok(opaque);
}

static void remove_disk(struct shim *s, struct shim_call *call, const char *id)
{
	cleanup_err pv_err_t *err = NULL;
	if (shim_disk_remove(s, id, remove_disk_done, call, &err) < 0)
		shim_call_error(call, err);
}

static void shutdown_pod(struct shim *s, struct shim_call *call, Podvisor__Shim__ShutdownRequest *r)
{
	shim_vm_shutdown(s, r->timeout_ms ? (int)r->timeout_ms : s->opts.stop_timeout_ms);
	shim_call_ok(call);
	/* The loop ends after this iteration; main() flushes and closes. */
	shim_loop_quit(s->loop);
}

static void agent_simple(struct shim *s, struct shim_call *call, Podvisor__Agent__Request *areq, int kind)
{
	shim_forward(s, call, areq, kind);
}

void shim_dispatch(struct shim *s, struct shim_call *call, Podvisor__Shim__Request *req)
{
	Podvisor__Agent__Request areq = PODVISOR__AGENT__REQUEST__INIT;
	switch (req->req_case) {
	case PODVISOR__SHIM__REQUEST__REQ_STATUS:
		shim_state_reply(s, call);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_WATCH:
		shim_state_watch(s, call, req->watch->since);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_CREATE_SANDBOX: {
		Podvisor__Agent__CreateSandboxRequest empty = PODVISOR__AGENT__CREATE_SANDBOX_REQUEST__INIT;
		areq.req_case = PODVISOR__AGENT__REQUEST__REQ_CREATE_SANDBOX;
		areq.create_sandbox = req->create_sandbox->sandbox ? req->create_sandbox->sandbox : &empty;
		agent_simple(s, call, &areq, SHIM_FWD_EMPTY);
		return;
	}
	case PODVISOR__SHIM__REQUEST__REQ_CREATE_CONTAINER:
		shim_ctr_create(s, call, req->create_container);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_START_CONTAINER:
		shim_ctr_start(s, call, req->start_container->container_id);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_EXEC:
		shim_exec(s, call, req->exec);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_SIGNAL:
		shim_ctr_signal(s, call, req->signal);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_WAIT:
		shim_ctr_wait(s, call, req->wait->container_id);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_REMOVE_CONTAINER:
		shim_ctr_remove(s, call, req->remove_container->container_id);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_ADD_DISK:
		add_disk(s, call, req->add_disk);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_REMOVE_DISK:
		remove_disk(s, call, req->remove_disk->id);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_STATS: {
		Podvisor__Agent__StatsContainerRequest sr = PODVISOR__AGENT__STATS_CONTAINER_REQUEST__INIT;
		sr.container_id = req->stats->container_id;
		areq.req_case = PODVISOR__AGENT__REQUEST__REQ_STATS_CONTAINER;
		areq.stats_container = &sr;
		agent_simple(s, call, &areq, SHIM_FWD_STATS);
		return;
	}
	case PODVISOR__SHIM__REQUEST__REQ_UPDATE_RESOURCES: {
		Podvisor__Agent__UpdateResourcesRequest ur = PODVISOR__AGENT__UPDATE_RESOURCES_REQUEST__INIT;
		ur.container_id = req->update_resources->container_id;
		ur.resources = req->update_resources->resources;
		areq.req_case = PODVISOR__AGENT__REQUEST__REQ_UPDATE_RESOURCES;
		areq.update_resources = &ur;
		agent_simple(s, call, &areq, SHIM_FWD_EMPTY);
		return;
	}
	case PODVISOR__SHIM__REQUEST__REQ_REOPEN_LOG:
		shim_ctr_reopen_log(s, call, req->reopen_log->container_id);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_AGENT:
		if (!req->agent->request) {
			pv_err_t e = { .status = PV_INVALID_ARGUMENT, .msg = "agent: no request" };
			shim_call_error(call, &e);
			return;
		}
		agent_simple(s, call, req->agent->request, SHIM_FWD_AGENT);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_SHUTDOWN:
		shutdown_pod(s, call, req->shutdown);
		return;
	case PODVISOR__SHIM__REQUEST__REQ_STREAM_OPEN:
	case PODVISOR__SHIM__REQUEST__REQ_STREAM_RESIZE:
	case PODVISOR__SHIM__REQUEST__REQ_STREAM_PORT:
	case PODVISOR__SHIM__REQUEST__REQ_STREAM_WAIT:
		shim_stream_dispatch(s, call, req);
		return;
	default: {
		pv_err_t e = { .status = PV_UNIMPLEMENTED, .msg = "unknown request" };
		shim_call_error(call, &e);
		return;
	}
	}
}
