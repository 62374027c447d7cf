"""Pods and containers end to end: real podvisord, real shims, real VMs (TCG), real registry.

One pod VM is shared by most tests of this module (a VM boot under emulation costs
seconds); tests that need a pod of their own make one and remove it.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import grpc
import pytest

import cri_pb2
from image_util import BUSYBOX, Entry, Image, Registry, make_tar
from net_util import NetEnv

LOG_LINE = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d)) (stdout|stderr) ([PF]) (.*)$")
APPLETS = ["sh", "echo", "sleep", "cat", "ls", "id", "hostname", "env", "dd", "head", "true", "false", "ip",
           "ping", "nc", "grep", "wget", "httpd", "["]


def busybox_image():
    bb = open(BUSYBOX, "rb").read()
    entries = [Entry("bin", kind="dir", mode=0o755), Entry("bin/busybox", bb, mode=0o755)]
    entries += [Entry("bin/" + a, kind="symlink", link="busybox", mode=0o777) for a in APPLETS]
    entries += [Entry("etc", kind="dir", mode=0o755),
                Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"),
                Entry("etc/group", b"root:x:0:\napp:x:1000:\nextra:x:2000:app\n"),
                Entry("tmp", kind="dir", mode=0o1777)]
    return Image([make_tar(entries)], config_extra={"Env": ["PATH=/bin", "FROM_IMAGE=yes"],
                                                    "Cmd": ["/bin/sh"], "WorkingDir": "/"})


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    reg.push_image("test/busybox", "1", busybox_image())
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def net():
    """A private CNI network (bridge, subnet, IPAM dir) for this module's pods."""
    n = NetEnv()
    yield n
    n.cleanup()


def daemon_config(net):
    return {"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir}}


@pytest.fixture(scope="module")
def env(registry, net):
    """podvisord + the busybox image pulled + one pod VM, for the whole module."""
    import conftest
    d = conftest.Daemon(daemon_config(net))
    try:
        image = "%s/test/busybox:1" % registry.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
        logdir = os.path.join(d.dir, "logs")
        os.makedirs(logdir)
        pod_cfg = pod_config("shared", logdir)
        pod_id = d.runtime.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=pod_cfg), timeout=300).pod_sandbox_id
        yield {"daemon": d, "image": image, "pod": pod_id, "pod_cfg": pod_cfg, "logdir": logdir, "net": net}
        try:
            d.runtime.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
            d.runtime.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        except grpc.RpcError:
            pass
    finally:
        d.cleanup()


def pod_config(name, logdir, **kw):
    return cri_pb2.PodSandboxConfig(
        metadata=cri_pb2.PodSandboxMetadata(name=name, namespace="e2e", uid="uid-" + name, attempt=0),
        hostname=name + "-host", log_directory=logdir, labels={"suite": "pods", "name": name},
        annotations={"note": "e2e"},
        dns_config=cri_pb2.DNSConfig(servers=["10.0.0.10"], searches=["e2e.svc"], options=["ndots:2"]), **kw)


def ctr_config(image, name, cmd, log=None, attempt=0, **kw):
    return cri_pb2.ContainerConfig(
        metadata=cri_pb2.ContainerMetadata(name=name, attempt=attempt),
        image=cri_pb2.ImageSpec(image=image), command=cmd, log_path=log or (name + ".log"),
        labels={"ctr": name}, **kw)


def create_start(env, name, cmd, **kw):
    rt = env["daemon"].runtime
    cfg = ctr_config(env["image"], name, cmd, **kw)
    cid = rt.CreateContainer(cri_pb2.CreateContainerRequest(
        pod_sandbox_id=env["pod"], config=cfg, sandbox_config=env["pod_cfg"]), timeout=120).container_id
    rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)
    return cid


def status(env, cid):
    return env["daemon"].runtime.ContainerStatus(cri_pb2.ContainerStatusRequest(container_id=cid),
                                                 timeout=30).status


