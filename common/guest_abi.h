/*
 * The host <-> guest ABI: every constant the host side (podvisord, the shim, the VMM
 * layer) and the guest agent must agree on, in one place. Changing one is a protocol
 * change: bump PV_AGENT_PROTOCOL_VERSION (frame.h) when an old agent would misread it.
 *
 * Error codes: agent and shim responses carry `errnum`, an errno in Linux numbering
 * (the guest is Linux; so is every host podvisor runs on today). Code that must know
 * why a call failed tests errnum (e.g. ENXIO, ENOENT), never the message text.
 */
#ifndef PV_GUEST_ABI_H
#define PV_GUEST_ABI_H

#include <stdio.h>

/* The agent's run directory in the guest (tmpfs): per-container dirs, pod files. */
#define PV_GUEST_RUN_DIR "/run/podvisor"

/* The agent's channel: a virtio-serial port of this name (the guest finds it in sysfs). */
#define PV_GUEST_AGENT_PORT "podvisor.agent"

/* The pod's resolv.conf, written by the agent at CreateSandbox, bound into containers. */
#define PV_GUEST_RESOLV_CONF PV_GUEST_RUN_DIR "/resolv.conf"

/* The pod's volume share: one virtio-9p device with this mount tag, mounted by the agent
 * on first use at PV_GUEST_VOL_DIR. The host side bind-mounts container volumes at
 * <share>/<container id>/<n>, which the guest sees as PV_GUEST_VOL_DIR/<container id>/<n>. */
#define PV_GUEST_SHARE_TAG "podvisor.vol"
#define PV_GUEST_VOL_DIR PV_GUEST_RUN_DIR "/vol"

/* Container rootfs disks are hot-added on the VM's one virtio-scsi controller, host 0,
 * channel 0, LUN 0, one SCSI target per disk; the guest finds a disk by its address. */
#define PV_GUEST_SCSI_MAX_TARGETS 256
#define PV_GUEST_SCSI_ADDR_LEN 32
static inline void pv_guest_scsi_address(char buf[PV_GUEST_SCSI_ADDR_LEN], unsigned target)
{
	snprintf(buf, PV_GUEST_SCSI_ADDR_LEN, "0:0:%u:0", target);
}

/* Container cgroups in the guest (cgroup v2): one per container under this parent. */
#define PV_GUEST_CGROUP_ROOT "/sys/fs/cgroup"
#define PV_GUEST_CGROUP_PARENT PV_GUEST_CGROUP_ROOT "/containers"

#endif
