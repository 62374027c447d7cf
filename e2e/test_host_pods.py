"""Host pods end to end: pods that share the node's namespaces (hostNetwork, hostPID,
hostIPC) or name the "host" RuntimeClass handler run as ordinary Linux containers through
Debian's runc, supervised by podvisor-shim (--backend host) and podvisor-hostagent.

Real podvisord, real runc, real CNI plugins (a private bridge), a real registry.
"""
import ctypes
import json
import os
import re
import socket
import subprocess
import tempfile
import time

import grpc
import pytest

import conftest
import cri_pb2
from image_util import BUSYBOX, Entry, Image, Registry, free_port, make_tar
from net_util import NetEnv, wait_for

RUNC = "/usr/sbin/runc"
pytestmark = pytest.mark.skipif(not os.path.exists(RUNC), reason="runc is not installed (mk/deps.sh installs it)")

APPLETS = ["sh", "echo", "sleep", "cat", "ls", "id", "hostname", "env", "true", "false", "ip", "nc", "grep",
           "mount", "umount", "mkdir", "ps", "head", "wc", "stat", "touch"]


def image():
    bb = open(BUSYBOX, "rb").read()
    entries = [Entry("bin", kind="dir", mode=0o755), Entry("bin/busybox", bb, mode=0o755)]
    entries += [Entry("bin/" + a, kind="symlink", link="busybox", mode=0o777) for a in APPLETS]
    entries += [Entry("etc", kind="dir", mode=0o755),
                Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
                Entry("etc/group", b"root:x:0:\n"),
                Entry("tmp", kind="dir", mode=0o1777)]
    return Image([make_tar(entries)], config_extra={"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]})


@pytest.fixture(scope="module")
def world():
    reg = Registry()
    reg.push_image("test/hostbox", "1", image())
    net = NetEnv()
    d = conftest.Daemon({"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir}})
    try:
        img = "%s/test/hostbox:1" % reg.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=img)), timeout=300)
        logdir = os.path.join(d.dir, "logs")
        os.makedirs(logdir)
        yield {"daemon": d, "image": img, "net": net, "logdir": logdir, "registry": reg}
    finally:
        d.cleanup()
        net.cleanup()
        reg.stop()


def ns_opts(network=cri_pb2.POD, pid=cri_pb2.CONTAINER, ipc=cri_pb2.POD):
    return cri_pb2.LinuxPodSandboxConfig(security_context=cri_pb2.LinuxSandboxSecurityContext(
        namespace_options=cri_pb2.NamespaceOption(network=network, pid=pid, ipc=ipc)))


def run_pod(w, name, handler="", **kw):
    cfg = cri_pb2.PodSandboxConfig(
        metadata=cri_pb2.PodSandboxMetadata(name=name, namespace="e2e", uid="uid-" + name),
        hostname=name + "-host", log_directory=w["logdir"],
        dns_config=cri_pb2.DNSConfig(servers=["10.0.0.10"], searches=["e2e.svc"]), **kw)
    rt = w["daemon"].runtime
    pod = rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg, runtime_handler=handler),
                           timeout=120).pod_sandbox_id
    return dict(w, pod=pod, pod_cfg=cfg)


def remove_pod(p):
    rt = p["daemon"].runtime
    rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=p["pod"]), timeout=120)
    rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=p["pod"]), timeout=120)


def create(p, name, cmd, start=True, **kw):
    rt = p["daemon"].runtime
    cfg = cri_pb2.ContainerConfig(metadata=cri_pb2.ContainerMetadata(name=name),
                                  image=cri_pb2.ImageSpec(image=p["image"]), command=cmd,
                                  log_path=name + ".log", **kw)
    cid = rt.CreateContainer(cri_pb2.CreateContainerRequest(pod_sandbox_id=p["pod"], config=cfg,
                                                            sandbox_config=p["pod_cfg"]), timeout=60).container_id
    if start:
        rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=60)
    return cid


