"""The security context of VM pods end to end: real podvisord, shims, VMs (TCG), registry, CNI.

Hostname, RunAsGroup, privileged, capabilities, masked and read-only paths, seccomp
(RuntimeDefault, Localhost, Unconfined), the pod's shared PID namespace, sysctls, the
stop signal of a container's init, and mount propagation of volumes.
"""
import os
import socket
import subprocess
import tempfile
import time

import grpc
import pytest

import cri_pb2
from image_util import BUSYBOX, Entry, Image, Registry, make_tar
from net_util import NetEnv

APPLETS = ["sh", "echo", "sleep", "cat", "ls", "id", "hostname", "env", "true", "ip", "grep", "brctl", "mkdir",
           "touch", "chmod", "ps", "pidof", "mount", "umount", "unshare", "sysctl", "rm", "stat", "test"]


def busybox_image():
    bb = open(BUSYBOX, "rb").read()
    entries = [Entry("bin", kind="dir", mode=0o755), Entry("bin/busybox", bb, mode=0o755)]
    entries += [Entry("bin/" + a, kind="symlink", link="busybox", mode=0o777) for a in APPLETS]
    entries += [Entry("etc", kind="dir", mode=0o755),
                Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
                Entry("etc/group", b"root:x:0:\n"),
                Entry("etc/secret", b"top secret\n"),
                Entry("etc/secretdir", kind="dir", mode=0o755),
                Entry("etc/secretdir/key", b"k\n"),
                Entry("tmp", kind="dir", mode=0o1777)]
    return Image([make_tar(entries)], config_extra={"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"})


@pytest.fixture(scope="module")
def env():
    import conftest
    reg = Registry()
    net = NetEnv()
    d = None
    try:
        reg.push_image("test/secbox", "1", busybox_image())
        d = conftest.Daemon({"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir}})
        image = "%s/test/secbox:1" % reg.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
        logdir = os.path.join(d.dir, "logs")
        os.makedirs(logdir)
        e = {"daemon": d, "rt": d.runtime, "image": image, "logdir": logdir, "pods": []}
        yield e
        for pod in e["pods"]:
            try:
                d.runtime.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
                d.runtime.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
            except grpc.RpcError:
                pass
    finally:
        if d:
            d.cleanup()
        net.cleanup()
        reg.stop()


def pod_config(env, name, linux=None, **kw):
    return cri_pb2.PodSandboxConfig(
        metadata=cri_pb2.PodSandboxMetadata(name=name, namespace="sec", uid="uid-" + name, attempt=0),
        log_directory=env["logdir"], linux=linux, **kw)


def run_pod(env, name, **kw):
    cfg = pod_config(env, name, **kw)
    pod = env["rt"].RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
    env["pods"].append(pod)
    return pod, cfg


def remove_pod(env, pod):
    env["rt"].StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
    env["rt"].RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
    env["pods"].remove(pod)


def sec(**kw):
    return cri_pb2.LinuxContainerConfig(security_context=cri_pb2.LinuxContainerSecurityContext(**kw))


def create(env, pod, cfg, name, cmd, **kw):
    c = cri_pb2.ContainerConfig(metadata=cri_pb2.ContainerMetadata(name=name), image=cri_pb2.ImageSpec(
        image=env["image"]), command=cmd, log_path=name + ".log", **kw)
    return env["rt"].CreateContainer(cri_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=c, sandbox_config=cfg),
                                     timeout=120).container_id


def create_start(env, pod, cfg, name, cmd, **kw):
    cid = create(env, pod, cfg, name, cmd, **kw)
    env["rt"].StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)
    return cid


def create_error(env, pod, cfg, name, cmd, **kw):
    with pytest.raises(grpc.RpcError) as e:
        create(env, pod, cfg, name, cmd, **kw)
    return e.value


def run(env, cid, cmd, timeout=60):
    return env["rt"].ExecSync(cri_pb2.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout),
                              timeout=timeout + 60)


def status(env, cid):
    return env["rt"].ContainerStatus(cri_pb2.ContainerStatusRequest(container_id=cid), timeout=30).status


