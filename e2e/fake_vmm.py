"""podvisord with the fake VMM: real podvisord, real shims, e2e/fake_qemu.py in QEMU's place.

The CRI test seam: pod and container lifecycles through the real daemon and the real
shims in milliseconds instead of a TCG boot, for tests of the daemon's own logic
(concurrency, lifetimes, faults). Containers run on the host (fake_qemu.py runs the
process's args), so commands must exist on the host.
"""
import os

import cri_pb2
from image_util import Registry, busybox_layers, Image

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_QEMU = os.path.join(HERE, "fake_qemu.py")


def fake_config(build, extra=None):
    """A podvisord config whose pods boot fake_qemu.py, without CNI."""
    cfg = {
        "runtime": {
            "qemu": FAKE_QEMU,
            "kernel": os.path.join(build, "kernel", "vmlinux"),
            "initramfs": os.path.join(build, "guest", "initramfs.cpio"),
            "boot_timeout_s": 30,
            # fake_qemu.py cannot save or restore a VM: no templates.
            "templates": False,
        },
        "network": {"enabled": False},
    }
    for k, v in (extra or {}).items():
        cfg.setdefault(k, {}).update(v)
    return cfg


def push_test_image(reg):
    reg.push_image("test/fake", "1", Image(busybox_layers()))
    return "%s/test/fake:1" % reg.host


def pod_config(name, logdir):
    return cri_pb2.PodSandboxConfig(
        metadata=cri_pb2.PodSandboxMetadata(name=name, namespace="fake", uid="uid-" + name, attempt=0),
        hostname=name[:60], log_directory=logdir)


def ctr_config(image, name, cmd, attempt=0):
    return cri_pb2.ContainerConfig(
        metadata=cri_pb2.ContainerMetadata(name=name, attempt=attempt),
        image=cri_pb2.ImageSpec(image=image), command=cmd, log_path=name + ".log")
