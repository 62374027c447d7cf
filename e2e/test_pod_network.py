"""Pod networking end to end: pods in VMs on a real CNI bridge (Debian's plugins), reached by IP.

The test makes its own bridge, subnet and IPAM directory (net_util.NetEnv), so nothing
collides with another network; everything is removed by name afterwards.
"""
import os
import socket
import subprocess
import threading
import time

import pytest

import conftest
import cri_pb2
from image_util import Registry, free_port
from net_util import NetEnv, link_names, nat_rules
from test_pods import busybox_image, create_start, exec_sync, pod_config, wait_gone


@pytest.fixture(scope="module")
def world():
    reg = Registry()
    reg.push_image("test/busybox", "1", busybox_image())
    net = NetEnv()
    d = conftest.Daemon({"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir}})
    try:
        image = "%s/test/busybox:1" % reg.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
        logdir = os.path.join(d.dir, "logs")
        os.makedirs(logdir)
        yield {"daemon": d, "image": image, "net": net, "logdir": logdir}
    finally:
        d.cleanup()
        net.cleanup()
        reg.stop()


def run_pod(world, name, **kw):
    rt = world["daemon"].runtime
    cfg = pod_config(name, world["logdir"], **kw)
    pod = rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
    ip = rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=30).status.network.ip
    return dict(world, pod=pod, pod_cfg=cfg, ip=ip)


def remove_pod(world, pod):
    rt = world["daemon"].runtime
    rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
    rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)


def test_two_pods_reach_each_other(world):
    a = run_pod(world, "alpha")
    b = run_pod(world, "beta")
    try:
        assert a["ip"] and b["ip"] and a["ip"] != b["ip"]
        create_start(a, "srv", ["/bin/sh", "-c", "while true; do nc -l -p 7000 -e /bin/cat; done"])
        cb = create_start(b, "cli", ["/bin/sleep", "100000"])
        r = exec_sync(b, cb, ["/bin/ping", "-c", "2", "-W", "10", a["ip"]], timeout=60)
        assert r.exit_code == 0, r.stdout + r.stderr
        # TCP: a line sent from beta comes back from alpha's echo server.
        deadline = time.monotonic() + 60
        out = b""
        while time.monotonic() < deadline:
            r = exec_sync(b, cb, ["/bin/sh", "-c", "echo across-vms | nc -w 5 %s 7000" % a["ip"]], timeout=60)
            out = r.stdout
            if out.strip() == b"across-vms":
                break
            time.sleep(0.5)
        assert out.strip() == b"across-vms", (out, r.stderr)
    finally:
        remove_pod(world, a["pod"])
        remove_pod(world, b["pod"])


def test_pod_reaches_host_side_server(world):
    """A server listening on the bridge's host address answers a pod."""
    # The pod first: its CNI ADD brings the bridge (and its host address) up.
    p = run_pod(world, "client")
    srv = None
    try:
        gw = world["net"].gateway
        port = free_port()
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((gw, port))
        srv.listen(4)
        got = []

        def serve():
            srv.settimeout(120)
            try:
                c, peer = srv.accept()
                got.append((c.recv(100), peer[0]))
                c.sendall(b"hello-pod\n")
                c.close()
            except OSError:
                pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        c = create_start(p, "cli", ["/bin/sleep", "100000"])
        r = exec_sync(p, c, ["/bin/sh", "-c", "echo from-pod | nc -w 10 %s %d" % (gw, port)], timeout=60)
        assert r.stdout.strip() == b"hello-pod", (r.stdout, r.stderr)
        t.join(30)
        assert got and got[0][0].strip() == b"from-pod"
        assert got[0][1] == p["ip"]  # the pod's own IP, not NATed
    finally:
        if srv:
            srv.close()
        remove_pod(world, p["pod"])


