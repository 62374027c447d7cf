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
def registry():
    if not os.path.exists(SPDYCLIENT):
        pytest.skip("%s not built (make builds it with Debian's golang)" % SPDYCLIENT)
    reg = Registry()
    try:
        reg.push_image("test/bbstream", "1", stream_image())
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def env(registry):
    import conftest
    reg = registry
    net = NetEnv()
    d = None
    try:
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
        # A port-forward session opened now and left idle: the last test uses it after a minute.
        port = free_port()
        e["idle_pf_port"] = port
        e["idle_pf"] = subprocess.Popen([SPDYCLIENT, "portforward", pf_url(e), "-port", "8080", "-listen",
                                         "127.0.0.1:%d" % port], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert e["idle_pf"].stdout.readline() == b"listening\n"
        yield e
        e["idle_pf"].kill()
        e["idle_pf"].wait()
        try:
            d.runtime.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
            d.runtime.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        except grpc.RpcError:
            pass
    finally:
        if d:
            d.cleanup()
        net.cleanup()


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


def test_exec_stdin_before_stdout_is_opened(env):
    """A client may send stdin before it opens stdout: the stdout SYN_STREAM is then behind
    megabytes of stdin, and the server must read on to find it (no deadlock, nothing lost)."""
    data = os.urandom(6 << 20)
    r = spdy(["exec", exec_url(env, ["cat"], stdin=True), "-stdin", "-open-delay", "1s"], stdin=data, timeout=600)
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(data).hexdigest()


def test_exec_stdin_eof(env):
    url = exec_url(env, ["/bin/sh", "-c", "wc -c; echo eof-seen"], stdin=True)
    r = spdy(["exec", url, "-stdin"], stdin=b"12345")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"5", b"eof-seen"]