def status(p, cid):
    return p["daemon"].runtime.ContainerStatus(cri_pb2.ContainerStatusRequest(container_id=cid), timeout=30).status


def pod_status(p):
    return p["daemon"].runtime.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=p["pod"],
                                                                                verbose=True), timeout=30)


def exec_sync(p, cid, cmd, timeout=30):
    return p["daemon"].runtime.ExecSync(cri_pb2.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout),
                                        timeout=timeout + 30)


def wait_exited(p, cid, timeout=30):
    return wait_for(lambda: (lambda s: s if s.state == cri_pb2.CONTAINER_EXITED else None)(status(p, cid)),
                    timeout=timeout, what="container %s to exit" % cid)


def log_lines(p, name):
    with open(os.path.join(p["logdir"], name + ".log"), "rb") as f:
        return [l.split(b" ", 3) for l in f.read().splitlines()]


def pod_dir(p):
    """The pod's state dir (bundles, runc state) and disk dir (container layers)."""
    return [os.path.join(p["daemon"].state, "pods", p["pod"]), os.path.join(p["daemon"].root, "disks", p["pod"])]


def leftovers(pod_id, pod_dirs, image_ext4=None):
    """Everything of a host pod that could outlive it, as the node sees it."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if pod_id in fields[4] or (fields[fields.index("-") + 1] == "overlay" and pod_id in line):
                found.append("mount " + fields[4])
    for dev in os.listdir("/sys/block"):
        bf = "/sys/block/%s/loop/backing_file" % dev
        if os.path.exists(bf) and image_ext4 and open(bf).read().strip() == image_ext4:
            found.append("loop device %s on %s" % (dev, image_ext4))
    for d in pod_dirs:
        if os.path.exists(d):
            found.append("directory " + d)
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(root) == pod_id:
            found.append("cgroup " + root)
        if root.count("/") >= 6:  # /sys/fs/cgroup/<controller>/podvisor/<pod id> is as deep as it goes
            dirs[:] = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open("/proc/%s/cmdline" % pid, "rb").read()
            except OSError:
                continue
            if pod_id.encode() in cmd:
                found.append("process %s: %r" % (pid, cmd[:120]))
    return found


def image_ext4(w):
    st = w["daemon"].image.ImageStatus(cri_pb2.ImageStatusRequest(image=cri_pb2.ImageSpec(image=w["image"]),
                                                                  verbose=True), timeout=30)
    info = json.loads(st.info.get("info", "{}"))
    return info.get("ext4") or info.get("ext4Path")


# ---- the handlers -------------------------------------------------------------------------


def test_status_lists_the_handlers(world):
    st = world["daemon"].runtime.Status(cri_pb2.StatusRequest(verbose=True), timeout=30)
    names = [h.name for h in st.runtime_handlers]
    assert names[0] == "" and "podvisor" in names and "host" in names, names
    info = {h["name"]: h for h in json.loads(st.info["info"])["runtime_handlers"]}
    assert info["host"]["backend"] == "host" and info["host"]["available"], info["host"]
    assert info["podvisor"]["backend"] == "vm"


def test_unknown_handler_is_not_found(world):
    with pytest.raises(grpc.RpcError) as e:
        run_pod(world, "nohandler", handler="kata-fc")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert '"kata-fc"' in e.value.details()
    pods = world["daemon"].runtime.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items
    assert not [p for p in pods if p.metadata.name == "nohandler"]


# ---- the node's namespaces ------------------------------------------------------------------


def test_host_network_server_reachable_on_node_address(world):
    p = run_pod(world, "hostnet", linux=ns_opts(network=cri_pb2.NODE))
    try:
        st = pod_status(p)
        assert st.status.linux.namespaces.options.network == cri_pb2.NODE
        assert st.status.network.ip == ""  # the node's addresses: kubelet reports them
        assert json.loads(st.info["info"])["backend"] == "host"
        port = free_port()
        create(p, "srv", ["/bin/sh", "-c", "while true; do echo from-host-net | nc -l -p %d; done" % port])
        # The node's own address, not a pod IP: a server in the pod listens on the node.
        addrs = ["127.0.0.1"] + [a for a in subprocess.run(["hostname", "-I"], capture_output=True,
                                                           text=True).stdout.split() if "." in a][:1]
        for addr in addrs:
            def answer():
                try:
                    with socket.create_connection((addr, port), timeout=2) as s:
                        return s.recv(100)
                except OSError:
                    return None
            assert wait_for(answer, timeout=20, what="server on %s:%d" % (addr, port)).strip() == b"from-host-net"
        # The node's hostname too (Kubernetes: UTS goes with the network).
        cid = create(p, "uts", ["/bin/sleep", "1000"])
        r = exec_sync(p, cid, ["/bin/hostname"])
        assert r.stdout.strip().decode() == socket.gethostname()
    finally:
        remove_pod(p)


def test_host_pid_sees_host_processes(world):
    marker = subprocess.Popen(["/bin/sleep", "4242.5"])
    p = run_pod(world, "hostpid", linux=ns_opts(pid=cri_pb2.NODE))
    try:
        assert pod_status(p).status.linux.namespaces.options.pid == cri_pb2.NODE
        # The container says hostPID too, as kubelet (and critest) send it.
        cid = create(p, "ps", ["/bin/sleep", "1000"], linux=cri_pb2.LinuxContainerConfig(
            security_context=cri_pb2.LinuxContainerSecurityContext(
                namespace_options=cri_pb2.NamespaceOption(network=cri_pb2.POD, pid=cri_pb2.NODE))))
        r = exec_sync(p, cid, ["/bin/cat", "/proc/%d/cmdline" % marker.pid])
        assert r.exit_code == 0 and b"4242.5" in r.stdout, r
        # ... and its own processes have the node's pids.
        pid = int(exec_sync(p, cid, ["/bin/sh", "-c", "echo $$"]).stdout)
        assert pid > 1
    finally:
        remove_pod(p)
        marker.kill()
        marker.wait()
    # A pod without hostPID has a PID namespace of its own.
    q = run_pod(world, "ownpid", handler="host")
    try:
        assert pod_status(q).status.linux.namespaces.options.pid == cri_pb2.CONTAINER
        cid = create(q, "ps", ["/bin/sleep", "1000"])
        r = exec_sync(q, cid, ["/bin/sh", "-c", "cat /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'"])
        assert r.stdout.startswith(b"/bin/sleep"), r
    finally:
        remove_pod(q)
    # pid POD: one PID namespace for the pod, whose PID 1 is the pod's holder, not an agent.
    q = run_pod(world, "podpid", handler="host", linux=ns_opts(pid=cri_pb2.POD))
    try:
        assert pod_status(q).status.linux.namespaces.options.pid == cri_pb2.POD
        a = create(q, "a", ["/bin/sleep", "1001"])
        create(q, "b", ["/bin/sleep", "1002"])
        r = exec_sync(q, a, ["/bin/sh", "-c", "cat /proc/1/cmdline; echo; cat /proc/[0-9]*/cmdline"])
        assert r.stdout.startswith(b"pv-pod-holder\0"), r
        assert b"1001" in r.stdout and b"1002" in r.stdout, r
    finally:
        remove_pod(q)


libc = ctypes.CDLL(None, use_errno=True)


def test_host_ipc_shares_the_nodes_ipc_namespace(world):
    key = 0x5EC0000 + (os.getpid() & 0xFFFF)
    shmid = libc.shmget(key, 4096, 0o1600)  # IPC_CREAT | 0600
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    try:
        p = run_pod(world, "hostipc", linux=ns_opts(ipc=cri_pb2.NODE))
        try:
            assert pod_status(p).status.linux.namespaces.options.ipc == cri_pb2.NODE
            cid = create(p, "ipc", ["/bin/sleep", "1000"])
            r = exec_sync(p, cid, ["/bin/cat", "/proc/sysvipc/shm"])
            assert str(key).encode() in r.stdout, r.stdout
        finally:
            remove_pod(p)
        # Without hostIPC the segment is not there.
        q = run_pod(world, "ownipc", handler="host")
        try:
            assert pod_status(q).status.linux.namespaces.options.ipc == cri_pb2.POD
            cid = create(q, "ipc", ["/bin/sleep", "1000"])
            r = exec_sync(q, cid, ["/bin/cat", "/proc/sysvipc/shm"])
            assert str(key).encode() not in r.stdout, r.stdout
        finally:
            remove_pod(q)
    finally:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


def test_pod_network_host_pod_gets_a_cni_ip(world):
    p = run_pod(world, "cnihost", handler="host")
    try:
        st = pod_status(p).status
        assert st.network.ip and st.network.ip.startswith(world["net"].subnet.rsplit(".", 2)[0]), st.network
        assert st.linux.namespaces.options.network == cri_pb2.POD
        port = free_port()
        cid = create(p, "srv", ["/bin/sh", "-c", "while true; do echo from-pod-net | nc -l -p %d; done" % port])
        r = exec_sync(p, cid, ["/bin/ip", "-4", "addr"])
        assert st.network.ip.encode() in r.stdout, r.stdout
        # Reached at the pod's IP from the node (over the CNI bridge), not on the node's address.
        def answer():
            try:
                with socket.create_connection((st.network.ip, port), timeout=2) as s:
                    return s.recv(100)
            except OSError:
                return None
        assert wait_for(answer, timeout=20, what="pod server").strip() == b"from-pod-net"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        # The pod's hostname, in a UTS namespace of its own.
        assert exec_sync(p, cid, ["/bin/hostname"]).stdout.strip() == b"cnihost-host"
        assert b"nameserver 10.0.0.10" in exec_sync(p, cid, ["/bin/cat", "/etc/resolv.conf"]).stdout
    finally:
        remove_pod(p)


# ---- containers ------------------------------------------------------------------------------


def test_exec_logs_stop_and_exit_codes(world):
    p = run_pod(world, "lifecycle", linux=ns_opts(network=cri_pb2.NODE))
    try:
        cid = create(p, "exits", ["/bin/sh", "-c", "echo out-line; echo err-line >&2; exit 3"])
        st = wait_exited(p, cid)
        assert st.exit_code == 3 and st.reason == "Error", st
        lines = log_lines(p, "exits")
        assert [l[1] for l in lines] == [b"stdout", b"stderr"] or sorted(l[1] for l in lines) == [b"stderr", b"stdout"]
        assert {l[3] for l in lines} == {b"out-line", b"err-line"}
        ok = create(p, "ok", ["/bin/true"])
        assert wait_exited(p, ok).exit_code == 0
        # ExecSync: output, exit code, a timeout.
        long = create(p, "long", ["/bin/sleep", "1000"])
        r = exec_sync(p, long, ["/bin/sh", "-c", "echo x-out; echo x-err >&2; exit 7"])
        assert (r.stdout, r.stderr, r.exit_code) == (b"x-out\n", b"x-err\n", 7)
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            exec_sync(p, long, ["/bin/sleep", "100"], timeout=2)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - t0 < 20
        # Stop: the container's init dies of SIGTERM (143), or of the SIGKILL that follows (137).
        rt = p["daemon"].runtime
        rt.StopContainer(cri_pb2.StopContainerRequest(container_id=long, timeout=10), timeout=60)
        st = status(p, long)
        assert st.state == cri_pb2.CONTAINER_EXITED and st.exit_code in (137, 143), st
        # One that ignores SIGTERM is killed after the timeout.
        stubborn = create(p, "stubborn", ["/bin/sh", "-c", "trap '' TERM; while true; do sleep 1; done"])
        time.sleep(0.5)
        t0 = time.monotonic()
        rt.StopContainer(cri_pb2.StopContainerRequest(container_id=stubborn, timeout=2), timeout=60)
        assert status(p, stubborn).exit_code == 137 and time.monotonic() - t0 < 20
        # A terminal container's output reaches its log.
        tty = create(p, "tty", ["/bin/sh", "-c", "echo on-a-tty; [ -t 1 ] && echo is-a-tty"], tty=True)
        wait_exited(p, tty)
        assert b"is-a-tty" in b"".join(l[3] for l in log_lines(p, "tty") if len(l) > 3)
        rt.RemoveContainer(cri_pb2.RemoveContainerRequest(container_id=cid), timeout=60)
        with pytest.raises(grpc.RpcError) as e:
            status(p, cid)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        remove_pod(p)


def test_seccomp_and_masked_paths_reach_runc(world, tmp_path):
    """The security context podvisord resolves (a Localhost seccomp profile, the masked
    paths) is what runc applies in a host pod, as in a pod VM's agent."""
    prof = tmp_path / "no-mkdir.json"
    prof.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"],'
                    ' "action": "SCMP_ACT_ERRNO"}]}')
    p = run_pod(world, "secctx", linux=ns_opts(network=cri_pb2.NODE))
    try:
        sc = cri_pb2.LinuxContainerSecurityContext(
            seccomp=cri_pb2.SecurityProfile(profile_type=cri_pb2.SecurityProfile.Localhost, localhost_ref=str(prof)),
            masked_paths=["/etc/group"])
        cid = create(p, "confined", ["/bin/sleep", "1000"], linux=cri_pb2.LinuxContainerConfig(security_context=sc))
        r = exec_sync(p, cid, ["/bin/mkdir", "/tmp/denied"])
        assert r.exit_code != 0 and b"Operation not permitted" in r.stderr, r
        assert exec_sync(p, cid, ["/bin/cat", "/etc/group"]).stdout == b""
        # Without them: mkdir works and the file reads as the image has it.
        free = create(p, "free", ["/bin/sleep", "1000"])
        assert exec_sync(p, free, ["/bin/mkdir", "/tmp/allowed"]).exit_code == 0
        assert exec_sync(p, free, ["/bin/cat", "/etc/group"]).stdout == b"root:x:0:\n"
    finally:
        remove_pod(p)


