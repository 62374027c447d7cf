"""Helpers for the pod networking e2e tests and benchmarks (cri/net, sandbox/net).

Everything a test makes has a test-private name (bridge, subnet, IPAM dataDir,
netns dir) so nothing collides with other tests or a real CNI setup, and
NetEnv.cleanup() removes all of it by name.
"""
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

BUILD = os.environ.get("PODVISOR_BUILD", os.path.join(os.path.dirname(__file__), "..", "build"))
NETCTL = os.path.join(BUILD, "bin", "podvisor-netctl")
CNI_BIN_DIRS = "/opt/cni/bin:/usr/lib/cni"
HOSTPORT_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")


def run(cmd, check=True, timeout=120, **kw):
    return subprocess.run(cmd, check=check, timeout=timeout, capture_output=True, text=True, **kw)


def in_ns(netns, *cmd, **kw):
    """Run a command inside a network namespace given by its file path."""
    return run(["nsenter", "--net=" + netns, *cmd], **kw)


def link_names(netns=None):
    cmd = ["ip", "-j", "link", "show"]
    out = in_ns(netns, *cmd).stdout if netns else run(cmd).stdout
    return {l["ifname"] for l in json.loads(out)}


def ipv4_addrs(netns, ifname):
    out = json.loads(in_ns(netns, "ip", "-j", "-4", "addr", "show", "dev", ifname).stdout)
    return ["%s/%d" % (a["local"], a["prefixlen"]) for l in out for a in l.get("addr_info", [])]