def test_exec_tty_and_resize(env):
    cmd = ["/bin/sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; stty size"]
    r = spdy(["exec", exec_url(env, cmd, tty=True), "-tty", "-resize", "100x37"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.replace(b"\r", b"").split(b"\n")
    assert lines[0] == b"on-a-tty", r.stdout
    assert lines[1] == b"37 100", r.stdout
    # A client whose first size comes a moment after its streams: the process still starts at it.
    r = spdy(["exec", exec_url(env, ["/bin/sh", "-c", "stty size"], tty=True), "-tty", "-resize", "90x33",
              "-resize-delay", "300ms"])
    assert r.returncode == 0 and r.stdout.replace(b"\r", b"").strip() == b"33 90", (r.stdout, r.stderr)
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


# ---- WebSocket (python3-websocket) ---------------------------------------------------------------

def ws_connect(url, protocols):
    ws = websocket.create_connection(url.replace("http://", "ws://", 1), subprotocols=protocols, timeout=120)
    return ws


def ws_read_all(ws):
    """Every message until the server closes: [(channel, payload)] (binary protocols)."""
    msgs = []
    while True:
        try:
            op, data = ws.recv_data()
        except websocket.WebSocketConnectionClosedException:
            break
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        msgs.append((op, data))
    return msgs


def by_channel(msgs, base64_text=False):
    out = {}
    for op, data in msgs:
        if base64_text:
            ch, payload = data[0] - ord("0"), base64.b64decode(data[1:])
        else:
            ch, payload = data[0], data[1:]
        out.setdefault(ch, b"")
        out[ch] += payload
    return out


def test_ws_exec_v5_stdin_close_and_exit_code(env):
    url = exec_url(env, ["/bin/sh", "-c", "cat; echo done >&2; exit 7"], stdin=True)
    ws = ws_connect(url, ["v5.channel.k8s.io", "v4.channel.k8s.io"])
    assert ws.getsubprotocol() == "v5.channel.k8s.io"
    ws.send_binary(b"\x00" + b"from-ws\n")
    ws.send_binary(b"\xff\x00")  # v5: close stdin
    got = by_channel(ws_read_all(ws))
    ws.close()
    assert got[1] == b"from-ws\n"
    assert got[2] == b"done\n"
    status = json.loads(got[3])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"][0]["message"] == "7"


def test_ws_exec_v4_base64(env):
    ws = ws_connect(exec_url(env, ["echo", "hi"]), ["v4.base64.channel.k8s.io"])
    assert ws.getsubprotocol() == "v4.base64.channel.k8s.io"
    got = by_channel(ws_read_all(ws), base64_text=True)
    ws.close()
    assert got[1] == b"hi\n"
    assert json.loads(got[3])["status"] == "Success"


def test_ws_portforward(env):
    ws = ws_connect(pf_url(env, (8081,)), ["v4.channel.k8s.io"])
    first = [ws.recv_data()[1], ws.recv_data()[1]]
    assert sorted(first) == [b"\x00\x91\x1f", b"\x01\x91\x1f"]  # 8081, little-endian, on both channels
    ws.send_binary(b"\x00" + GET.encode())
    got = by_channel(ws_read_all(ws))
    ws.close()
    assert b"hello-8081" in got[0]
    assert got.get(1, b"") == b""


# ---- attach ----------------------------------------------------------------------------------------

def test_attach_to_container_with_stdin(env):
    """stdin goes to the main process; its output reaches the attach and the CRI log alike."""
    cmd = ["/bin/sh", "-c", "echo reader-ready; while read l; do echo got:$l; [ \"$l\" = quit ] && exit 0; done"]
    cid = start(env, "reader", cmd, stdin=True)
    wait_log(cid, env, b"reader-ready")
    url = env["daemon"].runtime.Attach(cri_pb2.AttachRequest(container_id=cid, stdin=True, stdout=True,
                                                             stderr=True), timeout=30).url
    r = spdy(["exec", url, "-stdin"], stdin=b"hello\nquit\n")
    assert r.returncode == 0, r.stderr
    assert b"got:hello\n" in r.stdout and b"got:quit\n" in r.stdout, r.stdout
    st = wait_state(env, cid, cri_pb2.CONTAINER_EXITED)
    assert st.exit_code == 0
    lines = [rec[2] for rec in log_records(st.log_path)]
    assert b"got:hello" in lines and b"got:quit" in lines, lines


def test_attach_stdin_once(env):
    """stdin_once: the container's stdin closes when the first attach's stdin ends."""
    cid = start(env, "once", ["/bin/sh", "-c", "echo once-ready; cat; echo stdin-closed"], stdin=True,
                stdin_once=True)
    wait_log(cid, env, b"once-ready")
    url = env["daemon"].runtime.Attach(cri_pb2.AttachRequest(container_id=cid, stdin=True, stdout=True,
                                                             stderr=True), timeout=30).url
    r = spdy(["exec", url, "-stdin"], stdin=b"only-line\n")
    assert b"only-line\n" in r.stdout and b"stdin-closed\n" in r.stdout, r
    st = wait_state(env, cid, cri_pb2.CONTAINER_EXITED)
    assert st.exit_code == 0


def test_attach_tty_and_resize(env):
    """A tty container: attach gets its terminal, and a resize reaches the main process's pty."""
    cmd = ["/bin/sh", "-c", "echo tty-ready; read x; sleep 1; stty size; sleep 1"]
    cid = start(env, "ttyctr", cmd, stdin=True, tty=True)
    wait_log(cid, env, b"tty-ready")
    url = env["daemon"].runtime.Attach(cri_pb2.AttachRequest(container_id=cid, stdin=True, stdout=True, tty=True),
                                       timeout=30).url
    r = spdy(["exec", url, "-stdin", "-tty", "-resize", "77x22"], stdin=b"go\n")
    assert b"22 77" in r.stdout.replace(b"\r", b""), r
    wait_state(env, cid, cri_pb2.CONTAINER_EXITED)


def test_portforward_pod_without_network(registry, start_daemon):
    """A pod with no network interface at all: port-forward still reaches its loopback."""
    d = start_daemon({"network": {"enabled": False}})
    image = "%s/test/bbstream:1" % registry.host
    d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
    logdir = os.path.join(d.dir, "logs")
    os.makedirs(logdir)
    pod_cfg = pod_config("nonet", logdir)
    pod = d.runtime.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=pod_cfg), timeout=300).pod_sandbox_id
    e = {"daemon": d, "image": image, "pod": pod, "pod_cfg": pod_cfg}
    try:
        cid = start(e, "main", MAIN_CMD)
        wait_log(cid, e, b"main-ready")
        res = pf(e, ["-port", "8080", "-payload", GET])
        assert "hello-8080" in res[0]["data"], res
    finally:
        d.runtime.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        d.runtime.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)


# ---- tokens and bad requests -------------------------------------------------------------------------

