"""podvisor-shim end to end: a real pod VM (QEMU microvm + guest agent) driven through the
shim's control socket with podvisor-shimctl.

One pod is shared by the ordered tests of TestPodLifecycle (booting under TCG is slow);
each test asserts one behaviour, and the last ones kill QEMU and stop the pod.
"""
import os
import re
import signal
import subprocess
import time

import pytest

from shim_util import (Pod, CtlError, initramfs_path, kernel_path, make_ext4, pid_alive, shimctl, wait_for,
                       SHIMCTL)

HAVE_VM = bool(kernel_path() and initramfs_path())
need_vm = pytest.mark.skipif(not HAVE_VM, reason="needs the guest kernel and initramfs (make build)")

CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (P|F) (.*)$")


def cri_lines(path):
    with open(path) as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        m = CRI_LINE.match(line)
        assert m, "not a CRI log line: %r" % line
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


@pytest.fixture(scope="class", params=["fake", "vm"])
def pod(request, tmp_path_factory):
    """One pod per mode: "vm" is the real thing; "fake" runs the shim against
    e2e/fake_qemu.py (QMP + agent stand-in, processes run on the host) in seconds."""
    fake = request.param == "fake"
    if not fake and not HAVE_VM:
        pytest.skip("needs the guest kernel and initramfs (make build)")
    d = tmp_path_factory.mktemp("shim-images")
    img1 = make_ext4(str(d / "img1.ext4"), {"/etc/marker": "image-one\n"})
    img2 = make_ext4(str(d / "img2.ext4"), {"/etc/marker": "image-two\n"})
    p = Pod(fake=fake)
    p.images = (img1, img2)
    p.logdir = str(d)
    request.cls.pod = p
    yield p
    p.stop()


