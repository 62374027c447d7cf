"""Exec, Attach and PortForward through the CRI streaming server, into a real pod VM.

Clients are third-party: a SPDY client on Debian's github.com/docker/spdystream
(e2e/spdyclient, built with Debian's golang), python3-websocket for WebSocket, and
crictl v1.29 from ../shared/cri-tools where it is present. One pod VM serves the module.
"""
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request

import grpc
import pytest
import websocket

import cri_pb2
from image_util import BUSYBOX, Entry, Image, Registry, free_port, make_tar
from net_util import NetEnv
from test_pods import ctr_config, log_records, pod_config, wait_state

BUILD = os.environ.get("PODVISOR_BUILD", os.path.join(os.path.dirname(__file__), "..", "build"))
SPDYCLIENT = os.path.join(BUILD, "bin", "pv-spdyclient")
CRICTL = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "cri-tools", "crictl")
APPLETS = ["sh", "echo", "sleep", "cat", "stty", "tty", "httpd", "nc", "head", "dd", "md5sum", "wc", "true",
           "false", "kill", "mkdir", "read", "test", "["]

# The main container: two HTTP servers listening on the pod's loopback only, and a TCP
# echo server, then it sleeps.
MAIN_CMD = ["/bin/sh", "-c",
            "mkdir -p /w1 /w2 && echo hello-8080 > /w1/index.html && echo hello-8081 > /w2/index.html && "
            "httpd -p 127.0.0.1:8080 -h /w1 && httpd -p 127.0.0.1:8081 -h /w2 && "
            "echo main-ready && exec sleep 100000"]


