#!/usr/bin/env python3
"""TCP throughput on the CNI bridge with iperf3 (Debian's iperf3), as root.

Baseline for pod networking: two plain network namespaces made by CNI ADD
(podvisor-netctl, the same plugins and code pods use) on a private bridge:
  netns-netns  iperf3 client in netns B -> server in netns A, by pod IP
  netns-host   client in netns B -> server on the host's bridge address (the gateway)
A mode is a function returning (server_argv_prefix, server_ip, client_argv_prefix);
pod (VM) modes ("pod-pod", "pod-host") are added to MODES the same way once pods
run, and are printed next to the baseline with their ratio.

Usage: sudo PODVISOR_BUILD=$PWD/build python3 bench/net/bench_net.py [--seconds 5] [--modes a,b] [--json]
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "e2e"))
from net_util import NetEnv, wait_for  # noqa: E402

PORT = 15201


def ns_prefix(netns):
    return ["nsenter", "--net=" + netns]


def mode_netns_netns(env):
    a, b = env.pods["bench-a"], env.pods["bench-b"]
    return ns_prefix(a["netns"]), a["ip4"].split("/")[0], ns_prefix(b["netns"])


def mode_netns_host(env):
    b = env.pods["bench-b"]
    return [], env.gateway, ns_prefix(b["netns"])


# Later: "pod-pod" and "pod-host" return a prefix that runs iperf3 inside pod VMs
# (e.g. crictl exec) and the pod IP from PodSandboxStatus.
MODES = {"netns-netns": mode_netns_netns, "netns-host": mode_netns_host}


def iperf(server_prefix, server_ip, client_prefix, seconds):
    server = subprocess.Popen(server_prefix + ["iperf3", "-s", "-1", "-p", str(PORT), "-B", server_ip],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Poll until the server accepts (iperf3 -c fails fast while it is not listening).
        deadline = time.monotonic() + 20
        while True:
            p = subprocess.run(client_prefix + ["iperf3", "-J", "-c", server_ip, "-p", str(PORT),
                                                "-t", str(seconds)],
                               capture_output=True, text=True, timeout=seconds + 60)
            res = json.loads(p.stdout) if p.stdout.strip().startswith("{") else {}
            if p.returncode == 0 and "error" not in res and "sum_received" in res.get("end", {}):
                break
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("iperf3 failed: %s %s" % (res.get("error", p.stdout[-500:]), p.stderr[-500:]))
            time.sleep(0.2)
        return res["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    env = NetEnv()
    results = {}
    try:
        env.add("bench-a")
        env.add("bench-b")
        for m in args.modes.split(","):
            results[m] = iperf(*MODES[m](env), args.seconds)
    finally:
        env.cleanup()
    if args.json:
        print(json.dumps({"gbit_per_s": results, "seconds": args.seconds}))
    else:
        for m, g in results.items():
            print("%-12s %7.2f Gbit/s" % (m, g))
        base = results.get("netns-netns")
        for m, g in results.items():
            if base and m.startswith("pod"):
                print("%-12s %7.2f x netns-netns" % (m, g / base))


if __name__ == "__main__":
    main()
