/*
 * Every RPC of CRI runtime.v1 (proto/cri.proto): path, request type and
 * handler. Keep the order of the services in the proto so the two are easy
 * to compare; a handler left NULL is answered UNIMPLEMENTED by the server.
 */
#include <string.h>

/* gnu11 predefines `linux` as 1, and CRI messages have fields named linux. */
#undef linux

#include "server.h"
#include "proto/cri.pb-c.h"
#include "image_service.h"
#include "runtime.h"
#include "runtime_info.h"

const struct cri_method cri_methods[] = {
	/* RuntimeService */
	{ "/runtime.v1.RuntimeService/Version",
	  &runtime__v1__version_request__descriptor, cri_runtime_version, 0 },
	{ "/runtime.v1.RuntimeService/RunPodSandbox",
	  &runtime__v1__run_pod_sandbox_request__descriptor, cri_pod_run, 0 },
	{ "/runtime.v1.RuntimeService/StopPodSandbox",
	  &runtime__v1__stop_pod_sandbox_request__descriptor, cri_pod_stop, 0 },
	{ "/runtime.v1.RuntimeService/RemovePodSandbox",
	  &runtime__v1__remove_pod_sandbox_request__descriptor, cri_pod_remove, 0 },
	{ "/runtime.v1.RuntimeService/PodSandboxStatus",
	  &runtime__v1__pod_sandbox_status_request__descriptor, cri_pod_status, 0 },
	{ "/runtime.v1.RuntimeService/ListPodSandbox",
	  &runtime__v1__list_pod_sandbox_request__descriptor, cri_pod_list, 0 },
	{ "/runtime.v1.RuntimeService/StreamPodSandboxes",
	  &runtime__v1__stream_pod_sandboxes_request__descriptor, NULL, 1 },
	{ "/runtime.v1.RuntimeService/CreateContainer",
	  &runtime__v1__create_container_request__descriptor, cri_ctr_create, 0 },
	{ "/runtime.v1.RuntimeService/StartContainer",
	  &runtime__v1__start_container_request__descriptor, cri_ctr_start, 0 },
	{ "/runtime.v1.RuntimeService/StopContainer",
	  &runtime__v1__stop_container_request__descriptor, cri_ctr_stop, 0 },
	{ "/runtime.v1.RuntimeService/RemoveContainer",
	  &runtime__v1__remove_container_request__descriptor, cri_ctr_remove, 0 },
	{ "/runtime.v1.RuntimeService/ListContainers",
	  &runtime__v1__list_containers_request__descriptor, cri_ctr_list, 0 },
	{ "/runtime.v1.RuntimeService/StreamContainers",
	  &runtime__v1__stream_containers_request__descriptor, NULL, 1 },
	{ "/runtime.v1.RuntimeService/ContainerStatus",
	  &runtime__v1__container_status_request__descriptor, cri_ctr_status, 0 },
	{ "/runtime.v1.RuntimeService/UpdateContainerResources",
	  &runtime__v1__update_container_resources_request__descriptor, cri_ctr_update_resources, 0 },
	{ "/runtime.v1.RuntimeService/ReopenContainerLog",
	  &runtime__v1__reopen_container_log_request__descriptor, cri_ctr_reopen_log, 0 },
	{ "/runtime.v1.RuntimeService/ExecSync",
	  &runtime__v1__exec_sync_request__descriptor, cri_ctr_exec_sync, 0 },
	{ "/runtime.v1.RuntimeService/Exec",
	  &runtime__v1__exec_request__descriptor, cri_ctr_exec, 0 },
	{ "/runtime.v1.RuntimeService/Attach",
	  &runtime__v1__attach_request__descriptor, cri_ctr_attach, 0 },
	{ "/runtime.v1.RuntimeService/PortForward",
	  &runtime__v1__port_forward_request__descriptor, cri_pod_port_forward, 0 },
	{ "/runtime.v1.RuntimeService/ContainerStats",
	  &runtime__v1__container_stats_request__descriptor, cri_ctr_stats, 0 },
	{ "/runtime.v1.RuntimeService/ListContainerStats",
	  &runtime__v1__list_container_stats_request__descriptor, cri_ctr_list_stats, 0 },
	{ "/runtime.v1.RuntimeService/StreamContainerStats",
	  &runtime__v1__stream_container_stats_request__descriptor, NULL, 1 },
	{ "/runtime.v1.RuntimeService/PodSandboxStats",
	  &runtime__v1__pod_sandbox_stats_request__descriptor, cri_pod_stats, 0 },
	{ "/runtime.v1.RuntimeService/ListPodSandboxStats",
	  &runtime__v1__list_pod_sandbox_stats_request__descriptor, cri_pod_list_stats, 0 },
	{ "/runtime.v1.RuntimeService/StreamPodSandboxStats",
	  &runtime__v1__stream_pod_sandbox_stats_request__descriptor, NULL, 1 },
	{ "/runtime.v1.RuntimeService/UpdateRuntimeConfig",
	  &runtime__v1__update_runtime_config_request__descriptor, cri_runtime_update_config, 0 },
	{ "/runtime.v1.RuntimeService/Status",
	  &runtime__v1__status_request__descriptor, cri_runtime_status, 0 },
	{ "/runtime.v1.RuntimeService/CheckpointContainer",
	  &runtime__v1__checkpoint_container_request__descriptor, NULL, 0 },
	{ "/runtime.v1.RuntimeService/GetContainerEvents",
	  &runtime__v1__get_events_request__descriptor, cri_events_get, 1 },
	{ "/runtime.v1.RuntimeService/ListMetricDescriptors",
	  &runtime__v1__list_metric_descriptors_request__descriptor, NULL, 0 },
	{ "/runtime.v1.RuntimeService/ListPodSandboxMetrics",
	  &runtime__v1__list_pod_sandbox_metrics_request__descriptor, NULL, 0 },
	{ "/runtime.v1.RuntimeService/StreamPodSandboxMetrics",
	  &runtime__v1__stream_pod_sandbox_metrics_request__descriptor, NULL, 1 },
	{ "/runtime.v1.RuntimeService/RuntimeConfig",
	  &runtime__v1__runtime_config_request__descriptor, cri_runtime_config, 0 },
	{ "/runtime.v1.RuntimeService/UpdatePodSandboxResources",
	  &runtime__v1__update_pod_sandbox_resources_request__descriptor, NULL, 0 },

	/* ImageService */
	{ "/runtime.v1.ImageService/ListImages",
	  &runtime__v1__list_images_request__descriptor, cri_image_list, 0 },
	{ "/runtime.v1.ImageService/StreamImages",
	  &runtime__v1__stream_images_request__descriptor, NULL, 1 },
	{ "/runtime.v1.ImageService/ImageStatus",
	  &runtime__v1__image_status_request__descriptor, cri_image_status, 0 },
	{ "/runtime.v1.ImageService/PullImage",
	  &runtime__v1__pull_image_request__descriptor, cri_image_pull, 0 },
	{ "/runtime.v1.ImageService/RemoveImage",
	  &runtime__v1__remove_image_request__descriptor, cri_image_remove, 0 },
	{ "/runtime.v1.ImageService/ImageFsInfo",
	  &runtime__v1__image_fs_info_request__descriptor, cri_image_fs_info, 0 },
};

const size_t cri_methods_count = sizeof(cri_methods) / sizeof(cri_methods[0]);

/* Linear: a few dozen entries, looked up once per call. */
const struct cri_method *cri_method_find(const char *path)
{
	if (!path)
		return NULL;
	for (size_t i = 0; i < cri_methods_count; i++)
		if (strcmp(cri_methods[i].path, path) == 0)
			return &cri_methods[i];
	return NULL;
}