def wait_for(pred, timeout=30, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


def nat_rules():
    return run(["iptables", "-w", "-t", "nat", "-S"], check=False).stdout


class NetEnv:
    """A private CNI network: conf dir, bridge, subnet, IPAM dataDir, netns dir."""

    def __init__(self, extra_plugins=(), ipam_range=None):
        self.dir = tempfile.mkdtemp(prefix="pv-net-e2e-")
        tag = "%04x" % random.randrange(0x10000)
        self.name = "pvtest-" + tag
        self.bridge = "pvtbr" + tag
        self.third = random.randrange(10, 250)
        self.subnet = "10.231.%d.0/24" % self.third
        self.gateway = "10.231.%d.1" % self.third
        self.conf_dir = os.path.join(self.dir, "conf")
        self.ipam_dir = os.path.join(self.dir, "ipam")
        self.netns_dir = os.path.join(self.dir, "netns")
        self.state_dir = os.path.join(self.dir, "state")
        for d in (self.conf_dir, self.state_dir):
            os.makedirs(d)
        self.links_before = link_names()
        self.nat_before = nat_rules()
        self.pods = {}
        ipam = {"type": "host-local", "subnet": self.subnet, "dataDir": self.ipam_dir,
                "routes": [{"dst": "0.0.0.0/0"}]}
        if ipam_range:
            ipam["rangeStart"], ipam["rangeEnd"] = ipam_range
        self.plugins = [
            {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False, "ipam": ipam},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            *extra_plugins,
            {"type": "loopback"},
        ]
        self.write_conf("10-%s.conflist" % self.name,
                        {"cniVersion": "1.0.0", "name": self.name, "plugins": self.plugins})

    def write_conf(self, fname, obj):
        with open(os.path.join(self.conf_dir, fname), "w") as f:
            json.dump(obj, f)

    def netctl(self, *args, check=True, timeout=120):
        p = run([NETCTL, "--netns-dir", self.netns_dir, "--bin-dirs", CNI_BIN_DIRS, *args],
                check=False, timeout=timeout)
        try:
            out = json.loads(p.stdout.splitlines()[-1]) if p.stdout.strip() else {}
        except ValueError:
            raise AssertionError("netctl printed no JSON: %r %r" % (p.stdout, p.stderr))
        if check and (p.returncode != 0 or not out.get("ok")):
            raise AssertionError("netctl %s failed (%d): %s %s" % (args, p.returncode, p.stdout, p.stderr))
        out["_rc"] = p.returncode
        out["_stderr"] = p.stderr
        return out

    def state_path(self, pod_id):
        return os.path.join(self.state_dir, pod_id + ".json")

    def add(self, pod_id, *extra, check=True):
        out = self.netctl("add", pod_id, self.conf_dir, "--state", self.state_path(pod_id),
                          "--name", pod_id, "--namespace", "e2e", "--uid", "uid-" + pod_id, *extra,
                          check=check)
        if out.get("ok"):
            self.pods[pod_id] = out
        return out

    def delete(self, pod_id, check=True):
        return self.netctl("del", self.state_path(pod_id), check=check)

    def lease_files(self):
        d = os.path.join(self.ipam_dir, self.name)
        if not os.path.isdir(d):
            return []
        return sorted(f for f in os.listdir(d) if f[0].isdigit() or ":" in f)

    def netns_files(self):
        return sorted(os.listdir(self.netns_dir)) if os.path.isdir(self.netns_dir) else []

    def host_veth(self, pod_id):
        """Host-side veth name from the ADD result (the interface without a sandbox, not the bridge)."""
        for i in self.pods[pod_id]["result"]["interfaces"]:
            if "sandbox" not in i and i["name"] != self.bridge:
                return i["name"]
        return None

    def bridge_ports(self):
        p = run(["ip", "-j", "link", "show", "master", self.bridge], check=False)
        return [l["ifname"] for l in json.loads(p.stdout)] if p.returncode == 0 and p.stdout.strip() else []

    def cleanup(self):
        """Remove everything this env made, by name, whatever state the test left."""
        for pod_id in list(self.pods):
            if os.path.exists(self.state_path(pod_id)):
                self.netctl("del", self.state_path(pod_id), check=False)
        for ns in self.netns_files():
            path = os.path.join(self.netns_dir, ns)
            run(["umount", "-l", path], check=False)
            try:
                os.unlink(path)
            except OSError:
                pass
        # Only veths on this env's own bridge: other tests may have veths of their own.
        for l in self.bridge_ports():
            run(["ip", "link", "del", l], check=False)
        run(["ip", "link", "del", self.bridge], check=False)
        remove_hostport_chains_if_new(self.nat_before)
        shutil.rmtree(self.dir, ignore_errors=True)


def remove_hostport_chains_if_new(nat_before):
    """portmap creates shared CNI-HOSTPORT-* chains on first use and never removes
    them; if they did not exist before the test, take them (and their jumps) away."""
    if any(c in nat_before for c in HOSTPORT_CHAINS):
        return
    now = nat_rules()
    if any(l.startswith("-N CNI-DN-") for l in now.splitlines()):
        return  # another pod's rules still use them
    for line in now.splitlines():
        words = shlex.split(line)  # the rules carry quoted comments with spaces
        if words[:1] == ["-A"] and "-j CNI-HOSTPORT-" in line and words[1] not in HOSTPORT_CHAINS:
            run(["iptables", "-w", "-t", "nat", "-D", *words[1:]], check=False)
    for c in HOSTPORT_CHAINS:
        run(["iptables", "-w", "-t", "nat", "-F", c], check=False)
    for c in HOSTPORT_CHAINS:
        run(["iptables", "-w", "-t", "nat", "-X", c], check=False)


class TapEcho:
    """podvisor-netctl tap-echo: a stand-in guest answering ARP and ping on the pod's tap."""

    def __init__(self, env, netns, ip, mac, tap="tap0", seconds=120):
        self.proc = subprocess.Popen([NETCTL, "tap-echo", netns, tap, ip, mac, str(seconds)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if '"ready"' not in line:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("tap-echo did not start: %r %r" % (line, self.proc.stderr.read()))

    def stop(self):
        """Stop by pid; returns its final counters."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        lines = [l for l in out.splitlines() if l.strip()]
        return json.loads(lines[-1]) if lines else {"_stderr": err}
