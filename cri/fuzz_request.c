/* libFuzzer driver: the checks every CRI request meets before its handler (wire NUL scan, bounds). */
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "cleanup.h"
#include "proto/cri.pb-c.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Requests with the deepest and widest messages, picked by the first byte. */
static const ProtobufCMessageDescriptor *const types[] = {
	&runtime__v1__run_pod_sandbox_request__descriptor,
	&runtime__v1__create_container_request__descriptor,
	&runtime__v1__update_container_resources_request__descriptor,
	&runtime__v1__list_containers_request__descriptor,
	&runtime__v1__list_pod_sandbox_stats_request__descriptor,
	&runtime__v1__exec_sync_request__descriptor,
	&runtime__v1__pull_image_request__descriptor,
	&runtime__v1__stop_pod_sandbox_request__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const ProtobufCMessageDescriptor *d = types[data[0] % PV_ARRAY_SIZE(types)];
	data++;
	size--;
	/* The scan runs on any bytes (podvisord runs it only after a successful unpack). */
	pv_err_t *e = NULL;
	cri_wire_check_strings(d, data, size, &e);
	pv_err_free(e);
	e = NULL;
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size, data);
	if (m) {
		cri_bounds_check(m, &e);
		pv_err_free(e);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return 0;
}
