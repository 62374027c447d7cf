"""Pod networking building blocks against the real Debian CNI plugins (root needed).

netns + CNI ADD/DEL (cri/net) and tap + tc mirred (sandbox/net), driven through
podvisor-netctl. Each test gets a private bridge, subnet, IPAM dataDir and
netns dir (net_util.NetEnv) and removes all of it by name afterwards.
"""
import json
import os
import socket
import subprocess
import threading

import pytest

from net_util import NETCTL, NetEnv, TapEcho, in_ns, ipv4_addrs, link_names, run, wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(not os.path.exists("/usr/lib/cni/bridge") and not os.path.exists("/opt/cni/bin/bridge"),
                       reason="containernetworking-plugins not installed"),
]


@pytest.fixture
def env():
    e = NetEnv()
    try:
        yield e
    finally:
        e.cleanup()


def ping(netns, ip, count=3, check=True):
    p = in_ns(netns, "ping", "-c", str(count), "-i", "0.3", "-W", "3", ip, check=False)
    if check:
        assert p.returncode == 0, "ping %s from %s failed:\n%s%s" % (ip, netns, p.stdout, p.stderr)
    return p.returncode == 0


def test_status_reports_missing_and_valid_config(env, tmp_path):
    out = env.netctl("status", str(tmp_path))
    assert out["ready"] is False
    assert "no *.conflist" in out["reason"]
    (tmp_path / "10-bad.conflist").write_text('{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}')
    out = env.netctl("status", str(tmp_path))
    assert out["ready"] is False
    assert '10-bad.conflist: missing or empty "name"' in out["reason"]
    assert env.netctl("status", env.conf_dir)["ready"] is True


def test_add_gives_netns_veth_and_ip_then_del_removes_all(env):
    a = env.add("poda")
    b = env.add("podb")
    ns_a, ns_b = a["netns"], b["netns"]
    assert ns_a == os.path.join(env.netns_dir, "poda")
    assert env.netns_files() == ["poda", "podb"]

    # IPs come from host-local in our subnet, differ, and sit on eth0 inside the netns.
    ip_a, ip_b = a["ip4"].split("/")[0], b["ip4"].split("/")[0]
    assert a["ip4"].startswith("10.231.%d." % env.third) and a["ip4"].endswith("/24")
    assert ip_a != ip_b
    assert a["gateway4"] == env.gateway
    assert ipv4_addrs(ns_a, "eth0") == [a["ip4"]]
    assert ipv4_addrs(ns_b, "eth0") == [b["ip4"]]
    mac = json.loads(in_ns(ns_a, "ip", "-j", "link", "show", "eth0").stdout)[0]["address"]
    assert a["mac"] == mac
    assert sorted(env.lease_files()) == sorted([ip_a, ip_b])

    # Host side: veths on our bridge, and the loopback plugin (last in the chain) passed the result through.
    veth_a = env.host_veth("poda")
    assert veth_a in link_names() and veth_a in env.bridge_ports()
    assert in_ns(ns_a, "ip", "-j", "link", "show", "lo").stdout.count('"UP"') >= 1

    # The two netns reach each other through the bridge, and the host (gateway) reaches both.
    ping(ns_a, ip_b)
    ping(ns_b, ip_a)
    assert run(["ping", "-c", "1", "-W", "3", ip_a], check=False).returncode == 0

    # Saved attachment carries everything DEL needs.
    saved = json.load(open(env.state_path("poda")))
    assert saved["netns"] == ns_a and saved["config"]["name"] == env.name and saved["ifname"] == "eth0"

    env.delete("poda")
    assert env.netns_files() == ["podb"]
    assert veth_a not in link_names()
    assert env.lease_files() == [ip_b]
    # DEL again (e.g. Stop then Remove, or a retry after a crash) is fine.
    env.delete("poda")
    env.delete("podb")
    assert env.netns_files() == [] and env.lease_files() == []
    assert env.bridge_ports() == []


