#!/usr/bin/python3
"""Streaming (Exec, PortForward) next to the paths it is compared with, in one run.

  exec-stream      Exec RPC + SPDY upgrade + `true` in the pod VM + exit status back, by the
                   e2e SPDY client (Debian's spdystream): median of --execs runs
  exec-sync        ExecSync of `true` (the same process, collected output): median of --execs runs
  pf-throughput    tcpbench client on the host -> local listener of the SPDY client (as kubectl
                   port-forward) -> podvisord -> shim -> agent -> tcpbench server in the pod
  direct-tcp       the same tcpbench client straight to the pod IP (tap, virtio-net)
All VMs run under TCG here: read the ratios, not the absolute figures.

Usage: sudo /usr/bin/python3 bench/stream/bench_stream.py [--execs 50] [--runs 3] [--seconds 3] [--build DIR] [--json]
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 15401


def parse_bps(text):
    for line in text.splitlines():
        if line.endswith("s") and " bps " in line:
            return float(line.split()[0])
    raise RuntimeError("tcpbench printed no result: %r" % text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--execs", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--build", default=os.environ.get("PODVISOR_BUILD") or os.path.join(HERE, "..", "..", "build"))
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    os.environ["PODVISOR_BUILD"] = build
    sys.path[:0] = [os.path.join(build, "py"), os.path.join(HERE, "..", "..", "e2e")]
    import conftest
    import cri_pb2
    from image_util import Entry, Image, Registry, free_port, make_tar
    from net_util import NetEnv
    from test_pods import busybox_image, create_start, exec_sync, pod_config

    tool = os.path.join(build, "guest", "tcpbench")
    client = os.path.join(build, "bin", "pv-spdyclient")
    layer = make_tar([Entry("bin/tcpbench", open(tool, "rb").read(), mode=0o755)])
    base = busybox_image()
    img = Image([gzip.decompress(base.blobs[base.layers[0]["digest"]]), layer], config_extra={"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]})
    reg, net, d, fwd = Registry(), NetEnv(), None, None
    res = {}
    try:
        reg.push_image("bench/stream", "1", img)
        d = conftest.Daemon({"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir}})
        image = "%s/bench/stream:1" % reg.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
        logdir = os.path.join(d.dir, "logs")
        os.makedirs(logdir)
        cfg = pod_config("bench-stream", logdir)
        pod = d.runtime.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
        ip = d.runtime.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod),
                                        timeout=30).status.network.ip
        env = {"daemon": d, "image": image, "pod": pod, "pod_cfg": cfg}
        create_start(env, "srv", ["/bin/tcpbench", "server", str(PORT)])
        ctr = create_start(env, "idle", ["/bin/sleep", "100000"])
        time.sleep(1)

        def stream_exec():
            t0 = time.monotonic()
            url = d.runtime.Exec(cri_pb2.ExecRequest(container_id=ctr, cmd=["true"], stdout=True,
                                                     stderr=True), timeout=30).url
            r = subprocess.run([client, "exec", url], capture_output=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError("exec failed: %s" % r.stderr)
            return time.monotonic() - t0

        def sync_exec():
            t0 = time.monotonic()
            if exec_sync(env, ctr, ["true"]).exit_code != 0:
                raise RuntimeError("ExecSync failed")
            return time.monotonic() - t0

        for name, fn in (("exec-stream", stream_exec), ("exec-sync", sync_exec)):
            fn()  # warm-up
            res[name + "_ms"] = statistics.median(fn() for _ in range(args.execs)) * 1000

        url = d.runtime.PortForward(cri_pb2.PortForwardRequest(pod_sandbox_id=pod, port=[PORT]), timeout=30).url
        lport = free_port()
        fwd = subprocess.Popen([client, "portforward", url, "-port", str(PORT), "-listen", "127.0.0.1:%d" % lport],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        fwd.stdout.readline()

        def tcp(host, port):
            r = subprocess.run([tool, "client", host, str(port), str(args.seconds)], capture_output=True,
                               text=True, timeout=args.seconds + 120)
            return parse_bps(r.stdout)

        res["pf-throughput_mbps"] = statistics.median(tcp("127.0.0.1", lport) for _ in range(args.runs)) / 1e6
        res["direct-tcp_mbps"] = statistics.median(tcp(ip, PORT) for _ in range(args.runs)) / 1e6
        d.runtime.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        d.runtime.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
    finally:
        if fwd:
            fwd.kill()
            fwd.wait()
        if d:
            d.cleanup()
        net.cleanup()
        reg.stop()
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print("exec round trip, median of %d:  stream %.0f ms   ExecSync %.0f ms   (stream/sync %.2f)" % (
        args.execs, res["exec-stream_ms"], res["exec-sync_ms"], res["exec-stream_ms"] / res["exec-sync_ms"]))
    print("throughput, median of %d x %gs:   port-forward %.1f Mbit/s   direct to pod IP %.1f Mbit/s   (%.2f)" % (
        args.runs, args.seconds, res["pf-throughput_mbps"], res["direct-tcp_mbps"],
        res["pf-throughput_mbps"] / res["direct-tcp_mbps"]))


if __name__ == "__main__":
    main()