def wait_state(env, cid, state, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(env, cid)
        if st.state == state:
            return st
        time.sleep(0.2)
    raise AssertionError("container %s not in state %s: %s" % (cid, state, st))


def log_records(path):
    recs = []
    with open(path, "rb") as f:
        for line in f.read().splitlines():
            m = LOG_LINE.match(line)
            assert m, "not a CRI log line: %r" % line
            recs.append((m.group(3).decode(), m.group(4).decode(), m.group(5)))
    return recs


def wait_gone(pid, timeout=30):
    """True once pid no longer exists (a zombie counts as gone: nothing runs in it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def exec_sync(env, cid, cmd, timeout=30):
    return env["daemon"].runtime.ExecSync(cri_pb2.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout),
                                          timeout=timeout + 60)


def test_pod_status_and_list(env):
    rt = env["daemon"].runtime
    st = rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=env["pod"], verbose=True),
                             timeout=30)
    assert st.status.id == env["pod"]
    assert st.status.state == cri_pb2.SANDBOX_READY
    assert st.status.metadata.name == "shared"
    assert st.status.labels["suite"] == "pods"
    assert st.status.annotations["note"] == "e2e"
    assert st.status.created_at > 0
    info = json.loads(st.info["info"])
    assert info["vmState"] == "READY"
    assert info["accel"] in ("tcg", "kvm")
    # The VM really runs: its QEMU process is alive.
    os.kill(info["vmmPid"], 0)
    items = rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items
    assert env["pod"] in [p.id for p in items]
    sel = cri_pb2.PodSandboxFilter(label_selector={"name": "shared"})
    assert [p.id for p in rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(filter=sel), timeout=30).items] == [env["pod"]]
    sel = cri_pb2.PodSandboxFilter(label_selector={"name": "other"})
    assert not rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(filter=sel), timeout=30).items
    # A unique id prefix works as crictl users expect.
    st = rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=env["pod"][:12]), timeout=30)
    assert st.status.id == env["pod"]


def test_pod_ip_is_the_guests(env):
    """The pod IP from CNI is on the guest's eth0, and the host reaches it over the bridge."""
    rt = env["daemon"].runtime
    st = rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=env["pod"]), timeout=30).status
    ip = st.network.ip
    assert ip.startswith("10.231.%d." % env["net"].third), ip
    cid = create_start(env, "netcheck", ["/bin/sleep", "100000"])
    r = exec_sync(env, cid, ["/bin/ip", "-4", "addr", "show", "eth0"])
    assert r.exit_code == 0, r.stderr
    assert ("inet %s/24" % ip).encode() in r.stdout
    ping = subprocess.run(["ping", "-c", "1", "-W", "10", ip], capture_output=True, timeout=60)
    assert ping.returncode == 0, ping.stdout
    rt.RemoveContainer(cri_pb2.RemoveContainerRequest(container_id=cid), timeout=60)


def test_container_exit_code_and_logs(env):
    cid = create_start(env, "oneshot", ["/bin/sh", "-c", "echo hello; echo oops >&2; printf part; exit 3"])
    st = wait_state(env, cid, cri_pb2.CONTAINER_EXITED)
    assert st.exit_code == 3
    assert st.reason == "Error"
    assert st.started_at > 0 and st.finished_at >= st.started_at
    assert st.image.image == env["image"]
    assert st.image_id.startswith("sha256:")
    assert st.log_path == os.path.join(env["logdir"], "oneshot.log")
    recs = log_records(st.log_path)
    assert ("stdout", "F", b"hello") in recs
    assert ("stderr", "F", b"oops") in recs
    # A last line without a newline is written whole at EOF, as containerd does.
    assert ("stdout", "F", b"part") in recs


def test_completed_reason(env):
    cid = create_start(env, "ok", ["/bin/true"])
    st = wait_state(env, cid, cri_pb2.CONTAINER_EXITED)
    assert st.exit_code == 0
    assert st.reason == "Completed"


