"""What kubelet needs from a pod beyond running it: the stats it reads (ListContainerStats,
ListPodSandboxStats) and container restarts inside a live pod VM, as kubelet does them.

Real podvisord, real VMs (TCG), a real registry and a real CNI bridge, as in test_pods.py.
"""
import json
import os
import subprocess
import time

import grpc
import pytest

import cri_pb2
from image_util import BUSYBOX, Entry, Image, Registry, make_tar
from net_util import NetEnv
from test_pods import LOG_LINE, pod_config

APPLETS = ["sh", "echo", "sleep", "cat", "ls", "dd", "head", "tail", "true", "false", "mount", "mkdir", "rm",
           "sync", "wc", "ip", "ping", "grep"]


def image():
    bb = open(BUSYBOX, "rb").read()
    entries = [Entry("bin", kind="dir", mode=0o755), Entry("bin/busybox", bb, mode=0o755)]
    entries += [Entry("bin/" + a, kind="symlink", link="busybox", mode=0o777) for a in APPLETS]
    entries += [Entry("etc", kind="dir", mode=0o755), Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
                Entry("etc/group", b"root:x:0:\n"), Entry("tmp", kind="dir", mode=0o1777)]
    return Image([make_tar(entries)], config_extra={"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]})


@pytest.fixture(scope="module")
def node():
    import conftest
    reg = Registry()
    net = NetEnv()
    d = None
    try:
        reg.push_image("test/node", "1", image())
        d = conftest.Daemon({"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir}})
        img = "%s/test/node:1" % reg.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=img)), timeout=300)
        yield {"daemon": d, "image": img}
    finally:
        if d:
            d.cleanup()
        net.cleanup()
        reg.stop()


class Pod:
    """A pod of the test's own, laid out as kubelet does (/var/log/pods/<ns>_<name>_<uid>/...)."""

    def __init__(self, node, name, tmp_path, privileged=False):
        self.rt = node["daemon"].runtime
        self.image = node["image"]
        self.logdir = str(tmp_path / ("e2e_%s_uid-%s" % (name, name)))
        os.makedirs(self.logdir)
        self.cfg = pod_config(name, self.logdir)
        if privileged:  # a privileged container needs a privileged pod
            self.cfg.linux.security_context.privileged = True
        self.id = self.rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=self.cfg), timeout=300).pod_sandbox_id

    def create(self, name, cmd, attempt=0, **kw):
        # kubelet makes <log dir>/<container>/ and names the file after the restart count.
        os.makedirs(os.path.join(self.logdir, name), exist_ok=True)
        cfg = cri_pb2.ContainerConfig(metadata=cri_pb2.ContainerMetadata(name=name, attempt=attempt),
                                      image=cri_pb2.ImageSpec(image=self.image), command=cmd,
                                      log_path="%s/%d.log" % (name, attempt), **kw)
        return self.rt.CreateContainer(cri_pb2.CreateContainerRequest(
            pod_sandbox_id=self.id, config=cfg, sandbox_config=self.cfg), timeout=120).container_id

    def start(self, cid):
        self.rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)

    def run(self, name, cmd, **kw):
        cid = self.create(name, cmd, **kw)
        self.start(cid)
        return cid

    def status(self, cid):
        return self.rt.ContainerStatus(cri_pb2.ContainerStatusRequest(container_id=cid), timeout=30).status

    def wait(self, cid, state, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status(cid)
            if st.state == state:
                return st
            time.sleep(0.2)
        raise AssertionError("container %s not in state %s: %s" % (cid, state, st))

    def exec(self, cid, cmd, timeout=60):
        return self.rt.ExecSync(cri_pb2.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout),
                                timeout=timeout + 60)

    def info(self):
        r = self.rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=self.id, verbose=True),
                                     timeout=30)
        return r.status, json.loads(r.info["info"])

    def remove(self):
        self.rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=self.id), timeout=120)
        self.rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=self.id), timeout=120)


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.5)
    raise AssertionError("timed out waiting for " + what)


# ---- stats ------------------------------------------------------------------------------

def ctr_stats(pod, cid):
    return pod.rt.ContainerStats(cri_pb2.ContainerStatsRequest(container_id=cid), timeout=60).stats


def pod_stats(pod):
    r = pod.rt.ListPodSandboxStats(cri_pb2.ListPodSandboxStatsRequest(
        filter=cri_pb2.PodSandboxStatsFilter(id=pod.id)), timeout=60)
    assert [s.attributes.id for s in r.stats] == [pod.id]
    return r.stats[0]


