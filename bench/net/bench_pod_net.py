#!/usr/bin/env python3
"""TCP throughput of pods (VMs on the CNI bridge) next to plain network namespaces, in one run.

Same tool everywhere (bench/tools/tcpbench.c, static), same private CNI bridge:
  pod-pod      client in pod VM B -> server in pod VM A, by pod IP (virtio-net, tap, mirred, veth, bridge)
  pod-host     client in pod VM B -> server on the host's bridge address
  netns-netns  the same between two plain netns made by the same CNI plugins (baseline)
  netns-host   plain netns -> host (baseline)
Median of --runs runs of --seconds each; ratios pod/netns printed.
All VMs run under TCG on machines without KVM: read the ratios with that in mind (docs/networking.md).

Usage: sudo bench/net/bench_pod_net.py [--runs 3] [--seconds 3] [--build DIR]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 15301


def parse_bps(text):
    for line in text.splitlines():
        if line.endswith("s") and " bps " in line:
            return float(line.split()[0])
    raise RuntimeError("tcpbench printed no result: %r" % text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--build", default=os.environ.get("PODVISOR_BUILD") or os.path.join(HERE, "..", "..", "build"))
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    os.environ["PODVISOR_BUILD"] = build
    sys.path[:0] = [os.path.join(build, "py"), os.path.join(HERE, "..", "..", "e2e")]
    import conftest
    import cri_pb2
    from image_util import Entry, Image, Registry, make_tar
    from net_util import NetEnv
    from test_pods import busybox_image, create_start, exec_sync, pod_config

    tool = os.path.join(build, "guest", "tcpbench")
    base = busybox_image()
    layer = make_tar([Entry("bin/tcpbench", open(tool, "rb").read(), mode=0o755)])
    img = Image([_first_layer(base), layer],
                config_extra={"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]})
    reg, net, d = Registry(), NetEnv(), None
    results = {}
    server = None
    try:
        reg.push_image("bench/net", "1", img)
        d = conftest.Daemon({"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir}})
        image = "%s/bench/net:1" % reg.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
        logdir = os.path.join(d.dir, "logs")
        os.makedirs(logdir)
        pods = {}
        for name in ("a", "b"):
            cfg = pod_config("bench-" + name, logdir, linux=cri_pb2.LinuxPodSandboxConfig(
                resources=cri_pb2.LinuxContainerResources(cpu_period=100000, cpu_quota=100000,
                                                          memory_limit_in_bytes=256 << 20)))
            pod = d.runtime.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
            ip = d.runtime.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod),
                                            timeout=30).status.network.ip
            env = {"daemon": d, "image": image, "pod": pod, "pod_cfg": cfg}
            pods[name] = dict(env, ip=ip)
        create_start(pods["a"], "srv", ["/bin/tcpbench", "server", str(PORT)])
        cli = create_start(pods["b"], "cli", ["/bin/sleep", "100000"])
        server = subprocess.Popen([tool, "server", str(PORT)])
        time.sleep(1)

        def pod_client(ip):
            r = exec_sync(pods["b"], cli, ["/bin/tcpbench", "client", ip, str(PORT), str(args.seconds)],
                          timeout=int(args.seconds) + 60)
            return parse_bps(r.stdout.decode())

        net.add("ns-a")
        net.add("ns-b")
        ns_a, ns_b = net.pods["ns-a"], net.pods["ns-b"]
        ns_server = subprocess.Popen(["nsenter", "--net=" + ns_a["netns"], tool, "server", str(PORT)])
        time.sleep(0.5)

        def ns_client(ip):
            out = subprocess.run(["nsenter", "--net=" + ns_b["netns"], tool, "client", ip, str(PORT),
                                  str(args.seconds)], capture_output=True, text=True, timeout=120, check=True)
            return parse_bps(out.stdout)

        modes = {
            "pod-pod": lambda: pod_client(pods["a"]["ip"]),
            "pod-host": lambda: pod_client(net.gateway),
            "netns-netns": lambda: ns_client(ns_a["ip4"].split("/")[0]),
            "netns-host": lambda: ns_client(net.gateway),
        }
        for _ in range(args.runs):
            for name, fn in modes.items():
                results.setdefault(name, []).append(fn())
        ns_server.kill()
        ns_server.wait()
        for p in pods.values():
            d.runtime.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=p["pod"]), timeout=120)
            d.runtime.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=p["pod"]), timeout=120)
    finally:
        if server:
            server.kill()
            server.wait()
        if d:
            d.cleanup()
        net.cleanup()
        reg.stop()
    med = {k: statistics.median(v) for k, v in results.items()}
    for k, v in results.items():
        print("%-12s median %7.3f Gbit/s  (runs: %s)" % (k, med[k] / 1e9, ", ".join("%.3f" % (x / 1e9) for x in v)))
    print("pod-pod / netns-netns: %.3f" % (med["pod-pod"] / med["netns-netns"]))
    print("pod-host / netns-host: %.3f" % (med["pod-host"] / med["netns-host"]))


def _first_layer(image):
    """The uncompressed first layer of an image_util.Image (its blobs are gzip)."""
    import gzip
    return gzip.decompress(image.blobs[image.layers[0]["digest"]])


if __name__ == "__main__":
    main()
