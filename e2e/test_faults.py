"""Faults: kill -9 of a QEMU, of a shim and of podvisord at moments during create, start and
stop, with real VMs. Afterwards every pod and container reports a truthful state
(NOTREADY / EXITED with a reason), each container's STOPPED event is emitted once, and
everything can be removed, leaving no shim or VM behind.
"""
import json
import os
import random
import signal
import threading
import time

import grpc
import pytest

import cri_pb2
from image_util import Registry
from net_util import NetEnv
from test_pods import busybox_image, ctr_config, pod_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for pod networks")


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    reg.push_image("test/busybox", "1", busybox_image())
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def net():
    n = NetEnv()
    yield n
    n.cleanup()


@pytest.fixture
def env(start_daemon, registry, net):
    d = start_daemon({"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir}})
    image = "%s/test/busybox:1" % registry.host
    d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
    logdir = os.path.join(d.dir, "logs")
    os.makedirs(logdir)
    return {"daemon": d, "image": image, "logdir": logdir}


class Events:
    """GetContainerEvents collected on a thread, from now on."""

    def __init__(self, d):
        self.items = []
        self.stream = d.runtime.GetContainerEvents(cri_pb2.GetEventsRequest(), timeout=600)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for e in self.stream:
                self.items.append((e.container_id, e.container_event_type))
        except grpc.RpcError:
            pass

    def count(self, cid, kind):
        return sum(1 for c, k in self.items if c == cid and k == kind)

    def close(self):
        self.stream.cancel()
        self.thread.join(timeout=10)


def run_pod(env, name):
    cfg = pod_config(name, env["logdir"])
    pod = env["daemon"].runtime.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
    return pod, cfg


def create(env, pod, cfg, name, cmd):
    return env["daemon"].runtime.CreateContainer(cri_pb2.CreateContainerRequest(
        pod_sandbox_id=pod, config=ctr_config(env["image"], name, cmd), sandbox_config=cfg),
        timeout=300).container_id


def start(env, cid):
    env["daemon"].runtime.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)


def info(env, pod):
    r = env["daemon"].runtime.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True),
                                               timeout=30)
    return json.loads(r.info["info"])


def pod_state(env, pod):
    return env["daemon"].runtime.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod),
                                                  timeout=30).status.state


def ctr_status(env, cid):
    return env["daemon"].runtime.ContainerStatus(cri_pb2.ContainerStatusRequest(container_id=cid),
                                                 timeout=30).status


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def until(pred, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def remove_all(env):
    """Stop and remove every pod (a second Stop must succeed too); nothing may be left."""
    d = env["daemon"]
    rt = d.runtime
    for p in rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items:
        rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=120)
        rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=120)
        rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=120)
    assert not rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items
    assert not rt.ListContainers(cri_pb2.ListContainersRequest(), timeout=30).containers
    until(lambda: not d.leftover_pids(), 15, "shims and VMs to be gone")
    assert not os.listdir(os.path.join(d.state, "pods"))


@pytest.mark.parametrize("victim", ["vmmPid", "shimPid"])
def test_kill_running_pod(env, victim):
    """A pod whose QEMU (or shim) is killed: NOTREADY, its container EXITED with the reason, one
    STOPPED event, and within a second of the kill."""
    pod, cfg = run_pod(env, "kill-" + victim[:4])
    cid = create(env, pod, cfg, "sleeper", ["/bin/sleep", "100000"])
    start(env, cid)
    ev = Events(env["daemon"])
    time.sleep(0.3)  # the subscription is in place
    i = info(env, pod)
    t0 = time.monotonic()
    os.kill(i[victim], signal.SIGKILL)
    until(lambda: ev.count(cid, cri_pb2.CONTAINER_STOPPED_EVENT), 15, "the STOPPED event")
    latency = time.monotonic() - t0
    assert pod_state(env, pod) == cri_pb2.SANDBOX_NOTREADY
    st = ctr_status(env, cid)
    assert st.state == cri_pb2.CONTAINER_EXITED
    assert st.reason == ("ShimExited" if victim == "shimPid" else "VMExited"), st
    assert st.finished_at > 0
    # The other process of the pair goes with it (QEMU dies with its shim; a shim stays
    # until stopped when only its VM died).
    if victim == "shimPid":
        until(lambda: not alive(i["vmmPid"]), 10, "QEMU to die with its shim")
    time.sleep(1)
    assert ev.count(cid, cri_pb2.CONTAINER_STOPPED_EVENT) == 1, ev.items
    ev.close()
    assert latency < 5, "the exit took %.2fs to reach the events" % latency
    remove_all(env)


