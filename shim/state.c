/* The pod's state on disk: state.pb (a packed StatusResponse), replaced atomically. */
#include "shim.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"


#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void shim_state_fill(struct shim *s, Podvisor__Shim__StatusResponse *st)
{
	podvisor__shim__status_response__init(st);
	st->state = s->state;
	st->reason = s->reason ? s->reason : "";
	st->shim_pid = (uint32_t)getpid();
	struct vmm_info vi = { 0 };
	if (s->vm)
		sandbox_vmm_info(s->vm, &vi);
	st->vmm_pid = (uint32_t)vi.pid;
	st->created_at_ns = s->created_ns;
	st->ready_at_ns = s->ready_ns;
	st->accel = (char *)(s->vm ? sandbox_accel_name(vi.accel) : "");
	st->agent_version = s->agent_version ? s->agent_version : "";
	st->vcpus = vi.vcpus;
	st->memory_mib = vi.memory_mib;
	st->seq = s->seq;
	st->vm_start = (char *)(s->vm_start ? s->vm_start : "");
	st->vm_start_error = s->vm_start_error ? s->vm_start_error : "";
	st->n_containers = s->nctrs;
	st->containers = pv_xcalloc(s->nctrs ? s->nctrs : 1, sizeof(*st->containers));
	for (size_t i = 0; i < s->nctrs; i++) {
		st->containers[i] = pv_xmalloc(sizeof(**st->containers));
		shim_ctr_fill_status(s->ctrs[i], st->containers[i]);
	}
}

void shim_state_fill_free(Podvisor__Shim__StatusResponse *st)
{
	for (size_t i = 0; i < st->n_containers; i++)
		free(st->containers[i]);
	free(st->containers);
	st->containers = NULL;
	st->n_containers = 0;
}

int shim_state_save(struct shim *s, pv_err_t **err)
{
	Podvisor__Shim__StatusResponse st;
	shim_state_fill(s, &st);
	size_t len = podvisor__shim__status_response__get_packed_size(&st);
	cleanup_free uint8_t *buf = pv_xmalloc(len ? len : 1);
	podvisor__shim__status_response__pack(&st, buf);
	shim_state_fill_free(&st);
	return pv_write_file_atomic(s->state_path, buf, len, 0640, err);
}

void shim_state_reply(struct shim *s, struct shim_call *call)
{
	Podvisor__Shim__Response resp = PODVISOR__SHIM__RESPONSE__INIT;
	Podvisor__Shim__StatusResponse st;
	shim_state_fill(s, &st);
	resp.resp_case = PODVISOR__SHIM__RESPONSE__RESP_STATUS_INFO;
	resp.status_info = &st;
	shim_call_reply(call, &resp);
	shim_state_fill_free(&st);
}

void shim_state_persist(struct shim *s)
{
	s->seq++;
	cleanup_err pv_err_t *err = NULL;
	if (shim_state_save(s, &err) < 0)
		pv_error("cannot record pod state", "error=%s", err->msg);
	struct shim_call **w = s->watchers;
	size_t n = s->nwatchers;
	s->watchers = NULL;
	s->nwatchers = 0;
	for (size_t i = 0; i < n; i++)
		shim_state_reply(s, w[i]);
	free(w);
}

void shim_state_watch(struct shim *s, struct shim_call *call, uint64_t since)
{
	if (s->seq > since) {
		shim_state_reply(s, call);
		return;
	}
	s->watchers = pv_xrealloc(s->watchers, (s->nwatchers + 1) * sizeof(*s->watchers));
	s->watchers[s->nwatchers++] = call;
}