def test_env_user_and_hostname(env):
    cid = create_start(env, "envcheck", ["/bin/sh", "-c", "id -u; id -G; hostname; echo $FROM_IMAGE $MINE"],
                       envs=[cri_pb2.KeyValue(key="MINE", value="set")],
                       linux=cri_pb2.LinuxContainerConfig(security_context=cri_pb2.LinuxContainerSecurityContext(
                           run_as_username="app")))
    st = wait_state(env, cid, cri_pb2.CONTAINER_EXITED)
    assert st.exit_code == 0, log_records(st.log_path)
    out = [r[2] for r in log_records(st.log_path) if r[0] == "stdout"]
    assert out[0] == b"1000"
    assert b"2000" in out[1].split()
    assert out[2] == b"shared-host"
    assert out[3] == b"yes set"


def test_sidecar_exec_sync(env):
    cid = create_start(env, "sidecar", ["/bin/sleep", "100000"])
    assert status(env, cid).state == cri_pb2.CONTAINER_RUNNING
    r = exec_sync(env, cid, ["/bin/sh", "-c", "echo out; echo err >&2; exit 7"])
    assert r.stdout == b"out\n"
    assert r.stderr == b"err\n"
    assert r.exit_code == 7
    r = exec_sync(env, cid, ["/bin/cat", "/etc/resolv.conf"])
    assert b"nameserver 10.0.0.10" in r.stdout
    assert b"search e2e.svc" in r.stdout
    with pytest.raises(grpc.RpcError) as e:
        exec_sync(env, cid, ["/bin/sleep", "30"], timeout=1)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Still running afterwards.
    assert status(env, cid).state == cri_pb2.CONTAINER_RUNNING
    listed = env["daemon"].runtime.ListContainers(cri_pb2.ListContainersRequest(filter=cri_pb2.ContainerFilter(
        state=cri_pb2.ContainerStateValue(state=cri_pb2.CONTAINER_RUNNING))), timeout=30).containers
    assert cid in [c.id for c in listed]


