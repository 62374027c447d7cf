"""podvisor as a node's runtime: make install / uninstall into a temporary root, the
installed podvisord finding its VM assets, podvisord --check and --version, the systemd
unit (systemd-analyze verify, sd_notify READY=1) and the default CNI network."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import grpc
import pytest

import cri_pb2
from conftest import PODVISORD, ServiceStub

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("PODVISOR_BUILD", os.path.join(REPO, "build"))
SAN = os.environ.get("PODVISOR_SAN", "0")
PREFIX = "/usr/local"

# What `make install` puts in an empty root with the default PREFIX, and nothing else.
INSTALLED = {
    "usr/local/bin/podvisord",
    "usr/local/bin/podvisor-shim",
    "usr/local/bin/podvisor-shimctl",
    "usr/local/lib/podvisor/vmlinux",
    "usr/local/lib/podvisor/initramfs.cpio",
    "usr/local/lib/podvisor/arm64/Image",
    "usr/local/lib/podvisor/arm64/initramfs.cpio",
    "usr/local/lib/podvisor/arm64/initramfs-x86.cpio",
    "usr/local/lib/podvisor/installed-files",
    "usr/local/lib/systemd/system/podvisord.service",
    "usr/local/share/podvisor/cni/10-podvisor.conflist",
    "usr/local/share/podvisor/kubelet/kubelet-config.yaml",
    "usr/local/share/podvisor/kubelet/runtimeclass.yaml",
    "etc/podvisor/config.json",
    "etc/cni/net.d/10-podvisor.conflist",
}


def make(target, destdir, **extra):
    args = ["make", "-s", "-C", REPO, target, "BUILD=" + BUILD, "SAN=" + SAN, "DESTDIR=" + str(destdir)]
    args += ["%s=%s" % kv for kv in extra.items()]
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, "make %s failed:\n%s" % (target, out)
    return out


def tree(root):
    files, dirs = set(), set()
    for d, subdirs, names in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel != ".":
            dirs.add(rel)
        for n in names:
            files.add(os.path.normpath(os.path.join(rel, n)))
    return files, dirs


def test_install_and_uninstall_exact_files(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    out = make("install", root)
    files, _ = tree(root)
    assert files == INSTALLED, "unexpected: %s, missing: %s" % (files - INSTALLED, INSTALLED - files)
    # The default network was missing and install said it put the sample there.
    assert "10-podvisor.conflist" in out and "sample bridge network" in out, out
    for b in ("podvisord", "podvisor-shim"):
        assert os.access(root / "usr/local/bin" / b, os.X_OK)
    unit = (root / "usr/local/lib/systemd/system/podvisord.service").read_text()
    assert "ExecStart=/usr/local/bin/podvisord\n" in unit
    for key in ("Type=notify", "KillMode=process", "Delegate=yes", "Restart=on-failure"):
        assert key + "\n" in unit
    json.loads((root / "etc/podvisor/config.json").read_text())
    # Installing again changes nothing in the file set.
    make("install", root)
    assert tree(root)[0] == INSTALLED
    make("uninstall", root)
    files, dirs = tree(root)
    assert files == set() and dirs == set(), (files, dirs)


def test_install_keeps_existing_config_and_network(tmp_path):
    root = tmp_path / "root"
    (root / "etc/podvisor").mkdir(parents=True)
    (root / "etc/cni/net.d").mkdir(parents=True)
    mine = '{"log_level": "debug"}\n'
    (root / "etc/podvisor/config.json").write_text(mine)
    net = {"cniVersion": "1.0.0", "name": "mine", "plugins": [{"type": "bridge"}]}
    (root / "etc/cni/net.d/99-mine.conflist").write_text(json.dumps(net))
    out = make("install", root)
    assert (root / "etc/podvisor/config.json").read_text() == mine
    assert not (root / "etc/cni/net.d/10-podvisor.conflist").exists()
    assert "already has a network" in out, out
    make("uninstall", root)
    files, _ = tree(root)
    assert files == {"etc/podvisor/config.json", "etc/cni/net.d/99-mine.conflist"}
    assert (root / "etc/podvisor/config.json").read_text() == mine


def test_uninstall_keeps_a_changed_config(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    make("install", root)
    cfg = root / "etc/podvisor/config.json"
    cfg.write_text('{"log_level": "warn"}\n')
    out = make("uninstall", root)
    assert "changed since it was installed" in out
    assert tree(root)[0] == {"etc/podvisor/config.json"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("inst") / "root"
    root.mkdir()
    make("install", root)
    yield root
    make("uninstall", root)


def check_config(tmp_path, root, **runtime):
    """A config for the installed podvisord: the tree's CNI dir, private root and state dirs."""
    cfg = {"root": str(tmp_path / "lib"), "state_dir": str(tmp_path / "run"),
           "network": {"cni_conf_dir": str(root / "etc/cni/net.d")}}
    if runtime:
        cfg["runtime"] = runtime
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def run_check(binary, config):
    r = subprocess.run([binary, "--check", "--config", config], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def check_lines(out):
    lines = {}
    for line in out.splitlines():
        m = re.match(r"^(ok|FAIL|note)\s+([^:]+): (.*)$", line)
        if m:
            lines[m.group(2)] = (m.group(1), m.group(3))
    return lines


def test_installed_check_passes_and_names_the_accelerator(installed, tmp_path):
    binary = str(installed / "usr/local/bin/podvisord")
    rc, out, err = run_check(binary, check_config(tmp_path, installed))
    lines = check_lines(out)
    assert rc == 0, out + err
    assert out.rstrip().endswith("ready to run pods"), out
    for what in ("privileges", "QEMU", "qemu-img", "shim", "guest kernel", "guest initramfs", "accelerator",
                 "CNI config", "CNI plugins", "OCI runtime (host pods)", "root dir", "state dir", "disk space"):
        assert what in lines, "no line for %s:\n%s" % (what, out)
        assert lines[what][0] in ("ok", "note"), out
    # The installed tree's own assets, found without any runtime.* config.
    assert lines["guest kernel"][1].startswith(str(installed / "usr/local/lib/podvisor/vmlinux")), out
    assert lines["guest initramfs"][1].startswith(str(installed / "usr/local/lib/podvisor/initramfs.cpio")), out
    assert lines["shim"][1].startswith(str(installed / "usr/local/bin/podvisor-shim")), out
    # The arm64 guest installed beside it is found too (arm64 pods, docs/arm64.md).
    assert lines["arm64 guest"][0] == "ok", out
    assert lines["arm64 guest"][1].startswith(str(installed / "usr/local/lib/podvisor/arm64/Image")), out
    assert "QEMU emulator version" in lines["QEMU"][1]
    assert "bridge" in lines["CNI plugins"][1] and "host-local" in lines["CNI plugins"][1]
    # Whatever this machine has, the accelerator line says what and why; without a usable
    # KVM it names it and the check still passes (TCG works).
    tag, text = lines["accelerator"]
    if text.startswith("tcg"):
        assert tag == "note" and "KVM" in text, text
    else:
        assert tag == "ok", text


def test_check_fails_naming_what_is_missing(installed, tmp_path):
    binary = str(installed / "usr/local/bin/podvisord")
    empty = tmp_path / "nonet"
    empty.mkdir()
    cfg = {"root": str(tmp_path / "lib"), "network": {"cni_conf_dir": str(empty)},
           "runtime": {"kernel": str(tmp_path / "no-vmlinux"), "oci_runtime": "/nonexistent/runc"}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    rc, out, _ = run_check(binary, str(tmp_path / "c.json"))
    lines = check_lines(out)
    assert rc == 1, out
    assert lines["guest kernel"][0] == "FAIL" and str(tmp_path / "no-vmlinux") in lines["guest kernel"][1]
    assert lines["CNI config"][0] == "FAIL" and str(empty) in lines["CNI config"][1]
    assert lines["OCI runtime (host pods)"][0] == "FAIL" and "/nonexistent/runc" in lines["OCI runtime (host pods)"][1]
    assert lines["guest initramfs"][0] == "ok"
    assert "3 requirements missing" in out


def test_installed_daemon_serves_with_installed_assets(installed, start_daemon):
    d = start_daemon({"network": {"cni_conf_dir": str(installed / "etc/cni/net.d")}},
                     binary=str(installed / "usr/local/bin/podvisord"))
    r = d.runtime.Status(cri_pb2.StatusRequest(verbose=True), timeout=10)
    conds = {c.type: c for c in r.status.conditions}
    assert conds["RuntimeReady"].status, conds["RuntimeReady"].message
    assert conds["NetworkReady"].status, conds["NetworkReady"].message
    vm = json.loads(r.info["info"])["vm"]
    assert vm["kernel"] == str(installed / "usr/local/lib/podvisor/vmlinux")
    assert vm["initramfs"] == str(installed / "usr/local/lib/podvisor/initramfs.cpio")


def test_version_flag_matches_the_cri_version(daemon):
    out = subprocess.run([PODVISORD, "--version"], stdout=subprocess.PIPE, check=True).stdout.decode()
    v = daemon.runtime.Version(cri_pb2.VersionRequest(), timeout=10).runtime_version
    assert out.split()[0] == "podvisord" and out.split()[1] == v, out


def test_systemd_unit_verifies(installed, tmp_path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    # The unit as installed for a prefix that exists on this machine: its ExecStart must resolve.
    unit = (installed / "usr/local/lib/systemd/system/podvisord.service").read_text()
    unit = unit.replace("ExecStart=/usr/local/bin/podvisord", "ExecStart=%s" % (installed / "usr/local/bin/podvisord"))
    path = tmp_path / "podvisord.service"
    path.write_text(unit)
    r = subprocess.run([tool, "verify", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode()
    assert r.returncode == 0, out
    assert "podvisord.service" not in out, out  # verify prints nothing about a clean unit


def test_sd_notify_ready_once_serving(tmp_path):
    """Type=notify: READY=1 arrives when the CRI socket already answers; STOPPING=1 on SIGTERM."""
    notify = str(tmp_path / "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(notify)
    s.settimeout(30)
    sock = str(tmp_path / "cri.sock")
    log = open(tmp_path / "log", "wb")
    p = subprocess.Popen([PODVISORD, "--listen", sock, "--config", check_config(tmp_path, tmp_path)],
                         stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, NOTIFY_SOCKET=notify))
    try:
        msg = s.recv(4096).decode()
        assert "READY=1" in msg.split("\n"), msg
        ch = grpc.insecure_channel("unix:" + sock)
        rt = ServiceStub(ch, "RuntimeService")
        assert rt.Version(cri_pb2.VersionRequest(), timeout=5).runtime_name == "podvisor"
        ch.close()
        p.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in s.recv(4096).decode()
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
        s.close()


def test_default_network_and_network_ready_without_restart(start_daemon, tmp_path):
    """No CNI config: NetworkReady=false with the reason; the sample installed by
    `mk/install.sh cni` (what make run and make install do) makes it true, no restart."""
    conf = tmp_path / "net.d"
    conf.mkdir()
    d = start_daemon({"network": {"cni_conf_dir": str(conf)}})

    def net_ready():
        r = d.runtime.Status(cri_pb2.StatusRequest(), timeout=10)
        return [c for c in r.status.conditions if c.type == "NetworkReady"][0]

    c = net_ready()
    assert not c.status and c.reason == "NetworkPluginNotReady" and str(conf) in c.message
    assert os.listdir(conf) == []  # podvisord writes no config itself
    r = subprocess.run(["bash", os.path.join(REPO, "mk/install.sh"), "cni", str(conf)], stdout=subprocess.PIPE,
                       check=True)
    assert b"installed podvisor's sample bridge network" in r.stdout
    assert os.listdir(conf) == ["10-podvisor.conflist"]
    c = net_ready()
    assert c.status, c.message
    # A dir that has a network is left alone, silently.
    r = subprocess.run(["bash", os.path.join(REPO, "mk/install.sh"), "cni", str(conf)], stdout=subprocess.PIPE,
                       check=True)
    assert r.stdout == b""