def wait_exit(env, cid, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(env, cid)
        if st.state == cri_pb2.CONTAINER_EXITED:
            return st
        time.sleep(0.2)
    raise AssertionError("container %s still running" % cid)


def stdout_of(st):
    """The stdout lines of an exited container's CRI log."""
    lines = []
    with open(st.log_path, "rb") as f:
        for line in f.read().splitlines():
            parts = line.split(b" ", 3)
            if parts[1] == b"stdout":
                lines.append(parts[3].decode())
    return lines


@pytest.fixture(scope="module")
def plain(env):
    """A pod with no hostname, a name longer than 64 characters, and sysctls."""
    name = "a-pod-whose-name-is-much-longer-than-sixty-four-characters-as-critest-makes-them"
    assert len(name) > 64
    pod, cfg = run_pod(env, name, linux=cri_pb2.LinuxPodSandboxConfig(sysctls={
        "kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100", "net.ipv4.ip_forward": "1"}))
    return pod, cfg


def test_hostname_is_the_nodes(env, plain):
    pod, cfg = plain
    cid = create_start(env, pod, cfg, "host", ["/bin/sh", "-c", "hostname; echo $HOSTNAME; sleep 100000"])
    r = run(env, cid, ["/bin/hostname"])
    assert r.stdout.decode().strip() == socket.gethostname()
    r = run(env, cid, ["/bin/sh", "-c", "echo $HOSTNAME"])
    assert r.stdout.decode().strip() == socket.gethostname()
    # A hostname that is too long is still refused, and leaves no pod.
    with pytest.raises(grpc.RpcError) as e:
        env["rt"].RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=pod_config(env, "toolong", hostname="h" * 65)),
                                timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hostname" in e.value.details()
    names = [p.metadata.name for p in env["rt"].ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items]
    assert "toolong" not in names


def test_run_as_group_needs_a_user(env, plain):
    pod, cfg = plain
    e = create_error(env, pod, cfg, "grouponly", ["/bin/true"], linux=sec(run_as_group=cri_pb2.Int64Value(value=5)))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "run_as_group" in e.details()
    cid = create_start(env, pod, cfg, "usergroup", ["/bin/sh", "-c", "echo $(id -u):$(id -g)"],
                       linux=sec(run_as_user=cri_pb2.Int64Value(value=1001), run_as_group=cri_pb2.Int64Value(value=1002)))
    assert stdout_of(wait_exit(env, cid)) == ["1001:1002"]


def test_sysctls_in_every_container(env, plain):
    """The pod's sysctls are set in the VM and every container sees them: IPC ones in the pod's shared
    IPC namespace (also for a container with a PID namespace of its own), net ones in the pod's netns."""
    pod, cfg = plain
    paths = ["/proc/sys/kernel/shm_rmid_forced", "/proc/sys/fs/mqueue/msg_max", "/proc/sys/net/ipv4/ip_forward"]
    a = create_start(env, pod, cfg, "sys-a", ["/bin/sleep", "100000"])
    b = create_start(env, pod, cfg, "sys-b", ["/bin/sleep", "100000"],
                     linux=sec(namespace_options=cri_pb2.NamespaceOption(pid=cri_pb2.CONTAINER)))
    for cid in (a, b):
        r = run(env, cid, ["/bin/cat"] + paths)
        assert r.stdout.split() == [b"1", b"100", b"1"], r.stderr
    # A sysctl the kernel does not have, or a bad name: INVALID_ARGUMENT naming it, and no pod left behind.
    for key in ("kernel.no_such_knob", "net..ipv4"):
        with pytest.raises(grpc.RpcError) as e:
            env["rt"].RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=pod_config(
                env, "badsysctl", linux=cri_pb2.LinuxPodSandboxConfig(sysctls={key: "1"}))), timeout=300)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
        assert key in e.value.details()
    names = [p.metadata.name for p in env["rt"].ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items]
    assert "badsysctl" not in names