@pytest.mark.parametrize("phase", ["create", "start", "stop"])
def test_kill_vmm_during_call(env, phase):
    """QEMU dies at a random moment while a call is under way: the call ends (with an error or
    not), and the states are truthful afterwards."""
    rng = random.Random(phase)
    pod, cfg = run_pod(env, "vmm-" + phase)
    i = info(env, pod)
    rt = env["daemon"].runtime
    cid = None
    if phase != "create":
        cid = create(env, pod, cfg, "victim", ["/bin/sleep", "100000"])
        if phase == "stop":
            start(env, cid)
    result = {}

    def call():
        try:
            if phase == "create":
                result["cid"] = create(env, pod, cfg, "victim", ["/bin/sleep", "100000"])
            elif phase == "start":
                start(env, cid)
            else:
                rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
            result["ok"] = True
        except grpc.RpcError as e:
            result["err"] = e.code()

    t = threading.Thread(target=call)
    t.start()
    time.sleep(rng.uniform(0.0, 0.8))
    try:
        os.kill(i["vmmPid"], signal.SIGKILL)
    except ProcessLookupError:
        pass  # the call got there first (a stop)
    t.join(timeout=150)
    assert not t.is_alive(), "the call never returned"
    assert result.get("ok") or result.get("err") in (grpc.StatusCode.FAILED_PRECONDITION,
                                                     grpc.StatusCode.UNAVAILABLE), result
    until(lambda: pod_state(env, pod) == cri_pb2.SANDBOX_NOTREADY, 15, "the pod to be NOTREADY")
    for c in rt.ListContainers(cri_pb2.ListContainersRequest(), timeout=30).containers:
        st = until(lambda: (lambda s: s if s.state == cri_pb2.CONTAINER_EXITED else None)(ctr_status(env, c.id)),
                   15, "the container to be EXITED")
        assert st.reason, st
    remove_all(env)


@pytest.mark.parametrize("phase", ["create", "start", "stop"])
def test_kill_podvisord_during_call(env, phase):
    """podvisord is killed at a random moment of a call and restarted: the pod and its
    containers read as what they are, events come once, and all of it can be removed."""
    rng = random.Random("pvd-" + phase)
    d = env["daemon"]
    pod, cfg = run_pod(env, "pvd-" + phase)
    cid = None
    if phase != "create":
        cid = create(env, pod, cfg, "victim", ["/bin/sleep", "100000"])
        if phase == "stop":
            start(env, cid)

    def call():
        try:
            if phase == "create":
                create(env, pod, cfg, "victim", ["/bin/sleep", "100000"])
            elif phase == "start":
                start(env, cid)
            else:
                d.runtime.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        except grpc.RpcError:
            pass  # the daemon died under it

    t = threading.Thread(target=call)
    t.start()
    time.sleep(rng.uniform(0.0, 1.0))
    d.kill_and_restart()
    t.join(timeout=150)
    ev = Events(d)
    time.sleep(0.3)
    rt = d.runtime
    p = rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=30).status
    ctrs = rt.ListContainers(cri_pb2.ListContainersRequest(), timeout=30).containers
    if phase == "stop":
        # Stopped or not, never half: a READY pod still runs its VM and container.
        if p.state == cri_pb2.SANDBOX_READY:
            assert ctr_status(env, cid).state in (cri_pb2.CONTAINER_RUNNING, cri_pb2.CONTAINER_EXITED)
        else:
            assert ctr_status(env, cid).state == cri_pb2.CONTAINER_EXITED
    else:
        assert p.state == cri_pb2.SANDBOX_READY  # the VM kept running
        for c in ctrs:
            st = ctr_status(env, c.id)
            # Created, running (start got through), or EXITED with a reason (the create never
            # reached the shim) — and then it says so.
            if st.state == cri_pb2.CONTAINER_EXITED:
                assert st.reason, st
            if st.state == cri_pb2.CONTAINER_CREATED:
                start(env, c.id)
                until(lambda: ctr_status(env, c.id).state == cri_pb2.CONTAINER_RUNNING, 30, "start")
    remove_all(env)
    time.sleep(0.5)
    for c in ctrs:
        assert ev.count(c.id, cri_pb2.CONTAINER_STOPPED_EVENT) <= 1, ev.items
    ev.close()