@pytest.mark.usefixtures("pod")
class TestPodLifecycle:
    def test_ready(self):
        st = self.pod.status()
        assert st["state"] == "READY"
        assert st["accel"] in ("kvm", "tcg", "hvf")
        assert st["agent_version"] == "fake-agent" if self.pod.fake else st["agent_version"]
        assert pid_alive(st["vmm_pid"]) and pid_alive(st["shim_pid"])
        assert st["ready_at_ns"] >= st["created_at_ns"] > 0
        # The shim is in its own session, so podvisord's death does not take it along.
        assert os.getsid(st["shim_pid"]) == st["shim_pid"]

    def test_two_containers_run(self):
        img1, img2 = self.pod.images
        log1 = os.path.join(self.pod.logdir, "c1.log")
        log2 = os.path.join(self.pod.logdir, "c2.log")
        # The fake runs processes on the host: there the marker comes from an echo.
        marker = "echo image-one" if self.pod.fake else "cat /etc/marker"
        c1 = self.pod.ctl("create", "c1", img1, log1, "--", "/bin/sh", "-c",
                          marker + "; echo to-stderr >&2; printf no-newline; exit 3")
        assert c1["state"] == "CREATED"
        assert os.path.exists(c1["disk"])
        marker = "echo image-two" if self.pod.fake else "cat /etc/marker"
        c2 = self.pod.ctl("create", "c2", img2, log2, "--", "/bin/sh", "-c", marker + "; exec sleep 100000")
        assert c2["state"] == "CREATED"
        self.pod.ctl("start", "c1")
        self.pod.ctl("start", "c2")
        done = self.pod.ctl("wait", "c1", 120000)
        assert done["state"] == "EXITED"
        assert done["exit_code"] == 3
        assert done["reason"] == "Error"
        assert done["finished_at_ns"] >= done["started_at_ns"] > 0
        lines = cri_lines(log1)
        assert ("stdout", "F", "image-one") in lines
        assert ("stderr", "F", "to-stderr") in lines
        # The unterminated last line is still logged, as a full line at exit.
        assert ("stdout", "F", "no-newline") in lines
        wait_for(lambda: os.path.exists(log2) and ("stdout", "F", "image-two") in cri_lines(log2), 60,
                 "c2's first log line")
        assert self.pod.container("c2")["state"] == "RUNNING"

    def test_exit_recorded_on_disk(self):
        st = self.pod.offline_state()
        c1 = [c for c in st["containers"] if c["id"] == "c1"][0]
        assert c1["state"] == "EXITED" and c1["exit_code"] == 3

    def test_exec(self):
        r = self.pod.ctl("exec", "c2", "--timeout", "60000", "--", "/bin/sh", "-c",
                         "echo out-$((6*7)); echo err >&2; exit 5")
        assert r["exit_code"] == 5
        assert r["stdout"] == "out-42\n"
        assert r["stderr"] == "err\n"
        assert not r["timed_out"]
        r = self.pod.ctl("exec", "c2", "--timeout", "1500", "--", "/bin/sleep", "600")
        assert r["timed_out"]
        assert r["signal"] == signal.SIGKILL or r["exit_code"] == 128 + signal.SIGKILL

    def test_reopen_log(self):
        log2 = os.path.join(self.pod.logdir, "c2.log")
        os.rename(log2, log2 + ".1")
        self.pod.ctl("reopen-log", "c2")
        assert os.path.exists(log2)
        with pytest.raises(CtlError) as e:
            self.pod.ctl("reopen-log", "nope")
        assert e.value.code == "NOT_FOUND"

    def test_client_killed_state_intact(self):
        # A client blocked in Wait is SIGKILLed (podvisord crashing): the shim carries on.
        p = self.pod.popen_ctl("wait", "c2")
        time.sleep(0.5)  # let it connect and send; nothing to poll for from outside
        assert p.poll() is None
        p.kill()
        p.wait()
        st = self.pod.status()
        assert st["state"] == "READY"
        states = {c["id"]: c["state"] for c in st["containers"]}
        assert states == {"c1": "EXITED", "c2": "RUNNING"}
        r = self.pod.ctl("exec", "c2", "--timeout", "60000", "--", "/bin/echo", "still-here")
        assert r["stdout"] == "still-here\n"

    def test_remove_hot_unplugs_disk(self):
        disk = self.pod.container("c1")["disk"]
        self.pod.ctl("remove", "c1")
        assert self.pod.container("c1") is None
        assert not os.path.exists(disk)
        with pytest.raises(CtlError) as e:
            self.pod.ctl("wait", "c1")
        assert e.value.code == "NOT_FOUND"

    def test_errors(self):
        img1, _ = self.pod.images
        with pytest.raises(CtlError) as e:
            self.pod.ctl("create", "c2", img1, "", "--", "/bin/true")
        assert e.value.code == "ALREADY_EXISTS"
        with pytest.raises(CtlError) as e:
            self.pod.ctl("create", "bad/id", img1, "", "--", "/bin/true")
        assert e.value.code == "INVALID_ARGUMENT"
        with pytest.raises(CtlError) as e:
            self.pod.ctl("create", "c9", "/nonexistent/img.ext4", "", "--", "/bin/true")
        assert "/nonexistent/img.ext4" in e.value.message
        assert self.pod.container("c9") is None
        with pytest.raises(CtlError) as e:
            self.pod.ctl("start", "nope")
        assert e.value.code == "NOT_FOUND"

    def test_dead_vm_is_notready(self):
        st = self.pod.status()
        os.kill(st["vmm_pid"], signal.SIGKILL)
        t0 = time.monotonic()
        wait_for(lambda: self.pod.status()["state"] == "NOTREADY", 10, "NOTREADY after kill -9 of QEMU")
        assert time.monotonic() - t0 < 10
        c2 = self.pod.container("c2")
        assert c2["state"] == "EXITED"
        assert c2["reason"] in ("VMExited", "AgentLost")
        # Persisted, so a restarted podvisord reads the same.
        assert self.pod.offline_state()["state"] == "NOTREADY"
        with pytest.raises(CtlError) as e:
            self.pod.ctl("exec", "c2", "--", "/bin/true")
        assert e.value.code == "FAILED_PRECONDITION"

    def test_stop_leaves_nothing(self):
        st = self.pod.status()
        shim_pid = st["shim_pid"]
        self.pod.ctl("shutdown", 5000)
        wait_for(lambda: not pid_alive(shim_pid), 30, "shim exit")
        assert not pid_alive(st["vmm_pid"])
        left = sorted(os.listdir(self.pod.state_dir))
        assert not [f for f in left if f.endswith(".sock")], left
        assert os.listdir(os.path.join(self.pod.state_dir, "disks")) == []
        assert self.pod.offline_state()["state"] in ("STOPPED", "NOTREADY")