def stream_image():
    bb = open(BUSYBOX, "rb").read()
    entries = [Entry("bin", kind="dir", mode=0o755), Entry("bin/busybox", bb, mode=0o755)]
    entries += [Entry("bin/" + a, kind="symlink", link="busybox", mode=0o777) for a in APPLETS]
    entries += [Entry("etc", kind="dir", mode=0o755), Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
                Entry("etc/group", b"root:x:0:\n"), Entry("tmp", kind="dir", mode=0o1777)]
    return Image([make_tar(entries)], config_extra={"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]})


@pytest.fixture(scope="module")
def env():
    if not os.path.exists(SPDYCLIENT):
        pytest.skip("%s not built (make builds it with Debian's golang)" % SPDYCLIENT)
    import conftest
    reg = Registry()
    net = NetEnv()
    d = None
    try:
        reg.push_image("test/bbstream", "1", stream_image())
        d = conftest.Daemon({"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir}})
        image = "%s/test/bbstream:1" % reg.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
        logdir = os.path.join(d.dir, "logs")
        os.makedirs(logdir)
        pod_cfg = pod_config("streams", logdir)
        pod = d.runtime.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=pod_cfg), timeout=300).pod_sandbox_id
        e = {"daemon": d, "image": image, "pod": pod, "pod_cfg": pod_cfg, "logdir": logdir,
             "early_token_url": None}
        e["main"] = start(e, "main", MAIN_CMD)
        wait_log(e["main"], e, b"main-ready")
        # A token minted now and never used: the last test checks that it expired.
        e["early_token_url"] = d.runtime.Exec(cri_pb2.ExecRequest(
            container_id=e["main"], cmd=["true"], stdout=True), timeout=30).url
        e["early_token_at"] = time.monotonic()
        yield e
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


def start(env, name, cmd, **kw):
    rt = env["daemon"].runtime
    cfg = ctr_config(env["image"], name, cmd, **kw)
    cid = rt.CreateContainer(cri_pb2.CreateContainerRequest(
        pod_sandbox_id=env["pod"], config=cfg, sandbox_config=env["pod_cfg"]), timeout=120).container_id
    rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)
    return cid


def log_path(env, cid):
    return env["daemon"].runtime.ContainerStatus(cri_pb2.ContainerStatusRequest(container_id=cid),
                                                 timeout=30).status.log_path


def wait_log(cid, env, needle, timeout=60):
    path = log_path(env, cid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and needle in open(path, "rb").read():
            return
        time.sleep(0.2)
    raise AssertionError("%r not in the log of %s" % (needle, cid))


def exec_url(env, cmd, cid=None, stdin=False, tty=False, stdout=True, stderr=None):
    if stderr is None:
        stderr = not tty
    return env["daemon"].runtime.Exec(cri_pb2.ExecRequest(
        container_id=cid or env["main"], cmd=cmd, stdin=stdin, tty=tty, stdout=stdout, stderr=stderr),
        timeout=30).url


def spdy(args, stdin=None, timeout=120):
    return subprocess.run([SPDYCLIENT] + args, input=stdin, capture_output=True, timeout=timeout)


def exec_sync(env, cmd, timeout=30):
    return env["daemon"].runtime.ExecSync(cri_pb2.ExecSyncRequest(container_id=env["main"], cmd=cmd,
                                                                  timeout=timeout), timeout=timeout + 60)


# ---- SPDY exec -------------------------------------------------------------------------------

def test_exec_output_and_exit_codes(env):
    url = exec_url(env, ["/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 3"])
    r = spdy(["exec", url])
    assert r.returncode == 3, r
    assert r.stdout == b"to-out\n"
    assert b"to-err\n" in r.stderr
    assert b"protocol: v4.channel.k8s.io" in r.stderr
    status = json.loads(r.stderr.split(b"error-stream: ", 1)[1])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    r = spdy(["exec", exec_url(env, ["true"])])
    assert r.returncode == 0, r
    assert b'"status":"Success"' in r.stderr
    r = spdy(["exec", exec_url(env, ["false"])])
    assert r.returncode == 1, r


def test_exec_older_protocols(env):
    """v2 (no resize, errors as text): the failure text arrives, no JSON."""
    r = spdy(["exec", exec_url(env, ["/bin/sh", "-c", "echo v2; exit 4"]), "-protocol", "v2.channel.k8s.io"])
    assert r.stdout == b"v2\n"
    assert b"protocol: v2.channel.k8s.io" in r.stderr
    assert b"error-stream: command terminated with non-zero exit code: exit status 4" in r.stderr, r.stderr


def test_exec_binary_stdin_round_trip(env):
    """10 MiB of random bytes through cat and back, byte-exact (credit on every leg)."""
    data = os.urandom(10 << 20)
    r = spdy(["exec", exec_url(env, ["cat"], stdin=True), "-stdin"], stdin=data, timeout=600)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == len(data)
    assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(data).hexdigest()


def test_exec_stdin_eof(env):
    url = exec_url(env, ["/bin/sh", "-c", "wc -c; echo eof-seen"], stdin=True)
    r = spdy(["exec", url, "-stdin"], stdin=b"12345")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"5", b"eof-seen"]


def test_exec_tty_and_resize(env):
    r = spdy(["exec", exec_url(env, ["/bin/sh", "-c", "tty; stty size"], tty=True), "-tty", "-resize", "100x37"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.replace(b"\r", b"").split(b"\n")
    assert lines[0].startswith(b"/dev/pts/"), r.stdout
    assert lines[1] == b"37 100", r.stdout
    # A resize while the process runs is seen by it.
    url = exec_url(env, ["/bin/sh", "-c", "sleep 3; stty size"], tty=True)
    r = spdy(["exec", url, "-tty", "-resize", "80x24", "-resize-later", "132x43"])
    assert r.stdout.replace(b"\r", b"").strip() == b"43 132", r.stdout


def test_exec_client_disconnect_kills_process(env):
    url = exec_url(env, ["/bin/sh", "-c", "echo $$ > /tmp/victim; exec sleep 1000"])
    client = subprocess.Popen([SPDYCLIENT, "exec", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        pid = b""
        while time.monotonic() < deadline and not pid:
            pid = exec_sync(env, ["cat", "/tmp/victim"]).stdout.strip()
            time.sleep(0.2)
        assert pid, "the exec'd process never started"
        assert exec_sync(env, ["kill", "-0", pid.decode()]).exit_code == 0
    finally:
        client.kill()
        client.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if exec_sync(env, ["kill", "-0", pid.decode()]).exit_code != 0:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("process %s still runs after its client went away" % pid)
    exec_sync(env, ["/bin/sh", "-c", "rm -f /tmp/victim"])


# ---- port-forward over SPDY ----------------------------------------------------------------------

def pf_url(env, ports=(8080,)):
    return env["daemon"].runtime.PortForward(cri_pb2.PortForwardRequest(
        pod_sandbox_id=env["pod"], port=list(ports)), timeout=30).url


def pf(env, args, ports=(8080,)):
    r = spdy(["portforward", pf_url(env, ports)] + args)
    assert r.returncode == 0, r.stderr
    return [json.loads(l) for l in r.stdout.splitlines()]


GET = "GET /index.html HTTP/1.0\r\n\r\n"


def test_portforward_to_loopback_server(env):
    """httpd listens on 127.0.0.1 only, inside the pod VM: the forward reaches it."""
    res = pf(env, ["-port", "8080", "-payload", GET])
    assert len(res) == 1
    assert res[0]["error"] == ""
    assert "200 OK" in res[0]["data"] and "hello-8080" in res[0]["data"], res


def test_portforward_two_ports(env):
    res = pf(env, ["-ports", "8080,8081", "-payload", GET], ports=(8080, 8081))
    assert "hello-8080" in res[0]["data"] and "hello-8081" in res[1]["data"], res


def test_portforward_20_concurrent_connections(env):
    res = pf(env, ["-port", "8080", "-conns", "20", "-payload", GET])
    assert len(res) == 20
    for r in res:
        assert r["error"] == "" and "hello-8080" in r["data"], r


def test_portforward_closed_port(env):
    """A closed port fails that connection with kubelet's message; the session goes on."""
    res = pf(env, ["-ports", "9,8080", "-payload", GET], ports=(9, 8080))
    assert res[0]["data"] == ""
    assert res[0]["error"].startswith("error forwarding port 9 to pod %s" % env["pod"]), res[0]
    assert 'failed to connect to localhost:9 inside namespace "%s"' % env["pod"] in res[0]["error"]
    assert "Connection refused" in res[0]["error"]
    assert "hello-8080" in res[1]["data"] and res[1]["error"] == ""
