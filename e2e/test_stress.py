"""Concurrency stress of podvisord's core with the fake VMM (e2e/fake_vmm.py).

16 client threads issue random valid CRI sequences on 20 shared pod slots for
PV_STRESS_SECONDS (default 60): run/stop/remove pods, create/start/stop/remove
containers, ExecSync, status and list calls, GetContainerEvents subscribers coming and
going. Threads race each other on the same pods on purpose (as kubelet's workers and
`crictl rmp -fa` do). Pass: no call runs past its deadline, no error other than the
ones a race legitimately gives (NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS), every
pod can be stopped and removed at the end, podvisord exits 0 on SIGTERM within 10 s,
no sanitizer report (the Daemon fixture checks), nothing left running.

`make test-tsan` runs this test against a ThreadSanitizer build.
"""
import os
import random
import signal
import threading
import time

import grpc
import pytest

import cri_pb2
import fake_vmm

THREADS = 16
SLOTS = 20
SECONDS = float(os.environ.get("PV_STRESS_SECONDS", "60"))
DEADLINE = 60  # seconds; far beyond what any call needs with the fake VMM
ALLOWED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS}


@pytest.fixture(scope="module")
def image_registry():
    from image_util import Registry
    reg = Registry()
    image = fake_vmm.push_test_image(reg)
    yield image
    reg.stop()