def test_stop_with_timeout_kills_ignoring_process(env):
    cid = create_start(env, "stubborn", ["/bin/sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(status(env, cid).log_path) and log_records(status(env, cid).log_path):
            break
        time.sleep(0.2)
    t0 = time.monotonic()
    env["daemon"].runtime.StopContainer(cri_pb2.StopContainerRequest(container_id=cid, timeout=3), timeout=120)
    took = time.monotonic() - t0
    st = status(env, cid)
    assert st.state == cri_pb2.CONTAINER_EXITED
    assert st.exit_code == 137
    assert took >= 2.5, "StopContainer returned before its timeout: %.1fs" % took
    # Stopping again is fine.
    env["daemon"].runtime.StopContainer(cri_pb2.StopContainerRequest(container_id=cid, timeout=3), timeout=60)


def test_stop_graceful(env):
    cid = create_start(env, "graceful", ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"])
    time.sleep(1)
    t0 = time.monotonic()
    env["daemon"].runtime.StopContainer(cri_pb2.StopContainerRequest(container_id=cid, timeout=30), timeout=120)
    assert time.monotonic() - t0 < 25
    st = status(env, cid)
    assert st.state == cri_pb2.CONTAINER_EXITED
    assert st.exit_code == 0
    assert st.reason == "Completed"


def test_oom_killed(env):
    res = cri_pb2.LinuxContainerResources(memory_limit_in_bytes=16 << 20)
    cid = create_start(env, "oom", ["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
                       linux=cri_pb2.LinuxContainerConfig(resources=res))
    st = wait_state(env, cid, cri_pb2.CONTAINER_EXITED, timeout=120)
    assert st.reason == "OOMKilled", st
    assert st.exit_code == 137


def test_container_errors(env):
    rt = env["daemon"].runtime
    with pytest.raises(grpc.RpcError) as e:
        rt.CreateContainer(cri_pb2.CreateContainerRequest(
            pod_sandbox_id=env["pod"], config=ctr_config("127.0.0.1:1/none:1", "noimg", ["/bin/true"])), timeout=60)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "pull it first" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        rt.CreateContainer(cri_pb2.CreateContainerRequest(
            pod_sandbox_id="0" * 64, config=ctr_config(env["image"], "x", ["/bin/true"])), timeout=60)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    cfg = ctr_config(env["image"], "dup", ["/bin/true"])
    rt.CreateContainer(cri_pb2.CreateContainerRequest(pod_sandbox_id=env["pod"], config=cfg), timeout=60)
    with pytest.raises(grpc.RpcError) as e:
        rt.CreateContainer(cri_pb2.CreateContainerRequest(pod_sandbox_id=env["pod"], config=cfg), timeout=60)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as e:
        rt.CreateContainer(cri_pb2.CreateContainerRequest(
            pod_sandbox_id=env["pod"], config=ctr_config(env["image"], "nouser", ["/bin/true"],
                                                         linux=cri_pb2.LinuxContainerConfig(
                                                             security_context=cri_pb2.LinuxContainerSecurityContext(
                                                                 run_as_username="ghost")))), timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ghost" in e.value.details()
    for call, req in [(rt.ContainerStatus, cri_pb2.ContainerStatusRequest(container_id="f" * 64)),
                      (rt.StartContainer, cri_pb2.StartContainerRequest(container_id="f" * 64)),
                      (rt.StopContainer, cri_pb2.StopContainerRequest(container_id="f" * 64)),
                      (rt.PodSandboxStatus, cri_pb2.PodSandboxStatusRequest(pod_sandbox_id="f" * 64))]:
        with pytest.raises(grpc.RpcError) as e:
            call(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # Removing what does not exist is not an error.
    rt.RemoveContainer(cri_pb2.RemoveContainerRequest(container_id="f" * 64), timeout=30)
    rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id="f" * 64), timeout=30)


def test_host_network_refused_for_a_vm_handler(env):
    """A pod VM cannot share the node's network: a handler that names a VM architecture is
    refused (the default handler makes it a host pod instead: e2e/test_host_pods.py)."""
    rt = env["daemon"].runtime
    cfg = pod_config("hostnet", env["logdir"], linux=cri_pb2.LinuxPodSandboxConfig(
        security_context=cri_pb2.LinuxSandboxSecurityContext(
            namespace_options=cri_pb2.NamespaceOption(network=cri_pb2.NODE))))
    with pytest.raises(grpc.RpcError) as e:
        rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg, runtime_handler="x86_64"), timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hostNetwork" in e.value.details() and '"host"' in e.value.details()
    assert "hostnet" not in [p.metadata.name for p in rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(),
                                                                         timeout=30).items]


def test_remove_running_container_and_events(env):
    rt = env["daemon"].runtime
    events = []
    stream = rt.GetContainerEvents(cri_pb2.GetEventsRequest(), timeout=300)

    def follow():
        try:
            for ev in stream:
                events.append((ev.container_id, ev.container_event_type))
        except grpc.RpcError:
            pass

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    time.sleep(0.5)
    cid = create_start(env, "removeme", ["/bin/sleep", "100000"])
    rt.RemoveContainer(cri_pb2.RemoveContainerRequest(container_id=cid), timeout=120)
    with pytest.raises(grpc.RpcError) as e:
        status(env, cid)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (cid, cri_pb2.CONTAINER_DELETED_EVENT) not in events:
        time.sleep(0.1)
    stream.cancel()
    mine = [e for c, e in events if c == cid]
    assert mine[0] == cri_pb2.CONTAINER_CREATED_EVENT
    assert cri_pb2.CONTAINER_STARTED_EVENT in mine
    assert mine[-1] == cri_pb2.CONTAINER_DELETED_EVENT


def test_stats(env):
    rt = env["daemon"].runtime
    cid = create_start(env, "statme", ["/bin/sleep", "100000"])
    st = rt.ContainerStats(cri_pb2.ContainerStatsRequest(container_id=cid), timeout=30).stats
    assert st.attributes.id == cid
    assert st.memory.working_set_bytes.value > 0
    assert st.cpu.usage_core_nano_seconds.value > 0
    all_stats = rt.ListContainerStats(cri_pb2.ListContainerStatsRequest(), timeout=30).stats
    assert cid in [s.attributes.id for s in all_stats]
    ps = rt.PodSandboxStats(cri_pb2.PodSandboxStatsRequest(pod_sandbox_id=env["pod"]), timeout=30).stats
    assert ps.attributes.id == env["pod"]
    assert cid in [c.attributes.id for c in ps.linux.containers]


def test_daemon_restart_keeps_pod(env):
    """podvisord dies (kill -9) and comes back: the pod and its containers are still there and answer."""
    import conftest
    d = env["daemon"]
    cid = create_start(env, "survivor", ["/bin/sleep", "100000"])
    d.expect_exit = True
    d.proc.kill()
    d.proc.wait()
    d.channel.close()
    # Same root, state dir and socket: what a restarted podvisord sees.
    args = [conftest.PODVISORD, "--listen", d.socket, "--root", d.root, "--state-dir", d.state,
            "--log-level", "debug", "--config", d.config_path]
    d.log = open(d.log_path, "ab")
    d.proc = subprocess.Popen(args, stdout=d.log, stderr=subprocess.STDOUT)
    d.expect_exit = False
    d._wait_ready()
    d.runtime = conftest.ServiceStub(d.channel, "RuntimeService")
    d.image = conftest.ServiceStub(d.channel, "ImageService")
    st = d.runtime.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=env["pod"]), timeout=30)
    assert st.status.state == cri_pb2.SANDBOX_READY
    assert status(env, cid).state == cri_pb2.CONTAINER_RUNNING
    r = exec_sync(env, cid, ["/bin/echo", "still here"])
    assert r.stdout == b"still here\n"