def test_writable_layer_and_stats(world):
    p = run_pod(world, "layer", handler="host")
    try:
        cid = create(p, "w", ["/bin/sh", "-c", "head -c 300000 /dev/zero > /tmp/blob; sleep 1000"])
        wait_for(lambda: exec_sync(p, cid, ["/bin/stat", "-c", "%s", "/tmp/blob"]).stdout.strip() == b"300000",
                 what="the blob")
        rt = p["daemon"].runtime
        s = rt.ContainerStats(cri_pb2.ContainerStatsRequest(container_id=cid), timeout=30).stats
        assert s.writable_layer.used_bytes.value >= 300000, s
        assert s.memory.working_set_bytes.value > 0 and s.cpu.usage_core_nano_seconds.value > 0, s
        # The image itself is read-only underneath: another container does not see the blob.
        other = create(p, "r", ["/bin/sleep", "1000"])
        assert exec_sync(p, other, ["/bin/ls", "/tmp/blob"]).exit_code != 0
    finally:
        remove_pod(p)


def test_bidirectional_mount_propagates_to_the_node(world):
    """rshared (Bidirectional): a mount made in a host pod's container appears on the node."""
    base = tempfile.mkdtemp(prefix="pvbidi", dir="/tmp")
    subprocess.run(["mount", "-t", "tmpfs", "bidi", base], check=True)
    subprocess.run(["mount", "--make-rshared", base], check=True)
    lx = ns_opts(network=cri_pb2.NODE)
    lx.security_context.privileged = True  # a privileged container needs a privileged pod
    p = run_pod(world, "bidi", linux=lx)
    try:
        mounts = [cri_pb2.Mount(container_path="/vol", host_path=base,
                                propagation=cri_pb2.PROPAGATION_BIDIRECTIONAL)]
        cid = create(p, "m", ["/bin/sleep", "1000"], mounts=mounts,
                     linux=cri_pb2.LinuxContainerConfig(security_context=cri_pb2.LinuxContainerSecurityContext(
                         privileged=True)))
        r = exec_sync(p, cid, ["/bin/sh", "-c", "mkdir -p /vol/sub && mount -t tmpfs inpod /vol/sub && "
                                                "echo hi > /vol/sub/f"])
        assert r.exit_code == 0, r
        wait_for(lambda: os.path.exists(os.path.join(base, "sub", "f")), what="the pod's mount on the node")
        assert open(os.path.join(base, "sub", "f")).read() == "hi\n"
    finally:
        remove_pod(p)
        subprocess.run(["umount", "-R", "-l", base], check=False)
        os.rmdir(base)


