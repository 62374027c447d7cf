"""The CRI server itself, driven by python3-grpcio: not podvisor's own C code."""
import concurrent.futures
import json
import re
import os
import signal
import socket
import subprocess

import grpc
import pytest

import conftest
import cri_pb2
from conftest import PODVISORD, Daemon


def test_version(daemon):
    r = daemon.runtime.Version(cri_pb2.VersionRequest(version="v1"), timeout=10)
    assert r.runtime_name == "podvisor"
    assert r.runtime_api_version == "v1"
    assert r.version
    assert re.match(r"^\d+\.\d+\.\d+", r.runtime_version), r.runtime_version


def test_status_conditions(start_daemon, tmp_path):
    daemon = start_daemon({"network": {"cni_conf_dir": str(tmp_path)}})
    r = daemon.runtime.Status(cri_pb2.StatusRequest(), timeout=10)
    conds = {c.type: c for c in r.status.conditions}
    assert set(conds) == {"RuntimeReady", "NetworkReady"}
    net = conds["NetworkReady"]
    assert not net.status
    assert net.reason == "NetworkPluginNotReady"
    assert str(tmp_path) in net.message
    rt = conds["RuntimeReady"]
    # Ready exactly when the VM assets the daemon resolved exist.
    build = os.environ["PODVISOR_BUILD"]
    assets = [os.path.join(build, "kernel", "vmlinux"), os.path.join(build, "guest", "initramfs.cpio")]
    if all(os.path.exists(p) for p in assets):
        assert rt.status, rt.message
    else:
        assert not rt.status
        assert rt.reason == "VMAssetsMissing"
        assert "not found at" in rt.message
    assert not r.info  # not verbose


def test_network_ready_with_cni_config(start_daemon, tmp_path):
    conf = {"cniVersion": "1.0.0", "name": "t", "plugins": [{"type": "bridge", "bridge": "pvnone0"}]}
    (tmp_path / "10-t.conflist").write_text(json.dumps(conf))
    d = start_daemon({"network": {"cni_conf_dir": str(tmp_path)}})
    conds = {c.type: c for c in d.runtime.Status(cri_pb2.StatusRequest(), timeout=10).status.conditions}
    assert conds["NetworkReady"].status, conds["NetworkReady"].message
    d2 = start_daemon({"network": {"enabled": False}})
    conds = {c.type: c for c in d2.runtime.Status(cri_pb2.StatusRequest(), timeout=10).status.conditions}
    assert not conds["NetworkReady"].status
    assert conds["NetworkReady"].reason == "NetworkDisabled"


def test_status_reports_missing_assets(start_daemon, tmp_path):
    d = start_daemon({"runtime": {"kernel": str(tmp_path / "no-kernel")}})
    r = d.runtime.Status(cri_pb2.StatusRequest(), timeout=10)
    rt = [c for c in r.status.conditions if c.type == "RuntimeReady"][0]
    assert not rt.status
    assert rt.reason == "VMAssetsMissing"
    assert str(tmp_path / "no-kernel") in rt.message


def test_status_verbose_info_is_json(daemon):
    r = daemon.runtime.Status(cri_pb2.StatusRequest(verbose=True), timeout=10)
    info = json.loads(r.info["info"])
    assert info["config"]["listen"] == daemon.socket
    assert info["config"]["root"] == daemon.root
    assert info["vm"]["kernel"].endswith("vmlinux")
    assert info["pod_cidr"] is None


def test_runtime_config_cgroup_driver(start_daemon):
    d = start_daemon()
    r = d.runtime.RuntimeConfig(cri_pb2.RuntimeConfigRequest(), timeout=10)
    assert r.linux.cgroup_driver == cri_pb2.CGROUPFS
    d2 = start_daemon({"cgroup_driver": "systemd"})
    r = d2.runtime.RuntimeConfig(cri_pb2.RuntimeConfigRequest(), timeout=10)
    assert r.linux.cgroup_driver == cri_pb2.SYSTEMD


def test_update_runtime_config_keeps_pod_cidr(daemon):
    req = cri_pb2.UpdateRuntimeConfigRequest(
        runtime_config=cri_pb2.RuntimeConfig(network_config=cri_pb2.NetworkConfig(pod_cidr="10.88.0.0/16")))
    daemon.runtime.UpdateRuntimeConfig(req, timeout=10)
    info = json.loads(daemon.runtime.Status(cri_pb2.StatusRequest(verbose=True), timeout=10).info["info"])
    assert info["pod_cidr"] == "10.88.0.0/16"
    # Survives a restart of the daemon on the same root.
    daemon.stop()
    with open(os.path.join(daemon.root, "runtime-config.json")) as f:
        assert json.load(f)["pod_cidr"] == "10.88.0.0/16"