def pod_state_dir(env, pod=None):
    info = env["daemon"].runtime.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=pod or env["pod"], verbose=True), timeout=30).info["info"]
    return json.loads(info)["stateDir"]


def mounts_under(prefix):
    """Mount points of this mount namespace below prefix (podvisord shares it)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if mp.startswith(prefix.rstrip("/") + "/"):
                out.append(mp)
    return out


@pytest.fixture
def host_dir():
    d = tempfile.mkdtemp(prefix="pv-vol-", dir="/tmp")
    yield d
    # Should podvisord have died mid-test, its bind mounts of d would outlive the run: drop them.
    with open("/proc/self/mountinfo") as f:
        left = [line.split()[4] for line in f if line.split()[3].startswith(d)]
    for mp in reversed(left):
        subprocess.call(["umount", "-l", mp])
    shutil.rmtree(d, ignore_errors=True)


def test_volumes_rw_dir_and_ro_file(env, host_dir):
    rt = env["daemon"].runtime
    data = os.path.join(host_dir, "data")
    os.makedirs(data)
    with open(os.path.join(data, "from-host"), "w") as f:
        f.write("written on the host\n")
    conf = os.path.join(host_dir, "conf.txt")
    with open(conf, "w") as f:
        f.write("setting=1\n")
    mounts = [cri_pb2.Mount(container_path="/data", host_path=data),
              cri_pb2.Mount(container_path="/etc/app/conf.txt", host_path=conf, readonly=True)]
    cid = create_start(env, "vols", ["/bin/sleep", "100000"], mounts=mounts)
    voldir = os.path.join(pod_state_dir(env), "volumes")
    assert len(mounts_under(os.path.join(voldir, cid))) == 2
    r = exec_sync(env, cid, ["/bin/cat", "/data/from-host", "/etc/app/conf.txt"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == b"written on the host\nsetting=1\n"
    # Written in the container, seen on the host; and a host change seen at once (cache=none).
    r = exec_sync(env, cid, ["/bin/sh", "-c", "echo from the container > /data/from-ctr && mkdir /data/sub"])
    assert r.exit_code == 0, r.stderr
    with open(os.path.join(data, "from-ctr")) as f:
        assert f.read() == "from the container\n"
    assert os.path.isdir(os.path.join(data, "sub"))
    with open(os.path.join(data, "from-host"), "w") as f:
        f.write("changed\n")
    assert exec_sync(env, cid, ["/bin/cat", "/data/from-host"]).stdout == b"changed\n"
    # The read-only file cannot be written (the host bind mount is read-only too).
    r = exec_sync(env, cid, ["/bin/sh", "-c", "echo evil > /etc/app/conf.txt"])
    assert r.exit_code != 0
    assert b"Read-only" in r.stderr, r.stderr
    with open(conf) as f:
        assert f.read() == "setting=1\n"
    rt.RemoveContainer(cri_pb2.RemoveContainerRequest(container_id=cid), timeout=120)
    assert mounts_under(voldir) == []
    assert not os.path.exists(os.path.join(voldir, cid))
    # The host's files are left as they were.
    assert sorted(os.listdir(data)) == ["from-ctr", "from-host", "sub"]


def test_volume_host_to_container_propagation(env, host_dir):
    """HOST_TO_CONTAINER (rslave): a host mount made under host_path after the start shows in the container."""
    rt = env["daemon"].runtime
    # The host path's mount must be shared for anything to propagate: make one for the test.
    subprocess.check_call(["mount", "-t", "tmpfs", "pvshared", host_dir])
    try:
        subprocess.check_call(["mount", "--make-shared", host_dir])
        os.makedirs(os.path.join(host_dir, "v", "later"))
        cid = create_start(env, "slavevol", ["/bin/sleep", "100000"], mounts=[cri_pb2.Mount(
            container_path="/v", host_path=os.path.join(host_dir, "v"),
            propagation=cri_pb2.PROPAGATION_HOST_TO_CONTAINER)])
        later = os.path.join(host_dir, "v", "later")
        subprocess.check_call(["mount", "-t", "tmpfs", "pvlater", later])
        with open(os.path.join(later, "f"), "w") as f:
            f.write("mounted later\n")
        r = exec_sync(env, cid, ["/bin/cat", "/v/later/f"])
        assert r.stdout == b"mounted later\n", r.stderr
        subprocess.check_call(["umount", later])
        rt.RemoveContainer(cri_pb2.RemoveContainerRequest(container_id=cid), timeout=120)
        assert mounts_under(os.path.join(pod_state_dir(env), "volumes")) == []
    finally:
        subprocess.call(["umount", "-R", host_dir])


def test_volume_errors(env, host_dir):
    rt = env["daemon"].runtime
    cases = [
        ([cri_pb2.Mount(container_path="data", host_path=host_dir)], "config.mounts[0].container_path"),
        ([cri_pb2.Mount(container_path="/ok", host_path=host_dir),
          cri_pb2.Mount(container_path="/x", host_path=os.path.join(host_dir, "missing"))],
         "config.mounts[1].host_path"),
        ([cri_pb2.Mount(container_path="/a/../etc", host_path=host_dir)], "config.mounts[0].container_path"),
        ([cri_pb2.Mount(container_path="/x", host_path="relative")], "config.mounts[0].host_path"),
        ([cri_pb2.Mount(container_path="/x", host_path=host_dir, propagation=cri_pb2.PROPAGATION_BIDIRECTIONAL)],
         "bidirectional"),
    ]
    for mounts, what in cases:
        with pytest.raises(grpc.RpcError) as e:
            rt.CreateContainer(cri_pb2.CreateContainerRequest(
                pod_sandbox_id=env["pod"], config=ctr_config(env["image"], "badvol", ["/bin/true"], mounts=mounts)),
                timeout=60)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert what in e.value.details()
    # A create that fails after the volumes were bound (unknown user) leaves no mount behind.
    with pytest.raises(grpc.RpcError) as e:
        rt.CreateContainer(cri_pb2.CreateContainerRequest(
            pod_sandbox_id=env["pod"], config=ctr_config(
                env["image"], "badvol", ["/bin/true"], mounts=[cri_pb2.Mount(container_path="/x", host_path=host_dir)],
                linux=cri_pb2.LinuxContainerConfig(security_context=cri_pb2.LinuxContainerSecurityContext(
                    run_as_username="ghost")))), timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    names = [c.metadata.name for c in rt.ListContainers(cri_pb2.ListContainersRequest(), timeout=30).containers]
    assert "badvol" not in names
    voldir = os.path.join(pod_state_dir(env), "volumes")
    assert mounts_under(voldir) == []
    assert os.listdir(voldir) == []  # the failed container's mount points are gone too


def test_pod_stop_and_remove_leave_nothing(env, host_dir):
    """A pod of its own: run, stop (containers EXITED, VM gone), remove (no process, no files)."""
    d = env["daemon"]
    rt = d.runtime
    cfg = pod_config("short", env["logdir"])
    pod = rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
    info = json.loads(rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True),
                                          timeout=30).info["info"])
    own = dict(env, pod=pod, pod_cfg=cfg)
    cid = create_start(own, "worker", ["/bin/sleep", "100000"],
                       mounts=[cri_pb2.Mount(container_path="/data", host_path=host_dir)])
    assert exec_sync(own, cid, ["/bin/sh", "-c", "echo hi > /data/f"]).exit_code == 0
    # The pod's share (a private bind of itself) and the container's volume in it.
    assert sorted(mounts_under(info["stateDir"])) == [os.path.join(info["stateDir"], "volumes"),
                                                      os.path.join(info["stateDir"], "volumes", cid, "0")]
    net = env["net"]
    assert pod in net.netns_files()
    leases, ports = len(net.lease_files()), len(net.bridge_ports())
    rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
    # CNI DEL ran: the netns, its veth and the IPAM lease are gone.
    assert pod not in net.netns_files()
    assert len(net.lease_files()) == leases - 1
    assert len(net.bridge_ports()) == ports - 1
    st = rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=30).status
    assert st.state == cri_pb2.SANDBOX_NOTREADY
    assert status(own, cid).state == cri_pb2.CONTAINER_EXITED
    for pid in (info["vmmPid"], info["shimPid"]):
        assert wait_gone(pid), "process %d still running after StopPodSandbox" % pid
    # The volume's host bind mount went with the VM; the host's file stays.
    assert mounts_under(info["stateDir"]) == []
    assert open(os.path.join(host_dir, "f")).read() == "hi\n"
    rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)  # idempotent
    rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    assert not os.path.exists(info["stateDir"])
    assert not os.path.exists(os.path.join(d.root, "pods", pod))
    assert pod not in [p.id for p in rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items]
    with pytest.raises(grpc.RpcError) as e:
        status(own, cid)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_dead_vm_makes_pod_notready(env):
    d = env["daemon"]
    rt = d.runtime
    cfg = pod_config("doomed", env["logdir"])
    pod = rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
    own = dict(env, pod=pod, pod_cfg=cfg)
    cid = create_start(own, "victim", ["/bin/sleep", "100000"])
    info = json.loads(rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True),
                                          timeout=30).info["info"])
    os.kill(info["vmmPid"], signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        st = rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=30).status
        if st.state == cri_pb2.SANDBOX_NOTREADY:
            break
        time.sleep(0.2)
    assert st.state == cri_pb2.SANDBOX_NOTREADY
    c = status(own, cid)
    assert c.state == cri_pb2.CONTAINER_EXITED
    assert c.reason
    rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    assert wait_gone(info["shimPid"]), "shim still running after RemovePodSandbox"


def test_reopen_container_log(env):
    """Log rotation as kubelet does it: rename the file, ReopenContainerLog, new lines go to a new file."""
    cid = create_start(env, "chatty", ["/bin/sh", "-c", "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.2; done"])
    path = status(env, cid).log_path
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (os.path.exists(path) and log_records(path)):
        time.sleep(0.1)
    os.rename(path, path + ".1")
    env["daemon"].runtime.ReopenContainerLog(cri_pb2.ReopenContainerLogRequest(container_id=cid), timeout=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (os.path.exists(path) and log_records(path)):
        time.sleep(0.1)
    new = [r[2] for r in log_records(path)]
    old = [r[2] for r in log_records(path + ".1")]
    assert new and old
    # No line lost or repeated across the two files: the counter continues.
    last_old = int(old[-1][4:])
    first_new = int(new[0][4:])
    assert first_new == last_old + 1, (old[-3:], new[:3])
    env["daemon"].runtime.StopContainer(cri_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=60)
    with pytest.raises(grpc.RpcError) as e:
        env["daemon"].runtime.ReopenContainerLog(cri_pb2.ReopenContainerLogRequest(container_id=cid), timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_update_container_resources(env):
    """A new memory limit reaches the container's cgroup in the guest (its stats report it)."""
    rt = env["daemon"].runtime
    cid = create_start(env, "resizable", ["/bin/sleep", "100000"],
                       linux=cri_pb2.LinuxContainerConfig(resources=cri_pb2.LinuxContainerResources(
                           memory_limit_in_bytes=64 << 20)))

    def limit():
        st = rt.ContainerStats(cri_pb2.ContainerStatsRequest(container_id=cid), timeout=30).stats.memory
        return st.available_bytes.value + st.working_set_bytes.value

    assert limit() == 64 << 20
    rt.UpdateContainerResources(cri_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=cri_pb2.LinuxContainerResources(memory_limit_in_bytes=96 << 20)), timeout=30)
    assert limit() == 96 << 20
    with pytest.raises(grpc.RpcError) as e:
        rt.UpdateContainerResources(cri_pb2.UpdateContainerResourcesRequest(
            container_id=cid, linux=cri_pb2.LinuxContainerResources(memory_limit_in_bytes=1000)), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_tty_container(env):
    """tty=true: the process runs on a terminal and what it prints still reaches the CRI log."""
    cid = create_start(env, "withtty", ["/bin/sh", "-c", "[ -t 1 ] && echo on-a-tty; echo done"], tty=True)
    st = wait_state(env, cid, cri_pb2.CONTAINER_EXITED)
    assert st.exit_code == 0
    out = [r[2].rstrip(b"\r") for r in log_records(st.log_path)]
    assert b"on-a-tty" in out and b"done" in out, out


def test_container_has_room_to_write(env):
    """A container's rootfs is grown to its (sparse) disk: it can write far more than the
    image's ext4 has free, and the disk lives under podvisord's root dir, not in its state
    dir (a tmpfs: a disk there would cost RAM)."""
    d = env["daemon"]
    cid = create_start(env, "writer", ["/bin/sleep", "100000"])
    r = exec_sync(env, cid, ["/bin/sh", "-c", "dd if=/dev/zero of=/big bs=1M count=200 && sync && ls -l /big"],
                  timeout=120)
    assert r.exit_code == 0, r.stderr
    assert b"209715200" in r.stdout
    info = json.loads(d.runtime.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=env["pod"], verbose=True), timeout=30).info["info"])
    disk = os.path.join(info["diskDir"], cid + ".qcow2")
    assert info["diskDir"].startswith(d.root + "/")
    assert os.path.exists(disk)
    # Growing the filesystem wrote little: the overlay holds about what the container wrote.
    assert os.stat(disk).st_blocks * 512 < 300 << 20
    d.runtime.RemoveContainer(cri_pb2.RemoveContainerRequest(container_id=cid), timeout=120)
    assert not os.path.exists(disk)