def test_vm_pods_still_refuse_bidirectional(world):
    # A pod VM's mounts cannot reach the node: its container create is refused, clearly.
    p = run_pod(world, "vmbidi")
    try:
        assert json.loads(pod_status(p).info["info"])["backend"] == "vm"
        with pytest.raises(grpc.RpcError) as e:
            create(p, "m", ["/bin/true"], start=False, mounts=[cri_pb2.Mount(
                container_path="/vol", host_path="/tmp", propagation=cri_pb2.PROPAGATION_BIDIRECTIONAL)])
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "rshared" in e.value.details()
    finally:
        remove_pod(p)


# ---- restart survival, clean removal ---------------------------------------------------------------


def test_survives_podvisord_kill_and_leaves_nothing_when_removed(world):
    d = world["daemon"]
    p = run_pod(world, "survivor", handler="host")
    pod = p["pod"]
    state = pod_dir(p)
    netns = pod_status(p).status  # noqa: F841 (the pod is READY before the kill)
    cid = create(p, "c", ["/bin/sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"])
    shim_pid = json.loads(pod_status(p).info["info"])["shimPid"]
    d.kill_and_restart()
    try:
        st = status(p, cid)
        assert st.state == cri_pb2.CONTAINER_RUNNING, st
        assert json.loads(pod_status(p).info["info"])["shimPid"] == shim_pid
        assert exec_sync(p, cid, ["/bin/echo", "still-here"]).stdout == b"still-here\n"
        n = len(log_lines(p, "c"))
        wait_for(lambda: len(log_lines(p, "c")) > n + 2, what="the log to grow after the restart")
        netns_files = set(os.listdir(world["net"].netns_dir))
        assert netns_files, "the pod's netns is there while it runs"
        # The checks below see what they look for while the pod runs (so their silence after
        # removal means something): its layer's mounts, the loop device on the image.
        ext4 = image_ext4(world)
        assert ext4 and os.path.exists(ext4), ext4
        running = leftovers(pod, state, ext4)
        assert [l for l in running if l.startswith("loop device")], running
        assert [l for l in running if l.startswith("mount")], running
    finally:
        remove_pod(p)
    assert leftovers(pod, state, image_ext4(world)) == []
    assert os.listdir(world["net"].netns_dir) == [], "the pod's netns is gone"