class Stress:
    def __init__(self, d, image, logdir):
        self.d = d
        self.image = image
        self.logdir = logdir
        self.lock = threading.Lock()
        self.pods = [None] * SLOTS        # slot -> pod id
        self.gen = [0] * SLOTS
        self.ctrs = {}                    # ctr id -> pod id
        self.failures = []
        self.calls = 0
        self.stop = threading.Event()
        self.events_seen = 0

    def call(self, method, req):
        t0 = time.monotonic()
        try:
            return method(req, timeout=DEADLINE)
        except grpc.RpcError as e:
            if e.code() not in ALLOWED:
                self.failures.append("%s: %s %s (after %.1fs)" % (type(req).__name__, e.code(), e.details(),
                                                                  time.monotonic() - t0))
            return None
        finally:
            with self.lock:
                self.calls += 1

    def pick_pod(self):
        with self.lock:
            live = [(i, p) for i, p in enumerate(self.pods) if p]
        return random.choice(live) if live else (None, None)

    def pick_ctr(self):
        with self.lock:
            return random.choice(list(self.ctrs)) if self.ctrs else None

    # ---- operations -------------------------------------------------------------------

    def run_pod(self, rng):
        slot = rng.randrange(SLOTS)
        with self.lock:
            if self.pods[slot]:
                return
            self.gen[slot] += 1
            name = "s%d-g%d" % (slot, self.gen[slot])
            self.pods[slot] = "starting"
        r = self.call(self.d.runtime.RunPodSandbox,
                      cri_pb2.RunPodSandboxRequest(config=fake_vmm.pod_config(name, self.logdir)))
        with self.lock:
            self.pods[slot] = r.pod_sandbox_id if r else None

    def stop_pod(self, rng):
        _, pod = self.pick_pod()
        if pod and pod != "starting":
            self.call(self.d.runtime.StopPodSandbox, cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))

    def remove_pod(self, rng):
        slot, pod = self.pick_pod()
        if not pod or pod == "starting":
            return
        self.call(self.d.runtime.RemovePodSandbox, cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
        with self.lock:
            if self.pods[slot] == pod:
                self.pods[slot] = None
            for c in [c for c, p in self.ctrs.items() if p == pod]:
                del self.ctrs[c]

    def create_ctr(self, rng):
        _, pod = self.pick_pod()
        if not pod or pod == "starting":
            return
        cmd = rng.choice([["/bin/sleep", "30"], ["/bin/sh", "-c", "echo hello; exit 3"], ["/bin/true"]])
        name = "c%06d" % rng.randrange(10 ** 6)
        r = self.call(self.d.runtime.CreateContainer, cri_pb2.CreateContainerRequest(
            pod_sandbox_id=pod, config=fake_vmm.ctr_config(self.image, name, cmd)))
        if r:
            with self.lock:
                self.ctrs[r.container_id] = pod

    def start_ctr(self, rng):
        c = self.pick_ctr()
        if c:
            self.call(self.d.runtime.StartContainer, cri_pb2.StartContainerRequest(container_id=c))

    def stop_ctr(self, rng):
        c = self.pick_ctr()
        if c:
            self.call(self.d.runtime.StopContainer,
                      cri_pb2.StopContainerRequest(container_id=c, timeout=rng.choice([0, 1, 2])))

    def remove_ctr(self, rng):
        c = self.pick_ctr()
        if c:
            self.call(self.d.runtime.RemoveContainer, cri_pb2.RemoveContainerRequest(container_id=c))
            with self.lock:
                self.ctrs.pop(c, None)

    def exec_sync(self, rng):
        c = self.pick_ctr()
        if c:
            r = self.call(self.d.runtime.ExecSync,
                          cri_pb2.ExecSyncRequest(container_id=c, cmd=["/bin/echo", "hi"], timeout=10))
            # 137: the container (or its pod) was stopped under the exec, a race we allow
            if r and r.exit_code != 137 and (r.exit_code != 0 or r.stdout != b"hi\n"):
                self.failures.append("ExecSync: exit %d stdout %r" % (r.exit_code, r.stdout))

    def status_calls(self, rng):
        _, pod = self.pick_pod()
        if pod and pod != "starting":
            self.call(self.d.runtime.PodSandboxStatus, cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod,
                                                                                      verbose=True))
        c = self.pick_ctr()
        if c:
            self.call(self.d.runtime.ContainerStatus, cri_pb2.ContainerStatusRequest(container_id=c))
        self.call(self.d.runtime.ListPodSandbox, cri_pb2.ListPodSandboxRequest())
        self.call(self.d.runtime.ListContainers, cri_pb2.ListContainersRequest())
        self.call(self.d.runtime.ListContainerStats, cri_pb2.ListContainerStatsRequest())

    def events(self, rng):
        stream = self.d.runtime.GetContainerEvents(cri_pb2.GetEventsRequest(), timeout=DEADLINE)
        timer = threading.Timer(rng.uniform(0.2, 2.0), stream.cancel)
        timer.start()
        try:
            for _ in stream:
                with self.lock:
                    self.events_seen += 1
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.failures.append("GetContainerEvents: %s %s" % (e.code(), e.details()))
        finally:
            timer.cancel()

    def worker(self, seed):
        rng = random.Random(seed)
        ops = [(self.run_pod, 3), (self.stop_pod, 1), (self.remove_pod, 1), (self.create_ctr, 4),
               (self.start_ctr, 4), (self.stop_ctr, 2), (self.remove_ctr, 2), (self.exec_sync, 2),
               (self.status_calls, 3), (self.events, 1)]
        population = [f for f, w in ops for _ in range(w)]
        while not self.stop.is_set():
            rng.choice(population)(rng)


def test_concurrency_stress(start_daemon, image_registry):
    build = os.environ.get("PODVISOR_BUILD")
    d = start_daemon(fake_vmm.fake_config(build))
    d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image_registry)), timeout=120)
    logdir = os.path.join(d.dir, "logs")
    os.makedirs(logdir)
    s = Stress(d, image_registry, logdir)
    threads = [threading.Thread(target=s.worker, args=(1000 + i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    s.stop.set()
    for t in threads:
        t.join(timeout=DEADLINE + 30)
        assert not t.is_alive(), "a client thread is stuck in a call"
    assert not s.failures, "%d of %d calls failed:\n%s" % (len(s.failures), s.calls, "\n".join(s.failures[:40]))
    assert s.calls > 200, "too few calls to have stressed anything: %d" % s.calls

    # Every pod can be stopped and removed; nothing is left.
    rt = d.runtime
    for p in rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items:
        rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=DEADLINE)
        rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=DEADLINE)
    assert not rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items
    assert not rt.ListContainers(cri_pb2.ListContainersRequest(), timeout=30).containers
    assert not d.leftover_pids(), "shims or VMs left after every pod was removed"
    assert not os.listdir(os.path.join(d.state, "pods")), "pod state directories left"

    # A prompt, clean exit.
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 10
