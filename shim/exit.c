/* Container exits: status, times and reason recorded on disk, then waiters answered. */
#include "shim.h"
#include "util.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

void shim_exit_record(struct shim *s, struct shim_ctr *c, int32_t code, int32_t sig, bool oom,
		      const char *reason, const char *message)
{
	if (c->state == PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_EXITED)
		return;
	c->state = PODVISOR__SHIM__CONTAINER_STATE__CONTAINER_EXITED;
	c->exit_code = code;
	c->signal = sig;
	c->oom_killed = oom;
	c->finished_ns = pv_now_realtime_ns();
	if (!reason)
		reason = oom ? "OOMKilled" : code == 0 ? "Completed" : "Error";
	free(c->reason);
	c->reason = pv_xstrdup(reason);
	free(c->message);
	c->message = pv_xstrdup(message ? message : "");
	/* What was buffered of a last unterminated line still belongs in the log. */
	shim_log_stream_flush(&c->out, pv_now_realtime_ns(), NULL);
	shim_log_stream_flush(&c->err, pv_now_realtime_ns(), NULL);
	pv_info("container exited", "container=%s exit_code=%d signal=%d reason=%s", c->id, code, sig, reason);
	shim_state_persist(s);
	shim_stream_ctr_exited(s, c);

	struct shim_call **waiters = c->waiters;
	size_t n = c->nwaiters;
	c->waiters = NULL;
	c->nwaiters = 0;
	for (size_t i = 0; i < n; i++) {
		Podvisor__Shim__Response resp = PODVISOR__SHIM__RESPONSE__INIT;
		Podvisor__Shim__ContainerStatus st;
		shim_ctr_fill_status(c, &st);
		resp.resp_case = PODVISOR__SHIM__RESPONSE__RESP_CONTAINER;
		resp.container = &st;
		shim_call_reply(waiters[i], &resp);
	}
	free(waiters);
}