def test_pod_pid_namespace(env, plain):
    """Containers of a pod share one PID namespace unless they ask for their own; its PID 1 reaps orphans,
    and a stopped container takes its leftover processes with it."""
    pod, cfg = plain
    a = create_start(env, pod, cfg, "pid-a", ["/bin/sh", "-c", "sleep 4242 & exec sleep 4343"])
    b = create_start(env, pod, cfg, "pid-b", ["/bin/sleep", "100000"])
    own = create_start(env, pod, cfg, "pid-own", ["/bin/sleep", "100000"],
                       linux=sec(namespace_options=cri_pb2.NamespaceOption(pid=cri_pb2.CONTAINER)))
    ps = run(env, b, ["/bin/ps", "-o", "pid,args"]).stdout.decode()
    assert "sleep 4343" in ps and "sleep 4242" in ps, ps
    # PID 1 is the pod's reaper, not a container's process.
    assert b"sleep" not in run(env, b, ["/bin/cat", "/proc/1/cmdline"]).stdout
    # A container with its own PID namespace is its PID 1 and sees none of the others.
    assert run(env, own, ["/bin/cat", "/proc/1/cmdline"]).stdout.split(b"\0")[:2] == [b"/bin/sleep", b"100000"]
    assert "sleep 4343" not in run(env, own, ["/bin/ps", "-o", "args"]).stdout.decode()
    # TARGET (ephemeral containers): the PID namespace of another container.
    tgt = create_start(env, pod, cfg, "pid-target", ["/bin/sleep", "100001"],
                       linux=sec(namespace_options=cri_pb2.NamespaceOption(pid=cri_pb2.TARGET, target_id=own)))
    assert run(env, tgt, ["/bin/cat", "/proc/1/cmdline"]).stdout.split(b"\0")[:2] == [b"/bin/sleep", b"100000"]
    # An orphan (its parent exits at once) is reaped by PID 1: no zombie is left.
    run(env, b, ["/bin/sh", "-c", "sh -c 'sleep 1 & exit 0'"])
    time.sleep(3)
    states = run(env, b, ["/bin/sh", "-c", "cat /proc/[0-9]*/stat"]).stdout.decode()
    assert " Z " not in states, states
    env["rt"].StopContainer(cri_pb2.StopContainerRequest(container_id=a, timeout=10), timeout=120)
    assert status(env, a).state == cri_pb2.CONTAINER_EXITED
    ps = run(env, b, ["/bin/ps", "-o", "args"]).stdout.decode()
    assert "sleep 4242" not in ps, "the stopped container's background process survived: " + ps
    st = env["rt"].PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=30).status
    assert st.linux.namespaces.options.pid == cri_pb2.POD


def test_stop_signal_sent_again_once_handled(env, plain):
    """PID 1 of its own PID namespace drops a SIGTERM it has no handler for yet; the agent sends it again as
    soon as the handler is there, so the stop does not wait for its whole timeout."""
    pod, cfg = plain
    cid = create_start(env, pod, cfg, "late-trap",
                       ["/bin/sh", "-c", "sleep 3; trap 'exit 42' TERM; echo trapped; while true; do sleep 0.1; done"],
                       linux=sec(namespace_options=cri_pb2.NamespaceOption(pid=cri_pb2.CONTAINER)))
    t0 = time.monotonic()
    env["rt"].StopContainer(cri_pb2.StopContainerRequest(container_id=cid, timeout=40), timeout=120)
    took = time.monotonic() - t0
    st = status(env, cid)
    assert st.exit_code == 42, "the late handler never got the signal (exit %d after %.1fs)" % (st.exit_code, took)
    assert took < 20, took
    # A process that never handles it is killed at the deadline, counted from the call.
    cid = create_start(env, pod, cfg, "deaf", ["/bin/sleep", "100000"],
                       linux=sec(namespace_options=cri_pb2.NamespaceOption(pid=cri_pb2.CONTAINER)))
    t0 = time.monotonic()
    env["rt"].StopContainer(cri_pb2.StopContainerRequest(container_id=cid, timeout=4), timeout=120)
    took = time.monotonic() - t0
    assert status(env, cid).exit_code == 137
    assert 3.5 <= took < 4 + 3, took