def test_stats_kubelet_reads(node, tmp_path):
    pod = Pod(node, "stats", tmp_path)
    try:
        # 64 MiB held by tail (it keeps the last 64 MiB of a pipe that is never closed) + a CPU burner.
        hog = pod.run("hog", ["/bin/sh", "-c", "{ head -c 67108864 /dev/zero; sleep 100000; } | tail -c 67108864 & "
                                              "while :; do :; done"])
        def held():  # tail has read all 64 MiB (anonymous memory), the working set shows it
            s = ctr_stats(pod, hog)
            m = s.memory
            return s if m.working_set_bytes.value >= 64 << 20 and m.rss_bytes.value >= 63 << 20 else None
        st = wait_until(held, 120, "64 MiB working set")
        m = st.memory
        assert m.usage_bytes.value >= m.working_set_bytes.value
        assert m.page_faults.value > 16384   # 64 MiB of pages touched
        assert m.available_bytes.value > 0   # no limit: what the guest has left
        cpu1 = st.cpu.usage_core_nano_seconds.value
        time.sleep(2)
        st2 = ctr_stats(pod, hog)
        assert st2.cpu.usage_core_nano_seconds.value > cpu1
        assert st2.cpu.timestamp > st.cpu.timestamp
        # Two samples >= 1 s apart give a rate: the burner uses most of the guest's vCPU.
        assert st2.cpu.HasField("usage_nano_cores")
        assert st2.cpu.usage_nano_cores.value > 300_000_000, st2.cpu

        # Writable layer: grows by what the container writes into its rootfs.
        before = st2.writable_layer
        assert "/disks/" in before.fs_id.mountpoint  # the pod's disk dir under the root dir
        r = pod.exec(hog, ["/bin/sh", "-c", "dd if=/dev/zero of=/written bs=4k count=64 && mkdir /d1 /d2 && sync"])
        assert r.exit_code == 0, r.stderr
        after = ctr_stats(pod, hog).writable_layer
        assert after.used_bytes.value >= before.used_bytes.value + 256 * 1024, (before, after)
        assert after.inodes_used.value >= before.inodes_used.value + 3, (before, after)

        # The same container in ListContainerStats.
        lst = pod.rt.ListContainerStats(cri_pb2.ListContainerStatsRequest(
            filter=cri_pb2.ContainerStatsFilter(pod_sandbox_id=pod.id)), timeout=60).stats
        assert [s.attributes.id for s in lst] == [hog]
        assert lst[0].memory.working_set_bytes.value >= 64 << 20

        # Pod level: the VM as the node pays for it, network from the guest's eth0.
        status, info = pod.info()
        ps1 = pod_stats(pod).linux
        assert [c.attributes.id for c in ps1.containers] == [hog]
        assert ps1.memory.working_set_bytes.value >= ps1.containers[0].memory.working_set_bytes.value
        assert ps1.cpu.usage_core_nano_seconds.value >= ps1.containers[0].cpu.usage_core_nano_seconds.value
        assert ps1.process.process_count.value >= 3  # sh, tail, sleep (head may have gone)
        assert ps1.network.default_interface.name == "eth0"
        ping = subprocess.run(["ping", "-c", "20", "-i", "0.2", "-s", "1000", "-W", "5", status.network.ip],
                              capture_output=True, timeout=120)
        assert ping.returncode == 0, ping.stdout
        ps2 = pod_stats(pod).linux
        rx1, rx2 = ps1.network.default_interface.rx_bytes.value, ps2.network.default_interface.rx_bytes.value
        tx1, tx2 = ps1.network.default_interface.tx_bytes.value, ps2.network.default_interface.tx_bytes.value
        assert rx2 >= rx1 + 20 * 1000 and tx2 >= tx1 + 20 * 1000, (ps1.network, ps2.network)
        assert ps2.cpu.HasField("usage_nano_cores") and ps2.cpu.usage_nano_cores.value > 0
        # The QEMU process holds the guest's pages and its own: more than the container.
        qemu_rss = int([l for l in open("/proc/%d/status" % info["vmmPid"]) if l.startswith("VmRSS:")][0].split()[1])
        assert ps2.memory.working_set_bytes.value >= qemu_rss * 1024 * 0.8
    finally:
        pod.remove()


# ---- restarts ---------------------------------------------------------------------------

def qemu_fds(pid):
    fds = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            fds[fd] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    return fds