def test_stop_then_remove_cleans_every_kind_of_pod(world):
    for name, kw in [("cl-hostnet", {"linux": ns_opts(network=cri_pb2.NODE, pid=cri_pb2.NODE, ipc=cri_pb2.NODE)}),
                     ("cl-podnet", {"handler": "host", "linux": ns_opts(pid=cri_pb2.POD)})]:
        p = run_pod(world, name, **kw)
        pod, state = p["pod"], pod_dir(p)
        create(p, "a", ["/bin/sleep", "1000"])
        create(p, "b", ["/bin/sh", "-c", "exit 0"])
        create(p, "never-started", ["/bin/true"], start=False)
        rt = p["daemon"].runtime
        rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        assert pod_status(p).status.state == cri_pb2.SANDBOX_NOTREADY
        # Stopped: no container process, no mount is left; the record stays until removal.
        assert [l for l in leftovers(pod, []) if not l.startswith("cgroup")] == [], name
        rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        assert leftovers(pod, state, image_ext4(world)) == [], name


# ---- policy ---------------------------------------------------------------------------------------


def test_refuse_policy(world):
    d = conftest.Daemon({"runtime": {"host_namespace_pods": "refuse"},
                         "network": {"cni_conf_dir": world["net"].conf_dir, "netns_dir": world["net"].netns_dir}})
    try:
        w = dict(world, daemon=d)
        with pytest.raises(grpc.RpcError) as e:
            run_pod(w, "refused", linux=ns_opts(network=cri_pb2.NODE))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "hostNetwork" in e.value.details() and "host_namespace_pods" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            run_pod(w, "refused-handler", handler="host")
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and '"host"' in e.value.details()
        st = d.runtime.Status(cri_pb2.StatusRequest(), timeout=30)
        names = [h.name for h in st.runtime_handlers]
        assert "host" not in names and names[0] == "" and "podvisor" in names, names
        assert not d.runtime.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items
    finally:
        d.cleanup()