def test_del_after_netns_is_gone(env):
    a = env.add("gone")
    ip = a["ip4"].split("/")[0]
    # Someone (a reboot, an admin) removed the netns: veth goes with it, the IPAM lease stays.
    run(["umount", a["netns"]])
    os.unlink(a["netns"])
    assert env.lease_files() == [ip]
    env.delete("gone")
    assert env.lease_files() == []
    assert env.bridge_ports() == []


def test_failing_plugin_message_and_nothing_left(tmp_path):
    # A real plugin failing for real: tuning with a sysctl the kernel does not have,
    # after bridge has already made the veth and host-local leased an IP.
    e = NetEnv(extra_plugins=[{"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.pv_no_such_knob": "1"}}])
    try:
        out = e.add("bad", check=False)
        assert out["_rc"] != 0 and out["ok"] is False
        assert "CNI plugin tuning ADD failed" in out["error"]
        # The plugin's own message is in the error.
        assert "pv_no_such_knob: no such file or directory" in out["error"]
        assert e.netns_files() == []
        assert e.lease_files() == []
        assert e.bridge_ports() == []
        assert not os.path.exists(e.state_path("bad"))
    finally:
        e.cleanup()


def test_ipam_exhausted_leaves_nothing(tmp_path):
    e = NetEnv(ipam_range=None)
    e.plugins[0]["ipam"]["rangeStart"] = e.plugins[0]["ipam"]["rangeEnd"] = "10.231.%d.10" % e.third
    e.write_conf("10-%s.conflist" % e.name, {"cniVersion": "1.0.0", "name": e.name, "plugins": e.plugins})
    try:
        first = e.add("one")
        assert first["ip4"] == "10.231.%d.10/24" % e.third
        out = e.add("two", check=False)
        assert out["ok"] is False
        assert "no IP addresses available" in out["error"]
        assert e.netns_files() == ["one"]
        assert e.lease_files() == ["10.231.%d.10" % e.third]
        assert len(e.bridge_ports()) == 1
    finally:
        e.cleanup()


def test_no_config_is_failed_precondition(env, tmp_path):
    p = run([NETCTL, "--netns-dir", env.netns_dir, "add", "x", str(tmp_path)], check=False)
    out = json.loads(p.stdout)
    assert p.returncode != 0 and out["code"] == "FAILED_PRECONDITION"
    assert env.netns_files() == []