def http_status(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_token_single_use_unknown_and_bad_upgrade(env):
    url = exec_url(env, ["true"])
    assert spdy(["exec", url]).returncode == 0
    r = spdy(["exec", url])
    assert r.returncode == 126 and b"upgrade refused: 404" in r.stderr, r.stderr
    base = url.rsplit("/", 2)[0]
    assert http_status(base + "/exec/" + "0" * 32)[0] == 404
    assert http_status(base + "/nowhere")[0] == 404
    code, body = http_status(exec_url(env, ["true"]))  # no Upgrade header
    assert code == 400 and b"Upgrade" in body, body
    r = spdy(["exec", exec_url(env, ["true"]), "-protocol", "v9.channel.k8s.io"])
    assert b"upgrade refused: 400" in r.stderr and b"v4.channel.k8s.io" in r.stderr, r.stderr


def test_cri_errors(env):
    rt = env["daemon"].runtime
    with pytest.raises(grpc.RpcError) as e:
        rt.Exec(cri_pb2.ExecRequest(container_id="0" * 64, cmd=["true"], stdout=True), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        rt.Exec(cri_pb2.ExecRequest(container_id="nosuch", cmd=["true"], stdout=True), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not an id" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        rt.Exec(cri_pb2.ExecRequest(container_id=env["main"], cmd=["true"], tty=True, stderr=True), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "tty and stderr" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        rt.Exec(cri_pb2.ExecRequest(container_id=env["main"], cmd=["true"]), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        rt.PortForward(cri_pb2.PortForwardRequest(pod_sandbox_id="0" * 64, port=[80]), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        rt.PortForward(cri_pb2.PortForwardRequest(pod_sandbox_id=env["pod"], port=[70000]), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    done = start(env, "done", ["true"])
    wait_state(env, done, cri_pb2.CONTAINER_EXITED)
    with pytest.raises(grpc.RpcError) as e:
        rt.Attach(cri_pb2.AttachRequest(container_id=done, stdout=True), timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "not running" in e.value.details()


# ---- crictl ------------------------------------------------------------------------------------------

def crictl(env, *args, **kw):
    sock = "unix://" + env["daemon"].socket
    return [CRICTL, "--runtime-endpoint", sock, "--image-endpoint", sock, "--timeout", "60s"] + list(args)


needs_crictl = pytest.mark.skipif(not os.path.exists(CRICTL), reason="crictl not in ../shared/cri-tools")


@needs_crictl
def test_crictl_exec_it(env):
    """crictl exec -it on a terminal (script gives it one): the pod sees our size and a tty; the exit
    code comes back."""
    cmd = "stty cols 91 rows 31; %s" % " ".join(crictl(env, "exec", "-it", env["main"], "/bin/sh", "-c",
                                                      "'stty size; [ -t 0 ] && echo on-a-tty; exit 5'"))
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, timeout=120)
    out = r.stdout.replace(b"\r", b"")
    assert b"31 91\n" in out, out
    assert b"on-a-tty" in out, out
    # crictl v1.29 reports a command's exit code in its message and exits 1 itself.
    assert b"command terminated with exit code 5" in out, out
    assert r.returncode == 1, (r.returncode, out)


@needs_crictl
def test_crictl_attach(env):
    cmd = ["/bin/sh", "-c", "echo r2-ready; while read l; do echo seen:$l; [ \"$l\" = quit ] && exit 0; done"]
    cid = start(env, "reader2", cmd, stdin=True)
    wait_log(cid, env, b"r2-ready")
    r = subprocess.run(crictl(env, "attach", "-i", cid), input=b"abc\nquit\n", capture_output=True, timeout=120)
    assert b"seen:abc" in r.stdout, r


@needs_crictl
def test_crictl_port_forward_and_curl(env):
    port = free_port()
    pf_proc = subprocess.Popen(crictl(env, "port-forward", env["pod"], "%d:8080" % port),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        for _ in range(3):  # one session, several connections
            r = subprocess.run(["curl", "-sS", "--max-time", "60", "http://127.0.0.1:%d/index.html" % port],
                               capture_output=True, timeout=90)
            assert r.stdout == b"hello-8080\n", r
    finally:
        pf_proc.terminate()
        pf_proc.wait(timeout=30)


# ---- TLS ---------------------------------------------------------------------------------------------

def test_tls_streaming_server(start_daemon, tmp_path):
    """With streaming.tls_cert/tls_key the server speaks HTTPS on the configured port."""
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    d = start_daemon({"streaming": {"address": "127.0.0.1", "port": port, "tls_cert": str(cert),
                                    "tls_key": str(key)}, "network": {"enabled": False}})
    assert "url=https://127.0.0.1:%d" % port in d.logs()
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    try:
        urllib.request.urlopen("https://127.0.0.1:%d/exec/%s" % (port, "a" * 32), context=ctx, timeout=30)
        raise AssertionError("an unknown token was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 404


def test_bad_streaming_config_stops_the_daemon(tmp_path):
    """A TLS file that cannot be read stops podvisord at start with the path in the error."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"streaming": {"tls_cert": str(tmp_path / "missing.pem"), "tls_key": "/x"},
                               "network": {"enabled": False}}))
    podvisord = os.path.join(BUILD, "bin", "podvisord")
    r = subprocess.run([podvisord, "--config", str(cfg), "--listen", str(tmp_path / "s.sock"), "--root",
                        str(tmp_path / "root"), "--state-dir", str(tmp_path / "state")],
                       capture_output=True, timeout=60)
    assert r.returncode == 1, r
    assert b"missing.pem" in r.stderr, r.stderr


# ---- last: a token nobody used has expired ----------------------------------------------------------

def test_token_expires_after_60s(env):
    left = 61 - (time.monotonic() - env["early_token_at"])
    if left > 0:
        time.sleep(left)
    r = spdy(["exec", env["early_token_url"]])
    assert b"upgrade refused: 404" in r.stderr, r.stderr


def test_idle_portforward_session_still_forwards(env):
    """A port-forward session left idle for over a minute still carries new connections."""
    with urllib.request.urlopen("http://127.0.0.1:%d/index.html" % env["idle_pf_port"], timeout=60) as r:
        assert r.read() == b"hello-8080\n"