def test_host_pod_is_logged_at_info(world):
    p = run_pod(world, "logged", linux=ns_opts(ipc=cri_pb2.NODE))
    try:
        line = [l for l in world["daemon"].logs().splitlines() if "a host pod" in l and p["pod"] in l]
        assert line and "level=info" in line[0] and "ipc=node" in line[0], line
    finally:
        remove_pod(p)


def test_shim_killed_leaves_nothing_after_removal(world):
    """kill -9 of a host pod's shim: its agent deletes the containers (parent-death signal),
    the pod goes NOTREADY, and stop + remove still leave nothing on the node."""
    p = run_pod(world, "shimkill", handler="host")
    pod, state = p["pod"], pod_dir(p)
    cid = create(p, "c", ["/bin/sleep", "1000"])
    info = json.loads(pod_status(p).info["info"])
    os.kill(info["shimPid"], 9)
    wait_for(lambda: status(p, cid).state == cri_pb2.CONTAINER_EXITED, timeout=30, what="the container recorded gone")
    assert status(p, cid).reason == "ShimExited"
    # The agent took its containers (and their cgroups) with it; the layers stay mounted
    # until podvisord stops the pod.
    wait_for(lambda: not [l for l in leftovers(pod, []) if l.startswith(("process", "cgroup"))],
             timeout=30, what="the pod's processes and cgroups to go")
    remove_pod(p)
    assert leftovers(pod, state, image_ext4(world)) == []


