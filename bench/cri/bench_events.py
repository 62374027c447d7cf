#!/usr/bin/env python3
"""How fast a container's exit reaches podvisord's store and GetContainerEvents.

In one pod VM, --runs containers (default 10) each run `sleep 1` and exit. For each:
  shim -> store:  the shim's "container exited" log record (it has the agent's answer)
                  to podvisord's "container exited" record (the monitor folded it)
  shim -> event:  the same shim record to the STOPPED event reaching a GetContainerEvents
                  subscriber (python3-grpcio, on this host)
Both ends stamp CLOCK_REALTIME on the same host. Also, kill -9 of the pod's QEMU to
the STOPPED event of its running container (--kills, default 5 pods). Prints medians.

Usage: /usr/bin/python3 bench/cri/bench_events.py [--runs 10] [--kills 5] [--build DIR]
"""
import argparse
import datetime
import glob
import json
import os
import signal
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(HERE, "..", "..", "e2e")


def ts(s):
    """RFC 3339 with nanoseconds -> seconds since the epoch (float)."""
    base, frac = s.rstrip("Z").split(".")
    t = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + float("0." + frac)


def records(path, msg, conftest):
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            r = conftest.logfmt(line.strip())
            if r.get("msg") == msg and "container" in r:
                out[r["container"]] = ts(r["time"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--build", default=os.environ.get("PODVISOR_BUILD") or os.path.join(HERE, "..", "..", "build"))
    args = ap.parse_args()
    os.environ["PODVISOR_BUILD"] = os.path.abspath(args.build)
    sys.path[:0] = [os.path.join(os.environ["PODVISOR_BUILD"], "py"), E2E]
    import conftest
    import cri_pb2
    from image_util import Registry
    from test_pods import busybox_image, ctr_config, pod_config

    reg = Registry()
    d = None
    events = {}
    try:
        reg.push_image("bench/busybox", "1", busybox_image())
        d = conftest.Daemon({"network": {"enabled": False}})
        rt = d.runtime
        image = "%s/bench/busybox:1" % reg.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
        logdir = os.path.join(d.dir, "logs")
        os.makedirs(logdir)
        stream = rt.GetContainerEvents(cri_pb2.GetEventsRequest(), timeout=3600)

        def follow():
            try:
                for e in stream:
                    if e.container_event_type == cri_pb2.CONTAINER_STOPPED_EVENT:
                        events.setdefault(e.container_id, time.time())
            except Exception:
                pass
        threading.Thread(target=follow, daemon=True).start()

        cfg = pod_config("events", logdir)
        pod = rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
        ids = []
        for i in range(args.runs):
            cid = rt.CreateContainer(cri_pb2.CreateContainerRequest(
                pod_sandbox_id=pod, config=ctr_config(image, "e%d" % i, ["/bin/sleep", "1"]),
                sandbox_config=cfg), timeout=120).container_id
            rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)
            ids.append(cid)
            time.sleep(2)
        info = json.loads(rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True),
                                              timeout=30).info["info"])
        shim_log = os.path.join(info["stateDir"], "shim.log")
        shim_t = records(shim_log, "container exited", conftest)
        store_t = records(d.log_path, "container exited", conftest)
        to_store = [store_t[c] - shim_t[c] for c in ids if c in shim_t and c in store_t]
        to_event = [events[c] - shim_t[c] for c in ids if c in shim_t and c in events]
        rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)

        kills = []
        for i in range(args.kills):
            cfg = pod_config("kill%d" % i, logdir)
            pod = rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
            cid = rt.CreateContainer(cri_pb2.CreateContainerRequest(
                pod_sandbox_id=pod, config=ctr_config(image, "k", ["/bin/sleep", "100000"]),
                sandbox_config=cfg), timeout=120).container_id
            rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)
            info = json.loads(rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True),
                                                  timeout=30).info["info"])
            t0 = time.time()
            os.kill(info["vmmPid"], signal.SIGKILL)
            while cid not in events and time.time() - t0 < 30:
                time.sleep(0.001)
            if cid in events:
                kills.append(events[cid] - t0)
            rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
            rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        stream.cancel()
    finally:
        if d:
            d.cleanup()
        reg.stop()

    def show(name, xs):
        if xs:
            print("%s, %d samples: median %.1f ms (min %.1f, max %.1f)" % (
                name, len(xs), statistics.median(xs) * 1000, min(xs) * 1000, max(xs) * 1000))
        else:
            print("%s: no samples" % name)
    show("container exit, shim record -> podvisord store", to_store)
    show("container exit, shim record -> GetContainerEvents subscriber", to_event)
    show("kill -9 QEMU -> STOPPED event of its container", kills)


if __name__ == "__main__":
    main()
