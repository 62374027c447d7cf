"""Pods of either architecture on one node, through the CRI (docs/arm64.md): real arm64 pod VMs
(QEMU virt under TCG) next to x86_64 ones, a multi-arch image built here from Debian's
busybox-static for amd64 and arm64 (arm64 via `apt-get download`), a real registry, real CNI.
"""
import json
import os
import subprocess

import grpc
import pytest

import agent_util as au
import conftest
import cri_pb2
from image_util import Entry, Image, Registry, make_tar
from net_util import NetEnv
from test_pods import APPLETS, busybox_image, ctr_config, exec_sync, pod_config


def arm64_busybox_image():
    bb = open(au.debian_busybox("arm64"), "rb").read()
    entries = [Entry("bin", kind="dir", mode=0o755), Entry("bin/busybox", bb, mode=0o755)]
    entries += [Entry("bin/" + a, kind="symlink", link="busybox", mode=0o777) for a in APPLETS + ["uname"]]
    entries += [Entry("etc", kind="dir", mode=0o755), Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
                Entry("tmp", kind="dir", mode=0o1777)]
    return Image([make_tar(entries)], config_extra={"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]}, arch="arm64")


@pytest.fixture(scope="module")
def world():
    if not au.find_kernel("arm64") or not os.path.isfile(au.initramfs("arm64")):
        pytest.fail("the arm64 guest is not built (make build builds both guest architectures)")
    reg = Registry()
    amd, arm = busybox_image(), arm64_busybox_image()
    reg.push_index("test/multi", "1", {"amd64": amd, "arm64": arm})
    reg.push_image("test/amd64only", "1", amd)
    net = NetEnv()
    d = conftest.Daemon({"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir},
                         "runtime": {"boot_timeout_s": 180}})
    logdir = os.path.join(d.dir, "logs")
    os.makedirs(logdir)
    try:
        yield {"daemon": d, "reg": reg, "net": net, "logdir": logdir, "amd": amd, "arm": arm}
    finally:
        d.cleanup()
        net.cleanup()
        reg.stop()


def pull(world, name, handler):
    spec = cri_pb2.ImageSpec(image="%s/%s" % (world["reg"].host, name), runtime_handler=handler)
    world["daemon"].image.PullImage(cri_pb2.PullImageRequest(image=spec), timeout=300)
    return spec.image


def run_pod(world, name, handler):
    rt = world["daemon"].runtime
    cfg = pod_config(name, world["logdir"])
    pod = rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg, runtime_handler=handler),
                           timeout=400).pod_sandbox_id
    return dict(world, pod=pod, pod_cfg=cfg)


def start(env, image, name, cmd):
    rt = env["daemon"].runtime
    cfg = ctr_config(image, name, cmd)
    cid = rt.CreateContainer(cri_pb2.CreateContainerRequest(pod_sandbox_id=env["pod"], config=cfg,
                                                            sandbox_config=env["pod_cfg"]), timeout=300).container_id
    rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)
    return cid


def remove_pod(env):
    rt = env["daemon"].runtime
    rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=env["pod"]), timeout=120)
    rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=env["pod"]), timeout=120)


def test_status_lists_architectures(world):
    st = world["daemon"].runtime.Status(cri_pb2.StatusRequest(verbose=True), timeout=30)
    names = [h.name for h in st.runtime_handlers]
    assert names[0] == "" and "arm64" in names and "x86_64" in names and "arm64-x86" in names
    handlers = {h["name"]: h for h in json.loads(st.info["info"])["runtime_handlers"]}
    assert handlers["arm64"]["arch"] == "arm64" and handlers["arm64"]["available"]
    # This x86_64 node runs arm64 guests emulated only; the host's own arch per the probe.
    assert handlers["arm64"]["accel"] == "tcg" and handlers["arm64"]["emulated"] is True
    assert handlers[""]["arch"] == "x86_64"
    assert handlers["arm64-x86"]["platforms"] == ["linux/arm64", "linux/amd64"]


def test_arm64_pod_runs_arm64_image_with_network(world):
    image = pull(world, "test/multi:1", "arm64")
    env = run_pod(world, "armpod", "arm64")
    try:
        rt = world["daemon"].runtime
        st = rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=env["pod"]), timeout=30).status
        assert st.runtime_handler == "arm64"
        ip = st.network.ip
        assert ip.startswith("10.231."), ip
        # The container's rootfs disk is hot-added to virt's virtio-scsi controller.
        cid = start(env, image, "arm", ["/bin/sleep", "100000"])
        cst = rt.ContainerStatus(cri_pb2.ContainerStatusRequest(container_id=cid), timeout=30).status
        assert cst.image_id == world["arm"].id  # the index's arm64 entry, not the host's amd64 one
        r = exec_sync(env, cid, ["/bin/uname", "-m"], timeout=120)
        assert r.exit_code == 0 and r.stdout.strip() == b"aarch64", r
        ping = subprocess.run(["ping", "-c", "1", "-W", "20", ip], capture_output=True, timeout=90)
        assert ping.returncode == 0, ping.stdout
        # An image of a platform this handler does not run is refused, naming both.
        amd_only = pull(world, "test/amd64only:1", "x86_64")
        with pytest.raises(grpc.RpcError) as ei:
            start(env, amd_only, "wrong", ["/bin/true"])
        assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "linux/amd64" in ei.value.details() and "runs linux/arm64" in ei.value.details()
    finally:
        remove_pod(env)


def test_amd64_image_in_arm64_pod_through_binfmt(world):
    image = pull(world, "test/amd64only:1", "arm64-x86")
    env = run_pod(world, "emupod", "arm64-x86")
    try:
        cid = start(env, image, "x86", ["/bin/sleep", "100000"])
        r = exec_sync(env, cid, ["/bin/sh", "-c", "/bin/busybox uname -m; echo $((6*7))"], timeout=180)
        assert r.exit_code == 0, r
        assert r.stdout.split() == [b"x86_64", b"42"]
    finally:
        remove_pod(env)


def test_x86_pod_next_to_arm64_gets_amd64(world):
    image = pull(world, "test/multi:1", "")
    env = run_pod(world, "x86pod", "")
    try:
        cid = start(env, image, "x86", ["/bin/sleep", "100000"])
        cst = world["daemon"].runtime.ContainerStatus(cri_pb2.ContainerStatusRequest(container_id=cid),
                                                      timeout=30).status
        assert cst.image_id == world["amd"].id
        r = exec_sync(env, cid, ["/bin/busybox", "uname", "-m"], timeout=60)
        assert r.stdout.strip() == b"x86_64"
    finally:
        remove_pod(env)