def test_masked_and_readonly_paths(env, plain):
    pod, cfg = plain
    # None given: containerd's defaults (/proc/sys read-only, /proc/kcore and friends masked).
    d = create_start(env, pod, cfg, "paths-default", ["/bin/sleep", "100000"])
    r = run(env, d, ["/bin/sh", "-c", "echo 0 > /proc/sys/kernel/shm_rmid_forced"])
    assert r.exit_code != 0 and b"Read-only file system" in r.stderr, r
    assert run(env, d, ["/bin/cat", "/proc/sys/kernel/shm_rmid_forced"]).stdout == b"1\n"
    mounts = run(env, d, ["/bin/cat", "/proc/self/mountinfo"]).stdout.decode()
    assert any(" /proc/sys " in l and " ro," in l for l in mounts.splitlines()), mounts
    assert any(" /sys/firmware " in l for l in mounts.splitlines()), mounts
    # Given: exactly those. A file reads as empty, a directory is empty and read-only.
    c = create_start(env, pod, cfg, "paths", ["/bin/sleep", "100000"],
                     linux=sec(masked_paths=["/etc/secret", "/etc/secretdir", "/does/not/exist"],
                               readonly_paths=["/tmp"]))
    assert run(env, c, ["/bin/cat", "/etc/secret"]).stdout == b""
    assert run(env, c, ["/bin/ls", "-A", "/etc/secretdir"]).stdout == b""
    r = run(env, c, ["/bin/touch", "/tmp/x"])
    assert r.exit_code != 0 and b"Read-only file system" in r.stderr, r
    r = run(env, c, ["/bin/touch", "/etc/secretdir/x"])
    assert r.exit_code != 0
    e = create_error(env, pod, cfg, "badpath", ["/bin/true"], linux=sec(masked_paths=["relative/path"]))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "masked_paths[0]" in e.details()