def test_update_runtime_config_rejects_bad_cidr(daemon):
    req = cri_pb2.UpdateRuntimeConfigRequest(
        runtime_config=cri_pb2.RuntimeConfig(network_config=cri_pb2.NetworkConfig(pod_cidr="10.88.0.0/99")))
    with pytest.raises(grpc.RpcError) as e:
        daemon.runtime.UpdateRuntimeConfig(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pod_cidr" in e.value.details()


def test_unimplemented_method_names_itself(daemon):
    with pytest.raises(grpc.RpcError) as e:
        daemon.runtime.CheckpointContainer(cri_pb2.CheckpointContainerRequest(container_id="x"), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "CheckpointContainer" in e.value.details()


def test_unknown_method(daemon):
    call = daemon.channel.unary_unary("/runtime.v1.RuntimeService/NoSuchCall",
                                      request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        call(b"", timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "NoSuchCall" in e.value.details()


def test_garbage_request_is_invalid_argument(daemon):
    call = daemon.channel.unary_unary("/runtime.v1.RuntimeService/Version",
                                      request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        call(b"\xff\xff\xff\xff\x0f garbage", timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "VersionRequest" in e.value.details()
    # The daemon is still healthy afterwards.
    assert daemon.runtime.Version(cri_pb2.VersionRequest(), timeout=10).runtime_name == "podvisor"


def test_200_concurrent_version_calls(daemon):
    def one(_):
        return daemon.runtime.Version(cri_pb2.VersionRequest(), timeout=60).runtime_name

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        futures = [daemon.runtime.Version.future(cri_pb2.VersionRequest(), timeout=60) for _ in range(200)]
        names = [f.result().runtime_name for f in futures]
        names += list(pool.map(one, range(50)))
    assert names == ["podvisor"] * 250


def test_sigterm_removes_socket(daemon):
    assert os.path.exists(daemon.socket)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    assert not os.path.exists(daemon.socket)
    assert "podvisord stopped" in daemon.logs()


def test_sigint_shuts_down_cleanly(daemon):
    daemon.signal(signal.SIGINT)
    assert daemon.wait(timeout=30) == 0
    assert not os.path.exists(daemon.socket)


def test_second_daemon_refuses_live_socket(daemon):
    out = subprocess.run([PODVISORD, "--listen", daemon.socket, "--root", daemon.root + "2",
                          "--state-dir", daemon.state + "2"], capture_output=True, timeout=30)
    assert out.returncode != 0
    assert b"already running" in out.stderr
    # The first one still answers.
    assert daemon.runtime.Version(cri_pb2.VersionRequest(), timeout=10).runtime_name == "podvisor"


def test_stale_socket_is_replaced(start_daemon, tmp_path):
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # a socket file nobody listens on, as a crashed daemon leaves
    d = start_daemon(socket=path)
    assert d.runtime.Version(cri_pb2.VersionRequest(), timeout=10).runtime_name == "podvisor"
    assert "remove stale socket" not in d.logs()


@pytest.mark.parametrize("content,needles", [
    ('{\n  "root": "/tmp/x",\n  "colour": "blue"\n}', ['config.json:3:', '"colour"', 'unknown key']),
    ('{\n  "root": "/tmp/x",\n  "listen" "/x"\n}', ['config.json:3:', 'invalid JSON']),
    ('{"log_level": "loud"}', ['"log_level"', 'debug, info, warn, error']),
    ('{"runtime": {"kernal": "/x"}}', ['"runtime.kernal"', 'unknown key']),
    ('{"network": {"cni_dir": "/x"}}', ['"network.cni_dir"', 'unknown key']),
    ('{"runtime": {"templates": "yes"}}', ['"runtime.templates"', 'true or false']),
    ('{"image": {"mirrorz": {}}}', ['mirrorz']),
])
def test_bad_config_is_clear_error(tmp_path, content, needles):
    cfg = tmp_path / "config.json"
    cfg.write_text(content)
    out = subprocess.run([PODVISORD, "--config", str(cfg), "--listen", str(tmp_path / "s.sock"),
                          "--root", str(tmp_path / "root"), "--state-dir", str(tmp_path / "state")],
                         capture_output=True, timeout=30)
    assert out.returncode != 0
    # Before logging is set up the error is plain text; after, it is a log record's field.
    err = out.stderr.decode()
    failed = [f for f in map(conftest.logfmt, err.splitlines()) if f.get("msg") == "podvisord failed"]
    if failed:
        err = failed[0]["error"]
    for n in needles:
        assert n in err, err
    assert not (tmp_path / "s.sock").exists()


def test_flags_override_config(start_daemon, tmp_path):
    d = start_daemon({"log_level": "error"})
    # The fixture passes --log-level debug, which must win over the file's "error".
    d.runtime.Version(cri_pb2.VersionRequest(), timeout=10)
    d.stop()
    assert "level=debug" in d.logs()