@need_vm
def test_shim_survives_and_reports_clean_stop(tmp_path):
    """A pod stopped while a container runs: everything goes, the container is EXITED."""
    img = make_ext4(str(tmp_path / "img.ext4"))
    pod = Pod()
    try:
        pod.ctl("create", "only", img, str(tmp_path / "only.log"), "--", "/bin/sleep", "100000")
        pod.ctl("start", "only")
        vmm, shim = pod.vmm_pid, pod.shim_pid
        pod.ctl("shutdown", 5000)
        wait_for(lambda: not pid_alive(shim) and not pid_alive(vmm), 30, "shim and QEMU exit")
        st = pod.offline_state()
        assert st["state"] == "STOPPED"
        assert st["containers"][0]["state"] == "EXITED"
        assert not [f for f in os.listdir(pod.state_dir) if f.endswith(".sock")]
        assert os.listdir(os.path.join(pod.state_dir, "disks")) == []
    finally:
        pod.stop()


@need_vm
def test_boot_failure_reports_console(tmp_path):
    """An initramfs without the agent: spawn fails in time, names the VM log, leaves nothing."""
    bad = tmp_path / "empty.cpio"
    subprocess.run("cpio -o -H newc --quiet < /dev/null > %s" % bad,
                   shell=True, check=True)
    before = set(subprocess.run(["pgrep", "-f", str(bad)], stdout=subprocess.PIPE).stdout.split())
    assert not before
    t0 = time.monotonic()
    with pytest.raises(CtlError) as e:
        Pod(initramfs=str(bad), boot_timeout_ms=20000)
    assert time.monotonic() - t0 < 60
    assert "vm.log" in e.value.message
    wait_for(lambda: not subprocess.run(["pgrep", "-f", str(bad)], stdout=subprocess.PIPE).stdout, 10,
             "no QEMU left")


@need_vm
def test_missing_kernel_names_path(tmp_path):
    with pytest.raises(CtlError) as e:
        Pod(kernel=str(tmp_path / "no-such-vmlinux"), boot_timeout_ms=5000)
    assert "no-such-vmlinux" in e.value.message


@pytest.mark.parametrize("mode", ["fake", pytest.param("vm", marks=need_vm)])
def test_dead_shim_reported_from_disk(tmp_path, mode):
    """kill -9 of the shim: QEMU goes with it, and the recorded state says NOTREADY /
    EXITED ("ShimExited") so a restarted podvisord reports the pod truthfully."""
    img = make_ext4(str(tmp_path / "img.ext4"))
    pod = Pod(fake=mode == "fake")
    try:
        pod.ctl("create", "c", img, str(tmp_path / "c.log"), "--", "/bin/sleep", "100000")
        pod.ctl("start", "c")
        os.kill(pod.shim_pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pod.shim_pid), 10, "shim to die")
        wait_for(lambda: not pid_alive(pod.vmm_pid), 10, "QEMU to follow its shim")
        with pytest.raises(CtlError) as e:
            pod.status()
        assert e.value.code == "UNAVAILABLE"
        st = pod.offline_state()
        assert st["state"] == "NOTREADY"
        assert st["containers"][0]["state"] == "EXITED"
        assert st["containers"][0]["reason"] == "ShimExited"
    finally:
        pod.stop()


@pytest.fixture
def pod_netns():
    """A pod netns as CNI leaves it: eth0 (10.77.x.2/24, default via .1) whose peer is on
    the host with .1, so the host can reach the pod's address. Removed afterwards."""
    name = "pvshim%d" % os.getpid()
    host = "pvh%d" % os.getpid()
    net = "10.77.%d" % (os.getpid() % 250)
    cmds = [["ip", "netns", "add", name],
            ["ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", name],
            ["ip", "addr", "add", net + ".1/24", "dev", host], ["ip", "link", "set", host, "up"],
            ["ip", "-n", name, "addr", "add", net + ".2/24", "dev", "eth0"],
            ["ip", "-n", name, "link", "set", "eth0", "up"], ["ip", "-n", name, "link", "set", "lo", "up"],
            ["ip", "-n", name, "route", "add", "default", "via", net + ".1"]]
    try:
        for c in cmds:
            subprocess.run(c, check=True)
        yield "/var/run/netns/" + name, net + ".2"
    finally:
        subprocess.run(["ip", "link", "del", host], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)


