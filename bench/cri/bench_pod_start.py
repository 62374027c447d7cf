#!/usr/bin/env python3
"""Pod start latency through the CRI: RunPodSandbox -> a container's first log line.

For a cached image (pulled once before timing), N times (default 10):
  podvisor:  RunPodSandbox + CreateContainer + StartContainer of `echo ready`, until the
             line is in the container's CRI log file — what kubelet waits for.
  bare VM:   QEMU started by hand with the same kernel and initramfs, until the agent
             answers its first ping (bench/boot's measurement).
Prints both medians and podvisor's own overhead (difference and ratio), in one run.

Usage: bench/cri/bench_pod_start.py [--runs N] [--build DIR]
Needs root (CNI networking is turned off here: it is measured in bench/net).
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(HERE, "..", "..", "e2e")


def first_line_latency(d, image, logdir, i):
    import cri_pb2
    from test_pods import ctr_config, pod_config
    rt = d.runtime
    t0 = time.monotonic()
    cfg = pod_config("bench%d" % i, logdir)
    pod = rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
    c = ctr_config(image, "first", ["/bin/echo", "ready"], log="bench%d.log" % i)
    cid = rt.CreateContainer(cri_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=c), timeout=120).container_id
    rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)
    path = os.path.join(logdir, "bench%d.log" % i)
    while True:
        if os.path.exists(path) and b" ready" in open(path, "rb").read():
            break
        if time.monotonic() - t0 > 300:
            raise RuntimeError("no log line after 300 s")
        time.sleep(0.005)
    took = time.monotonic() - t0
    rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
    rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--build", default=os.environ.get("PODVISOR_BUILD") or os.path.join(HERE, "..", "..", "build"))
    args = ap.parse_args()
    os.environ["PODVISOR_BUILD"] = os.path.abspath(args.build)
    sys.path[:0] = [os.path.join(os.environ["PODVISOR_BUILD"], "py"), E2E, os.path.join(HERE, "..", "boot")]
    import agent_util as au
    from bench_boot import measure
    import conftest
    import cri_pb2
    from image_util import Registry
    from test_pods import busybox_image

    reg = Registry()
    d = None
    try:
        reg.push_image("bench/busybox", "1", busybox_image())
        d = conftest.Daemon({"network": {"enabled": False}})
        image = "%s/bench/busybox:1" % reg.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
        logdir = os.path.join(d.dir, "logs")
        os.makedirs(logdir)
        pod_times = [first_line_latency(d, image, logdir, i) for i in range(args.runs)]
    finally:
        if d:
            d.cleanup()
        reg.stop()
    bare = measure(au, au.find_kernel(), au.initramfs(), False, args.runs)
    pm, bm = statistics.median(pod_times), statistics.median(bare)
    print("pod start (RunPodSandbox -> first log line), %d runs: median %.3f s (min %.3f, max %.3f)"
          % (len(pod_times), pm, min(pod_times), max(pod_times)))
    print("bare QEMU boot to agent ready, same kernel+initramfs, %d runs: median %.3f s (min %.3f, max %.3f)"
          % (len(bare), bm, min(bare), max(bare)))
    print("podvisor overhead: %+.3f s, ratio %.2fx" % (pm - bm, pm / bm))


if __name__ == "__main__":
    main()