def test_bad_command_fails_clearly_and_leaves_no_layer(world):
    p = run_pod(world, "badcmd", handler="host")
    try:
        with pytest.raises(grpc.RpcError) as e:
            create(p, "nope", ["/bin/no-such-program"])
        assert "no-such-program" in e.value.details(), e.value.details()
        # Nothing of it is left in the pod: no record, no layer (mounted or not), no runc state.
        ctrs = p["daemon"].runtime.ListContainers(cri_pb2.ListContainersRequest(), timeout=30).containers
        assert not [c for c in ctrs if c.metadata.name == "nope"]
        state, disks = pod_dir(p)
        wait_for(lambda: not os.path.exists(disks) or os.listdir(disks) == [], what="the layer to go")
        assert p["pod"] + "/" not in open("/proc/self/mountinfo").read().replace(p["pod"] + " ", "")
        assert os.listdir(os.path.join(state, "runc")) == []
        assert os.listdir(os.path.join(state, "bundles")) == []
        # The pod is fine: a good container still runs in it.
        cid = create(p, "good", ["/bin/sleep", "1000"])
        assert status(p, cid).state == cri_pb2.CONTAINER_RUNNING
    finally:
        remove_pod(p)


def test_missing_oci_runtime_is_a_clear_error(world):
    d = conftest.Daemon({"runtime": {"oci_runtime": "/nonexistent/runc"},
                         "network": {"cni_conf_dir": world["net"].conf_dir, "netns_dir": world["net"].netns_dir}})
    try:
        w = dict(world, daemon=d)
        with pytest.raises(grpc.RpcError) as e:
            run_pod(w, "noruntime", linux=ns_opts(network=cri_pb2.NODE))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "/nonexistent/runc" in e.value.details() and "runtime.oci_runtime" in e.value.details()
        names = [h.name for h in d.runtime.Status(cri_pb2.StatusRequest(), timeout=30).runtime_handlers]
        assert "host" not in names
        assert not d.runtime.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items
    finally:
        d.cleanup()