@need_vm
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_network_through_tap(pod_netns):
    """--netns: the shim adds tap0 + mirred in the pod netns, QEMU gets the tap as an fd,
    the guest's eth0 gets the veth's MAC, address and route: the host pings the pod IP.
    Stopping removes the tap."""
    netns, ip = pod_netns
    pod = Pod(extra=["--netns", netns])
    try:
        links = subprocess.run(["ip", "-n", os.path.basename(netns), "-br", "link"], stdout=subprocess.PIPE,
                               check=True).stdout.decode()
        assert "tap0" in links
        wait_for(lambda: subprocess.run(["ping", "-c1", "-W1", ip], stdout=subprocess.DEVNULL).returncode == 0,
                 30, "the guest to answer ping at " + ip)
        pod.ctl("shutdown", 5000)
        wait_for(lambda: not pid_alive(pod.shim_pid), 30, "shim exit")
        links = subprocess.run(["ip", "-n", os.path.basename(netns), "-br", "link"], stdout=subprocess.PIPE,
                               check=True).stdout.decode()
        assert "tap0" not in links
    finally:
        pod.stop()


def test_hung_guest_is_notready(tmp_path):
    """A VM that stops answering (here: the fake VM SIGSTOPped) is declared NOTREADY after
    three missed heartbeats, its containers EXITED and the VM killed: never a hang."""
    img = make_ext4(str(tmp_path / "img.ext4"))
    pod = Pod(fake=True, extra=["--heartbeat-ms", "300"])
    try:
        pod.ctl("create", "c", img, str(tmp_path / "c.log"), "--", "/bin/sleep", "100000")
        pod.ctl("start", "c")
        os.kill(pod.vmm_pid, signal.SIGSTOP)
        st = wait_for(lambda: (lambda s: s if s["state"] == "NOTREADY" else None)(pod.status()), 15,
                      "NOTREADY after the guest stopped answering")
        assert "ping" in st["reason"]
        assert st["containers"][0]["state"] == "EXITED"
        wait_for(lambda: not pid_alive(pod.vmm_pid), 10, "the hung VM to be killed")
    finally:
        if pid_alive(pod.vmm_pid):
            os.kill(pod.vmm_pid, signal.SIGKILL)
        pod.stop()


def test_watch_reports_changes(tmp_path):
    """A Watch long-poll parks until the pod's state changes (a container exits) and
    returns the new state with a higher seq; with an old seq it returns at once."""
    img = make_ext4(str(tmp_path / "img.ext4"))
    pod = Pod(fake=True)
    try:
        pod.ctl("create", "c", img, str(tmp_path / "c.log"), "--", "/bin/sh", "-c", "sleep 1; exit 7")
        seq = pod.status()["seq"]
        assert pod.ctl("watch", seq - 1, 5000)["seq"] == seq  # already past: at once
        w = pod.popen_ctl("watch", seq, 60000)
        time.sleep(0.3)
        assert w.poll() is None  # parked: nothing changed yet
        pod.ctl("start", "c")
        out, _ = w.communicate(timeout=30)
        st = __import__("json").loads(out.decode().splitlines()[-1])
        assert st["seq"] > seq
        since = st["seq"]
        # Follow the changes until the exit shows up.
        for _ in range(10):
            if st["containers"][0]["state"] == "EXITED":
                break
            st = pod.ctl("watch", since, 30000)
            since = st["seq"]
        assert st["containers"][0]["state"] == "EXITED"
        assert st["containers"][0]["exit_code"] == 7
        with pytest.raises(CtlError) as e:
            pod.ctl("watch", since, 300)
        assert e.value.code == "DEADLINE_EXCEEDED"
    finally:
        pod.stop()
