"""VM templates (docs/sandbox.md, "Templates"): pods cloned from a booted template VM.

Real podvisord, real shims, real QEMU (TCG), real CNI, real registry. What is checked:
a clone runs containers and is a pod of its own (MAC, hostname, IP, clock within 1 s of
the host, RNG state not shared with another clone); a template is rebuilt when the
initramfs changes; a damaged template makes the pod boot; a clone that cannot be restored
falls back to a boot in the shim; nothing is left in the state dir after podvisord stops.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

import conftest
import cri_pb2
import shim_util as su
from image_util import BUSYBOX, Entry, Image, Registry, make_tar
from net_util import NetEnv
from test_pods import LOG_LINE, pod_config

APPLETS = ["sh", "cat", "date", "od", "head", "hostname", "ip", "echo", "sleep", "tr", "sed", "[", "test"]
TEMPLATE_MAC = "02:70:76:00:00:01"  # shim/shim.h SHIM_TEMPLATE_MAC

# One line per fact, parsed below. /dev/urandom is read first: "right after start".
PROBE = ("echo rnd=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'); "
         "echo mac=$(cat /sys/class/net/eth0/address); echo host=$(hostname); "
         "echo ip=$(ip -4 -o addr show eth0 | sed 's/.*inet \\([0-9.]*\\).*/\\1/'); "
         # busybox date has no %N: wait for the next second to begin, then print it.
         "s=$(date +%s); while [ \"$(date +%s)\" = \"$s\" ]; do :; done; echo now=$(date +%s)")


def probe_image():
    bb = open(BUSYBOX, "rb").read()
    entries = [Entry("bin", kind="dir", mode=0o755), Entry("bin/busybox", bb, mode=0o755)]
    entries += [Entry("bin/" + a, kind="symlink", link="busybox", mode=0o777) for a in APPLETS]
    return Image([make_tar(entries)], config_extra={"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]})


@pytest.fixture(scope="module")
def world():
    reg = Registry()
    reg.push_image("test/probe", "1", probe_image())
    net = NetEnv()
    yield {"registry": reg, "net": net, "image": "%s/test/probe:1" % reg.host}
    net.cleanup()
    reg.stop()


def start(world, extra_runtime=None):
    cfg = {"network": {"cni_conf_dir": world["net"].conf_dir, "netns_dir": world["net"].netns_dir}}
    cfg["runtime"] = {"templates": True}
    cfg["runtime"].update(extra_runtime or {})
    d = conftest.Daemon(cfg)
    d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=world["image"])), timeout=300)
    d.logdir = os.path.join(d.dir, "logs")
    os.makedirs(d.logdir)
    return d


def templates_dir(d):
    return os.path.join(d.state, "templates")


def ready_templates(d):
    """Template directories that are complete (not being built)."""
    root = templates_dir(d)
    if not os.path.isdir(root):
        return []
    return sorted(n for n in os.listdir(root) if not n.endswith(".build")
                  and os.path.exists(os.path.join(root, n, "state")))


def wait_template(d, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_templates(d):
            return ready_templates(d)
        time.sleep(0.2)
    raise AssertionError("no template after %ds:\n%s" % (timeout, d.logs()[-4000:]))


def run_pod(d, name):
    rt = d.runtime
    cfg = pod_config(name, d.logdir)
    pod = rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
    st = rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True), timeout=30)
    info = json.loads(st.info["info"])
    return {"id": pod, "cfg": cfg, "ip": st.status.network.ip, "info": info}


def remove_pod(d, pod):
    d.runtime.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod["id"]), timeout=120)
    d.runtime.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod["id"]), timeout=120)


def run_probe(d, image, pod, name):
    """Run PROBE in a container of the pod; its facts and the host time of its last log line."""
    rt = d.runtime
    c = cri_pb2.ContainerConfig(metadata=cri_pb2.ContainerMetadata(name=name), image=cri_pb2.ImageSpec(image=image),
                                command=["/bin/sh", "-c", PROBE], log_path=name + ".log")
    cid = rt.CreateContainer(cri_pb2.CreateContainerRequest(pod_sandbox_id=pod["id"], config=c,
                                                            sandbox_config=pod["cfg"]), timeout=120).container_id
    rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)
    path = os.path.join(d.logdir, name + ".log")
    deadline = time.monotonic() + 60
    facts = {}
    while time.monotonic() < deadline and "now" not in facts:
        time.sleep(0.1)
        if not os.path.exists(path):
            continue
        for line in open(path, "rb").read().splitlines():
            m = LOG_LINE.match(line)
            if not m or b"=" not in m.group(5):
                continue
            k, v = m.group(5).decode().split("=", 1)
            facts[k] = v
            if k == "now":
                # The CRI timestamp is the host's clock when the shim got the line.
                ts = m.group(1).decode()
                host = time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
                facts["host_now"] = host + float("0" + ts[19:29])
    assert "now" in facts, "probe printed %r" % facts
    return facts


def test_clones_are_pods_of_their_own(world):
    """Two clones: containers run; own MAC, hostname, IP; clock within 1 s; different RNG output."""
    d = start(world)
    try:
        wait_template(d)
        pods = [run_pod(d, "clone%d" % i) for i in range(2)]
        facts = []
        for i, p in enumerate(pods):
            assert p["info"]["vmStart"] == "template", p["info"]
            f = run_probe(d, world["image"], p, "probe%d" % i)
            facts.append(f)
            assert f["host"] == "clone%d-host" % i
            assert f["ip"] == p["ip"] and p["ip"]
            assert f["mac"] != TEMPLATE_MAC
            # The guest printed a second as it began; the shim stamped the line with the host's clock.
            assert abs(int(f["now"]) - f["host_now"]) < 1.0, f
            assert len(f["rnd"]) == 64, f
        assert facts[0]["mac"] != facts[1]["mac"]
        assert facts[0]["ip"] != facts[1]["ip"]
        assert facts[0]["rnd"] != facts[1]["rnd"], "two clones read the same /dev/urandom bytes"
        # Each MAC is the one CNI gave a pod's veth (what the bridge and the peers expect).
        veth_macs = set()
        for n in os.listdir(world["net"].netns_dir):
            # netlink, not /sys: sysfs shows the netns that mounted it.
            r = subprocess.run(["nsenter", "--net=" + os.path.join(world["net"].netns_dir, n), "ip", "-o", "link",
                                "show", "eth0"], capture_output=True, text=True)
            if "link/ether " in r.stdout:
                veth_macs.add(r.stdout.split("link/ether ")[1].split()[0])
        assert facts[0]["mac"] in veth_macs and facts[1]["mac"] in veth_macs, (facts, veth_macs)
        for p in pods:
            remove_pod(d, p)
    finally:
        d.cleanup()


def test_template_rebuilt_when_initramfs_changes(world, tmp_path):
    initramfs = str(tmp_path / "initramfs.cpio")
    shutil.copy(su.initramfs_path(), initramfs)
    d = start(world, {"initramfs": initramfs})
    try:
        first = wait_template(d)
        assert len(first) == 1
        p = run_pod(d, "before")
        assert p["info"]["vmStart"] == "template"
        remove_pod(d, p)
        # Zero padding after a cpio archive is skipped by the kernel: same guest, new bytes.
        with open(initramfs, "ab") as f:
            f.write(b"\0" * 4096)
        p = run_pod(d, "after")
        assert p["info"]["vmStart"] == "template", p["info"]
        now = ready_templates(d)
        assert len(now) == 1 and now != first, (first, now)
        f = run_probe(d, world["image"], p, "after-probe")
        assert f["host"] == "after-host"
        remove_pod(d, p)
    finally:
        d.cleanup()


def test_damaged_template_boots_then_is_rebuilt(world):
    d = start(world)
    try:
        name = wait_template(d)[0]
        state = os.path.join(templates_dir(d), name, "state")
        with open(state, "r+b") as f:
            f.seek(100)
            f.write(b"\xff" * 64)
        p = run_pod(d, "damaged")
        assert p["info"]["vmStart"] == "boot", p["info"]
        assert "template damaged" in d.logs()
        f = run_probe(d, world["image"], p, "damaged-probe")
        assert f["host"] == "damaged-host"
        remove_pod(d, p)
        p = run_pod(d, "rebuilt")
        assert p["info"]["vmStart"] == "template", p["info"]
        remove_pod(d, p)
    finally:
        d.cleanup()


def test_nothing_left_in_state_dir_after_stop(world):
    d = start(world)
    try:
        wait_template(d)
        root = templates_dir(d)
        assert os.path.isdir(root)
        d.stop()
        assert d.proc.returncode == 0, d.logs()[-3000:]
        assert not os.path.exists(root), os.listdir(root)
        mounts = open("/proc/self/mounts").read()
        assert root not in mounts
        leftovers = [os.path.join(dp, n) for dp, dn, fn in os.walk(d.state) for n in dn + fn
                     if "template" in n or n in ("mem", "state")]
        assert not leftovers, leftovers
    finally:
        d.cleanup()


def test_templates_off_boots_and_makes_none(world):
    cfg = {"network": {"cni_conf_dir": world["net"].conf_dir, "netns_dir": world["net"].netns_dir},
           "runtime": {"templates": False}}
    d = conftest.Daemon(cfg)
    try:
        d.logdir = os.path.join(d.dir, "logs")
        os.makedirs(d.logdir)
        p = run_pod(d, "noclone")
        assert p["info"]["vmStart"] == "boot"
        assert not os.path.exists(templates_dir(d))
        remove_pod(d, p)
    finally:
        d.cleanup()


def test_shim_falls_back_to_boot_when_restore_fails(tmp_path):
    """The VMM layer's restore fails (state file not loadable): the shim boots instead, says so."""
    tpl = str(tmp_path / "tpl")
    os.makedirs(tpl)
    r = su.shimctl("spawn", "--state-dir", tpl, "--kernel", su.kernel_path(), "--initramfs", su.initramfs_path(),
                   "--accel", "tcg", "--memory-mib", 256, "--shim", su.SHIM, "--share-dir", tpl + "/vol",
                   "--make-template", tpl, check=False, timeout=300)
    assert "error" not in r, r
    assert os.path.getsize(os.path.join(tpl, "state")) > 0
    # A good clone first: the agent answers over a new host socket after the restore.
    good = su.Pod(accel="tcg", extra=["--template", tpl, "--share-dir", str(tmp_path / "v1")])
    try:
        st = good.status()
        assert st["vm_start"] == "template", st
        assert "clone refreshed" in good.log("shim.log")
    finally:
        good.stop()
    with open(os.path.join(tpl, "state"), "r+b") as f:
        f.seek(40)
        f.write(b"\xff" * 256)
    bad = su.Pod(accel="tcg", extra=["--template", tpl, "--share-dir", str(tmp_path / "v2")])
    try:
        st = bad.status()
        assert st["vm_start"] == "boot-fallback", st
        assert st["vm_start_error"], st
        assert st["state"] == "READY"
        assert "clone from template failed, booting instead" in bad.log("shim.log")
    finally:
        bad.stop()