def test_host_agent_killed_leaves_nothing_after_removal(world):
    """kill -9 of a host pod's agent: its containers are recorded gone (VMExited) and stopping
    the pod still deletes them (the runtime's state), their cgroups and layers."""
    p = run_pod(world, "agentkill", handler="host")
    pod, dirs = p["pod"], pod_dir(p)
    cid = create(p, "c", ["/bin/sleep", "1000"])
    os.kill(json.loads(pod_status(p).info["info"])["vmmPid"], 9)
    wait_for(lambda: status(p, cid).state == cri_pb2.CONTAINER_EXITED, timeout=30, what="the container recorded gone")
    assert status(p, cid).reason == "VMExited"
    # The container itself outlived its agent (its cgroup still holds it) until the pod stops.
    assert [l for l in leftovers(pod, []) if l.startswith("cgroup")]
    remove_pod(p)
    assert leftovers(pod, dirs, image_ext4(world)) == []


SPDYCLIENT = os.path.join(conftest.BUILD, "bin", "pv-spdyclient")


@pytest.mark.skipif(not os.path.exists(SPDYCLIENT), reason="pv-spdyclient is not built (Debian's golang)")
def test_port_forward_and_exec_stream_into_host_pods(world):
    """PortForward reaches a server on the pod's localhost: the pod's own network namespace for a
    CNI host pod (not the node's), the node's for hostNetwork; Exec streams too."""
    for name, kw in [("pf-cni", {"handler": "host"}), ("pf-hostnet", {"linux": ns_opts(network=cri_pb2.NODE)})]:
        p = run_pod(world, name, **kw)
        try:
            port = free_port()
            cid = create(p, "srv", ["/bin/sh", "-c",
                                    "while true; do echo hello-%s | nc -l -p %d; done" % (name, port)])
            rt = p["daemon"].runtime
            def forward():
                url = rt.PortForward(cri_pb2.PortForwardRequest(pod_sandbox_id=p["pod"], port=[port]), timeout=30).url
                r = subprocess.run([SPDYCLIENT, "portforward", url, "-port", str(port), "-payload", "x\n"],
                                   capture_output=True, timeout=60)
                out = [json.loads(l) for l in r.stdout.splitlines()]
                return out and ("hello-" + name) in out[0].get("data", "") and out
            assert wait_for(forward, timeout=30, interval=0.5, what="the forward of " + name)
            url = rt.Exec(cri_pb2.ExecRequest(container_id=cid, cmd=["/bin/hostname"], stdout=True,
                                              stderr=True), timeout=30).url
            r = subprocess.run([SPDYCLIENT, "exec", url], capture_output=True, timeout=60)
            want = socket.gethostname() if name == "pf-hostnet" else name + "-host"
            assert r.stdout.strip().decode() == want, r
        finally:
            remove_pod(p)