def test_host_port_reaches_server_in_pod(world):
    host_port = free_port()
    pm = cri_pb2.PortMapping(protocol=cri_pb2.TCP, container_port=8080, host_port=host_port)
    p = run_pod(world, "web", port_mappings=[pm])
    try:
        assert ("--dport %d" % host_port) in nat_rules()
        create_start(p, "httpd", ["/bin/sh", "-c", "mkdir -p /tmp/www && echo hostport-ok > /tmp/www/index.html"
                                                   " && exec httpd -f -p 8080 -h /tmp/www"])
        # From another network namespace, through the host port on the bridge address (portmap DNAT).
        probe = "pvprobe%d" % (host_port % 10000)
        peer = NetEnvPeer(world["net"], probe)
        try:
            body = ""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                r = subprocess.run(["ip", "netns", "exec", probe, "python3", "-c",
                                    "import urllib.request,sys;print(urllib.request.urlopen("
                                    "'http://%s:%d/index.html', timeout=5).read().decode())"
                                    % (world["net"].gateway, host_port)], capture_output=True, text=True,
                                   timeout=60)
                body = r.stdout
                if "hostport-ok" in body:
                    break
                time.sleep(0.5)
            assert "hostport-ok" in body, r.stderr
        finally:
            peer.cleanup()
    finally:
        remove_pod(world, p["pod"])
    assert ("--dport %d" % host_port) not in nat_rules()


class NetEnvPeer:
    """A plain netns plugged into the test bridge with a veth, like an outside client."""

    def __init__(self, net, name):
        self.name = name
        subprocess.run(["ip", "netns", "add", name], check=True)
        host_if = name[:10] + "h"
        subprocess.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name],
                       check=True)
        subprocess.run(["ip", "link", "set", host_if, "master", net.bridge, "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "10.231.%d.250/24" % net.third, "dev", "eth0"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "eth0", "up"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        self.host_if = host_if

    def cleanup(self):
        subprocess.run(["ip", "link", "del", self.host_if], check=False)
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def test_nothing_left_after_stop_remove_and_restart(world):
    """Stop and remove, with a podvisord restart in between: no netns, veth, tap or IPAM lease is left."""
    net = world["net"]
    d = world["daemon"]
    links_before = link_names()
    leases_before = net.lease_files()
    p = run_pod(world, "ephemeral")
    assert p["pod"] in net.netns_files()
    assert len(net.lease_files()) == len(leases_before) + 1
    # The guest-side plumbing: a tap next to the CNI veth inside the pod netns.
    assert "tap0" in link_names(os.path.join(net.netns_dir, p["pod"]))
    # Restart podvisord (SIGTERM: clean), then tear the pod down with the new one.
    d.stop()
    args = [conftest.PODVISORD, "--listen", d.socket, "--root", d.root, "--state-dir", d.state,
            "--log-level", "debug", "--config", d.config_path]
    d.log = open(d.log_path, "ab")
    d.proc = subprocess.Popen(args, stdout=d.log, stderr=subprocess.STDOUT)
    d._wait_ready()
    d.runtime = conftest.ServiceStub(d.channel, "RuntimeService")
    d.image = conftest.ServiceStub(d.channel, "ImageService")
    remove_pod(world, p["pod"])
    assert p["pod"] not in net.netns_files()
    assert net.lease_files() == leases_before
    assert link_names() - links_before == set()


def test_failing_plugin_fails_run_pod_and_leaves_nothing(world):
    """A real plugin failing at ADD: RunPodSandbox fails with its message; no pod, netns, lease or VM."""
    bad = NetEnv(extra_plugins=[{"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.pv_no_such_knob": "1"}}])
    d = conftest.Daemon({"network": {"cni_conf_dir": bad.conf_dir, "netns_dir": bad.netns_dir}})
    try:
        cfg = pod_config("badnet", world["logdir"])
        with pytest.raises(Exception) as e:
            d.runtime.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300)
        assert "pv_no_such_knob: no such file or directory" in e.value.details()
        assert "tuning" in e.value.details()
        assert not d.runtime.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items
        assert bad.netns_files() == []
        assert bad.lease_files() == []
        assert bad.bridge_ports() == []
        assert d.leftover_pids() == []
        # The name is free again: the failed pod reserved nothing.
        assert not os.listdir(os.path.join(d.root, "pods"))
    finally:
        d.cleanup()
        bad.cleanup()