def test_capabilities_and_privileged(env, plain):
    pod, cfg = plain
    # Not privileged: no bridge without NET_ADMIN; with it (added), brctl works (the kernel has bridges).
    plainc = create_start(env, pod, cfg, "nocap", ["/bin/sleep", "100000"])
    r = run(env, plainc, ["/bin/brctl", "addbr", "br-nocap"])
    assert r.exit_code != 0
    netadm = create_start(env, pod, cfg, "netadmin", ["/bin/sleep", "100000"],
                          linux=sec(capabilities=cri_pb2.Capability(add_capabilities=["NET_ADMIN"])))
    r = run(env, netadm, ["/bin/brctl", "addbr", "br-cap"])
    assert r.exit_code == 0, r.stderr
    assert b"br-cap" in run(env, netadm, ["/bin/ip", "link", "show", "br-cap"]).stdout
    r = run(env, netadm, ["/bin/ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
    assert r.exit_code == 0, r.stderr
    # A privileged container needs a privileged pod.
    e = create_error(env, pod, cfg, "priv", ["/bin/true"], linux=sec(privileged=True))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "privileged pod" in e.details()
    ppod, pcfg = run_pod(env, "privpod", linux=cri_pb2.LinuxPodSandboxConfig(
        security_context=cri_pb2.LinuxSandboxSecurityContext(privileged=True)))
    # Privileged: every capability, the VM's devices, /sys and /proc/sys writable, no seccomp even if asked.
    priv = create_start(env, ppod, pcfg, "priv", ["/bin/sleep", "100000"],
                        linux=sec(privileged=True, seccomp=cri_pb2.SecurityProfile(profile_type=cri_pb2.SecurityProfile.RuntimeDefault)))
    status_text = run(env, priv, ["/bin/cat", "/proc/self/status"]).stdout.decode()
    assert "CapEff:\t000001ffffffffff" in status_text, status_text
    assert "Seccomp:\t0" in status_text
    assert run(env, priv, ["/bin/brctl", "addbr", "br-priv"]).exit_code == 0
    devs = run(env, priv, ["/bin/ls", "/dev"]).stdout.decode().split()
    assert "sda" in devs and "net" in devs, devs  # container disks and /dev/net/tun of the VM
    assert not [n for n in devs if n.startswith("vport")], devs  # not the agent's channel
    mounts = run(env, priv, ["/bin/cat", "/proc/self/mountinfo"]).stdout.decode()
    assert any(" /sys " in l and " rw," in l for l in mounts.splitlines()), mounts
    assert run(env, priv, ["/bin/sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]).exit_code == 0
    # The same pod, not privileged: the VM's disks are not there.
    unpriv = create_start(env, ppod, pcfg, "unpriv", ["/bin/sleep", "100000"])
    assert "sda" not in run(env, unpriv, ["/bin/ls", "/dev"]).stdout.decode().split()
    remove_pod(env, ppod)


@pytest.fixture
def profiles():
    d = tempfile.mkdtemp(prefix="pv-seccomp-")
    yield d
    subprocess.call(["rm", "-rf", d])


def write(d, name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


NO_MKDIR = ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"],'
            ' "action": "SCMP_ACT_ERRNO"}]}')
NO_HOSTNAME = '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}'


def profile(kind, ref=""):
    return cri_pb2.SecurityProfile(profile_type=kind, localhost_ref=ref)


def test_seccomp(env, plain, profiles):
    pod, cfg = plain
    P = cri_pb2.SecurityProfile
    seccomp_line = ["/bin/grep", "Seccomp:", "/proc/self/status"]
    # RuntimeDefault: filtered (2), in the init process and in every exec; namespaces refused.
    dflt = create_start(env, pod, cfg, "sc-default", ["/bin/sh", "-c", "grep Seccomp: /proc/self/status; sleep 100000"],
                        linux=sec(seccomp=profile(P.RuntimeDefault)))
    assert run(env, dflt, seccomp_line).stdout.split()[-1] == b"2"
    r = run(env, dflt, ["/bin/unshare", "-u", "/bin/true"])
    assert r.exit_code != 0 and b"Operation not permitted" in r.stderr, r
    assert run(env, dflt, ["/bin/sh", "-c", "mkdir /tmp/d && touch /tmp/d/f && ls /tmp/d"]).stdout == b"f\n"
    # No profile and Unconfined: no filter (0).
    for name, sc in (("sc-none", None), ("sc-unconfined", profile(P.Unconfined))):
        cid = create_start(env, pod, cfg, name, ["/bin/sleep", "100000"], linux=sec(seccomp=sc))
        assert run(env, cid, seccomp_line).stdout.split()[-1] == b"0"
    # Localhost: a profile that denies mkdir makes mkdir fail with EPERM, in the init process too.
    path = write(profiles, "no-mkdir.json", NO_MKDIR)
    lh = create_start(env, pod, cfg, "sc-local", ["/bin/sh", "-c", "mkdir /tmp/x; sleep 100000"],
                      linux=sec(seccomp=profile(P.Localhost, path)))
    r = run(env, lh, ["/bin/mkdir", "/tmp/y"])
    assert r.exit_code != 0 and b"Operation not permitted" in r.stderr, r
    assert run(env, lh, ["/bin/ls", "/tmp"]).stdout == b""
    assert run(env, lh, ["/bin/touch", "/tmp/file"]).exit_code == 0
    # SYS_ADMIN allows sethostname unless the profile blocks it; privileged ignores the profile.
    block = write(profiles, "no-hostname.json", NO_HOSTNAME)
    cid = create_start(env, pod, cfg, "sc-admin", ["/bin/sleep", "100000"],
                       linux=sec(seccomp=profile(P.Unconfined), capabilities=cri_pb2.Capability(add_capabilities=["SYS_ADMIN"])))
    assert run(env, cid, ["/bin/hostname", "renamed"]).exit_code == 0
    cid = create_start(env, pod, cfg, "sc-blocked", ["/bin/sleep", "100000"],
                       linux=sec(seccomp=profile(P.Localhost, block), capabilities=cri_pb2.Capability(add_capabilities=["SYS_ADMIN"])))
    assert run(env, cid, ["/bin/hostname", "renamed"]).exit_code != 0
    # Bad profiles: INVALID_ARGUMENT naming the file and what is wrong; nothing created.
    bad = [("notjson.json", "{", "line 1"),
           ("badaction.json", '{"defaultAction": "SCMP_ACT_PERHAPS"}', "unknown action"),
           ("badarg.json", '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
                           '"action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "op": "SCMP_CMP_EQ"}]}]}', "index")]
    for fname, text, why in bad:
        p = write(profiles, fname, text)
        e = create_error(env, pod, cfg, "sc-bad", ["/bin/true"], linux=sec(seccomp=profile(P.Localhost, p)))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.details()
        assert p in e.details() and why in e.details(), e.details()
    e = create_error(env, pod, cfg, "sc-bad", ["/bin/true"],
                     linux=sec(seccomp=profile(P.Localhost, os.path.join(profiles, "missing.json"))))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "missing.json" in e.details()
    names = [c.metadata.name for c in env["rt"].ListContainers(cri_pb2.ListContainersRequest(), timeout=30).containers]
    assert "sc-bad" not in names


def mountinfo_line(path):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == path:
                return line
    return None


@pytest.mark.parametrize("propagation", ["private", "hosttocontainer"])
def test_mount_propagation(env, plain, propagation):
    """critest's mount propagation specs: the volume is a bind mount of its own on the host (rprivate or
    rshared), a host mount made under it after the start shows in the container only for rslave, the
    status reports the mount, and the host's mount table is as it was once the container is gone."""
    pod, cfg = plain
    base = tempfile.mkdtemp(prefix="pv-prop-")
    src = os.path.join(base, "mnt")
    later = os.path.join(src, "later")
    flagdir = os.path.join(base, "flag")
    os.makedirs(later)
    os.makedirs(flagdir)
    open(os.path.join(flagdir, "flagFile"), "w").close()
    kind = "--make-rprivate" if propagation == "private" else "--make-rshared"
    subprocess.check_call(["mount", "--rbind", src, src])
    try:
        subprocess.check_call(["mount", kind, src])
        with open("/proc/self/mountinfo") as f:
            before = sorted(line.split(" - ")[0].split(None, 4)[4] for line in f)
        src_line = mountinfo_line(src)
        prop = cri_pb2.PROPAGATION_PRIVATE if propagation == "private" else cri_pb2.PROPAGATION_HOST_TO_CONTAINER
        cid = create_start(env, pod, cfg, "prop-" + propagation, ["/bin/sleep", "100000"],
                           mounts=[cri_pb2.Mount(container_path=src, host_path=src, propagation=prop)])
        m = env["rt"].ContainerStatus(cri_pb2.ContainerStatusRequest(container_id=cid), timeout=30).status.mounts
        assert len(m) == 1 and m[0].container_path == src and m[0].host_path == src and m[0].propagation == prop
        assert mountinfo_line(src) == src_line, "the volume's own host mount changed"
        subprocess.check_call(["mount", "--rbind", flagdir, later])
        try:
            seen = run(env, cid, ["/bin/ls", "-A", later]).stdout
            assert seen == (b"" if propagation == "private" else b"flagFile\n"), seen
            if propagation != "private":
                # Through 9p the container writes into the host mount that appeared under the volume.
                r = run(env, cid, ["/bin/sh", "-c", "echo from-guest > %s/written" % later])
                assert r.exit_code == 0, r.stderr
                assert open(os.path.join(flagdir, "written")).read() == "from-guest\n"
        finally:
            subprocess.check_call(["umount", "-l", later])  # critest's own clean-up must work
        env["rt"].RemoveContainer(cri_pb2.RemoveContainerRequest(container_id=cid), timeout=120)
        with open("/proc/self/mountinfo") as f:
            after = sorted(line.split(" - ")[0].split(None, 4)[4] for line in f)
        assert after == before
    finally:
        subprocess.call(["umount", "-R", "-l", src])
        subprocess.call(["rm", "-rf", base])


def test_volume_share_is_private(env, plain):
    """The pod's 9p share is a private bind mount: the binds made in it propagate nowhere on the node."""
    pod, cfg = plain
    import json
    info = json.loads(env["rt"].PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True),
                                                 timeout=30).info["info"])
    share = os.path.join(info["stateDir"], "volumes")
    line = mountinfo_line(share)
    assert line, "the share is not a mount point"
    optional = line.split(" - ")[0].split()[6:]
    assert not any(o.startswith(("shared:", "master:")) for o in optional), line