def test_hostport_reaches_server_in_pod(env):
    a = env.add("web", "--port", "18931:8080/tcp")
    b = env.add("client")
    ip_a = a["ip4"].split("/")[0]
    assert "--dport 18931" in run(["iptables", "-w", "-t", "nat", "-S"]).stdout
    # A TCP echo server in the pod's netns on the container port.
    server = subprocess.Popen(["nsenter", "--net=" + a["netns"], "python3", "-c",
                               "import socket\n"
                               "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                               "s.bind(('0.0.0.0', 8080)); s.listen(4); print('ready', flush=True)\n"
                               "while True:\n"
                               "    c,_=s.accept(); c.sendall(c.recv(100)); c.close()\n"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        client = ("import socket,sys\n"
                  "c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)\n"
                  "c.sendall(b'hello-pod'); print(c.recv(100).decode())\n")
        # Directly by pod IP, and through the hostPort on the host's bridge address.
        assert in_ns(b["netns"], "python3", "-c", client, ip_a, "8080").stdout.strip() == "hello-pod"
        assert in_ns(b["netns"], "python3", "-c", client, env.gateway, "18931").stdout.strip() == "hello-pod"
    finally:
        server.kill()
        server.wait()
    env.delete("web")
    assert "--dport 18931" not in run(["iptables", "-w", "-t", "nat", "-S"]).stdout


def test_tap_mirred_forwards_both_ways(env):
    a = env.add("vm")
    b = env.add("peer")
    ns = a["netns"]
    ip_a = a["ip4"].split("/")[0]

    info = env.netctl("tap-setup", ns)
    # What the guest needs: the veth's MAC, its MTU, its addresses and routes.
    assert info["mac"] == a["mac"]
    assert info["mtu"] == 1500
    assert info["addrs"] == [a["ip4"]]
    assert {"dst": "0.0.0.0/0", "gw": env.gateway} in info["routes"]
    # The netns side no longer owns the IP: the guest does.
    assert ipv4_addrs(ns, "eth0") == []
    assert in_ns(ns, "ip", "-6", "-o", "addr", "show", "dev", "eth0").stdout.strip() == ""
    assert in_ns(ns, "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6").stdout.strip() == "1"
    assert "tap0" in link_names(ns)
    f_veth = in_ns(ns, "tc", "filter", "show", "dev", "eth0", "ingress").stdout
    f_tap = in_ns(ns, "tc", "filter", "show", "dev", "tap0", "ingress").stdout
    assert "mirred (Egress Redirect to device tap0) stolen" in f_veth
    assert "mirred (Egress Redirect to device eth0) stolen" in f_tap
    mtu = json.loads(in_ns(ns, "ip", "-j", "link", "show", "tap0").stdout)[0]["mtu"]
    assert mtu == 1500

    # With nobody on the tap, the pod IP does not answer (the netns stack is out of the path).
    assert not ping(b["netns"], ip_a, count=1, check=False)

    # A stand-in guest on the tap answers ARP and ping: frames cross veth->tap and tap->veth.
    echo = TapEcho(env, ns, ip_a, info["mac"])
    try:
        ping(b["netns"], ip_a, count=3)
        assert run(["ping", "-c", "2", "-W", "3", ip_a], check=False).returncode == 0
    finally:
        stats = echo.stop()
    # At least one reply to each pinger (the first request can be lost to ARP after the failed ping above).
    assert stats["icmp_replies"] >= 2, stats
    assert stats["arp_replies"] >= 1, stats

    # Setting up again is harmless (one filter each way, not two).
    again = env.netctl("tap-setup", ns)
    assert again["mac"] == info["mac"]
    assert in_ns(ns, "tc", "filter", "show", "dev", "eth0", "ingress").stdout.count("mirred") == 1

    env.netctl("tap-teardown", ns)
    assert "tap0" not in link_names(ns)
    assert "ingress" not in in_ns(ns, "tc", "qdisc", "show", "dev", "eth0").stdout
    env.netctl("tap-teardown", ns)  # idempotent
    env.delete("vm")
    env.netctl("tap-teardown", ns)  # netns gone: nothing to do
    assert env.netns_files() == ["peer"]


def test_tap_dies_with_netns(env):
    a = env.add("t2")
    env.netctl("tap-setup", a["netns"])
    env.delete("t2")
    # The persistent tap went away with its namespace instead of falling back into the host's.
    assert "tap0" not in link_names()


def test_dual_stack_result_and_tap_info():
    e = NetEnv()
    v6_subnet = "fd00:231:%x::/64" % e.third
    ipam = e.plugins[0]["ipam"]
    ipam.pop("subnet")
    ipam["ranges"] = [[{"subnet": e.subnet}], [{"subnet": v6_subnet}]]
    ipam["routes"] = [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    e.write_conf("10-%s.conflist" % e.name, {"cniVersion": "1.0.0", "name": e.name, "plugins": e.plugins})
    try:
        a = e.add("ds", check=True)
        assert a["ip4"].startswith("10.231.%d." % e.third)
        assert a["ip6"] and a["ip6"].startswith("fd00:231:%x:" % e.third) and a["ip6"].endswith("/64")
        info = e.netctl("tap-setup", a["netns"])
        # Both families reach the guest; the v6 link-local stays behind (the guest makes its own).
        assert sorted(info["addrs"]) == sorted([a["ip4"], a["ip6"]])
        dsts = {r["dst"]: r["gw"] for r in info["routes"]}
        assert dsts["0.0.0.0/0"] == e.gateway
        assert dsts["::/0"].startswith("fd00:231:%x::" % e.third)
        e.netctl("tap-teardown", a["netns"])
        e.delete("ds")
        assert e.lease_files() == []
    finally:
        e.cleanup()