def guest_view(pod, watcher):
    """From a privileged container: the guest's SCSI disks and container cgroups."""
    r = pod.exec(watcher, ["/bin/sh", "-c", "ls /sys/block; echo --; ls /tmp/cg/containers"])
    assert r.exit_code == 0, r.stderr
    disks, cgroups = r.stdout.decode().split("--\n")
    # Child cgroups are the containers' ids; the rest are the parent's own files (cgroup.*, memory.*).
    return sorted(d for d in disks.split() if d.startswith("sd")), sorted(c for c in cgroups.split() if "." not in c)


def test_container_restarts_in_live_pod(node, tmp_path):
    """kubelet's restart of a failed container, 5 times: a new container (attempt+1) in the same
    VM, after the pod's last container has exited; a fresh log file each time; the same IP;
    the old attempt removed as kubelet's GC does (keeping the last dead one); nothing leaks."""
    pod = Pod(node, "restarts", tmp_path, privileged=True)
    try:
        status, info = pod.info()
        ip = status.network.ip
        disk_dir = info["diskDir"]
        counts = []  # after each GC: the same two containers exist, so the same descriptors

        def fd_counts():
            return (len(qemu_fds(info["vmmPid"])), len(os.listdir("/proc/%d/fd" % info["shimPid"])),
                    len(os.listdir("/proc/%d/fd" % node["daemon"].proc.pid)))
        cids = []
        for attempt in range(6):
            cid = pod.run("crasher", ["/bin/sh", "-c", "echo run-%d; exit 1" % attempt], attempt=attempt)
            cids.append(cid)
            st = pod.wait(cid, cri_pb2.CONTAINER_EXITED)
            assert st.exit_code == 1 and st.metadata.attempt == attempt
            assert st.log_path == os.path.join(pod.logdir, "crasher", "%d.log" % attempt)
            lines = open(st.log_path, "rb").read().splitlines()
            assert len(lines) == 1 and LOG_LINE.match(lines[0]).group(5) == b"run-%d" % attempt, lines
            # The pod's only container is dead: the pod stays ready with its IP.
            pst, _ = pod.info()
            assert pst.state == cri_pb2.SANDBOX_READY and pst.network.ip == ip
            if attempt >= 2:  # kubelet's GC keeps the most recent dead container
                pod.rt.RemoveContainer(cri_pb2.RemoveContainerRequest(container_id=cids[attempt - 2]), timeout=120)
                assert sorted(os.listdir(disk_dir)) == sorted("%s.qcow2" % c for c in cids[-2:])
                counts.append(fd_counts())
        assert sorted(os.listdir(os.path.join(pod.logdir, "crasher"))) == ["%d.log" % i for i in range(6)]
        assert len(cids) == len(set(cids))
        # Host: QEMU, the shim and podvisord hold no more descriptors than before (a leaked
        # blockdev keeps its qcow2 open), and nothing open points at a deleted disk.
        disk_fds = [t for t in qemu_fds(info["vmmPid"]).values() if t.startswith(disk_dir + "/")]
        assert sorted(set(disk_fds)) == sorted(os.path.join(disk_dir, "%s.qcow2" % c) for c in cids[-2:]), disk_fds
        qemu, shim, daemon = zip(*counts)
        assert max(qemu) == min(qemu) and max(shim) == min(shim), counts
        assert max(daemon) <= min(daemon) + 2, counts  # gRPC may hold a transient socket
        # Guest: with the last two removed too, only the watcher's disk and cgroup remain.
        for c in cids[-2:]:
            pod.rt.RemoveContainer(cri_pb2.RemoveContainerRequest(container_id=c), timeout=120)
        watcher = pod.run("watcher", ["/bin/sh", "-c", "mkdir -p /tmp/cg && mount -t cgroup2 none /tmp/cg && "
                                                      "exec sleep 100000"],
                          linux=cri_pb2.LinuxContainerConfig(security_context=cri_pb2.LinuxContainerSecurityContext(
                              privileged=True)))
        wait_until(lambda: pod.exec(watcher, ["/bin/ls", "/tmp/cg/containers"]).exit_code == 0, 60, "cgroup2 mount")
        disks, cgroups = guest_view(pod, watcher)
        assert cgroups == [watcher], cgroups
        assert len(disks) == 1, disks
        assert os.listdir(disk_dir) == ["%s.qcow2" % watcher]
        # A new attempt still works after all that, with the same IP.
        again = pod.run("crasher", ["/bin/sh", "-c", "ip -4 addr show eth0"], attempt=6)
        assert pod.wait(again, cri_pb2.CONTAINER_EXITED).exit_code == 0
        assert ("inet %s/" % ip).encode() in open(os.path.join(pod.logdir, "crasher", "6.log"), "rb").read()
    finally:
        pod.remove()
