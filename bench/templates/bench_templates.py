#!/usr/bin/env python3
"""Pod VMs cloned from a template vs booted, in one run (docs/sandbox.md, "Templates").

For runtime.templates=true and then false, through the CRI (podvisord, shims, QEMU/TCG):
  pod start   RunPodSandbox + CreateContainer + StartContainer of `echo ready` until the
              line is in the CRI log file (cached image), N times one after another: median;
  at once     P pods started at the same moment: time until every RunPodSandbox returned
              (the pod READY: agent answered, sandbox set up);
  idle PSS    those P pods left idle for --idle seconds: host PSS of each pod's QEMU + shim,
              averaged (PSS splits shared pages between their users, so P pods must be up);
              with templates, the template's RAM file (tmpfs, one per VM shape, mapped by
              every clone) is reported beside it, and its share per pod.
and the bare boot of the same kernel + initramfs (QEMU by hand, to agent ready: bench/boot),
N times. Prints the targets of issue 14 next to the figures.

Usage: bench/templates/bench_templates.py [--runs N] [--pods P] [--idle S] [--build DIR] [--network]
Needs root. CNI is off unless --network (then a private bridge network, e2e/net_util.py).
"""
import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(HERE, "..", "..", "e2e")


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tmpfs_kib(path):
    if not os.path.isdir(path):
        return 0
    r = subprocess.run(["du", "-sk", path], capture_output=True, text=True)
    return int(r.stdout.split()[0]) if r.returncode == 0 and r.stdout else 0


class Mode:
    def __init__(self, templates, args, image, registry, net):
        import conftest
        import cri_pb2
        self.cri = cri_pb2
        cfg = {"runtime": {"templates": templates}}
        cfg["network"] = ({"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir} if net
                          else {"enabled": False})
        self.templates = templates
        self.d = conftest.Daemon(cfg)
        self.d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
        self.image = image
        self.logdir = os.path.join(self.d.dir, "logs")
        os.makedirs(self.logdir)
        self.n = 0

    def pod_cfg(self, name):
        from test_pods import pod_config
        return pod_config(name, self.logdir)

    def run_pod(self, name):
        cfg = self.pod_cfg(name)
        return self.d.runtime.RunPodSandbox(self.cri.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id, cfg

    def remove(self, pod):
        rt = self.d.runtime
        rt.StopPodSandbox(self.cri.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        rt.RemovePodSandbox(self.cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)

    def info(self, pod):
        st = self.d.runtime.PodSandboxStatus(self.cri.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True),
                                             timeout=30)
        return json.loads(st.info["info"])

    def first_line(self):
        from test_pods import ctr_config
        self.n += 1
        name = "b%d" % self.n
        t0 = time.monotonic()
        pod, cfg = self.run_pod(name)
        c = ctr_config(self.image, "first", ["/bin/echo", "ready"], log=name + ".log")
        rt = self.d.runtime
        cid = rt.CreateContainer(self.cri.CreateContainerRequest(pod_sandbox_id=pod, config=c, sandbox_config=cfg),
                                 timeout=120).container_id
        rt.StartContainer(self.cri.StartContainerRequest(container_id=cid), timeout=120)
        path = os.path.join(self.logdir, name + ".log")
        while not (os.path.exists(path) and b" ready" in open(path, "rb").read()):
            if time.monotonic() - t0 > 300:
                raise RuntimeError("no log line after 300 s")
            time.sleep(0.002)
        took = time.monotonic() - t0
        start = self.info(pod).get("vmStart")
        self.remove(pod)
        return took, start

    def at_once(self, count):
        names = ["p%d-%d" % (self.n, i) for i in range(count)]
        self.n += 1
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(count) as ex:
            futs = [ex.submit(lambda n: (self.run_pod(n)[0], time.monotonic() - t0), n) for n in names]
            res = [f.result() for f in futs]
        return [p for p, _ in res], max(t for _, t in res), [t for _, t in res]

    def stop(self):
        self.d.cleanup()


def rfc3339(ts):
    """Seconds since the epoch of a log time like 2026-11-30T07:36:18.401785778Z."""
    import calendar
    base = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    return base + float("0" + ts[19:].rstrip("Z"))


def phases(log_text, names):
    """Where the time of each sequential pod start went, from podvisord's log: its RunPodSandbox
    phases (CNI, template lookup, shim spawn = VM start + agent, CreateSandbox), then
    CreateContainer (overlay + hot-add + agent create) and StartContainer."""
    import conftest
    recs = [conftest.logfmt(l) for l in log_text.splitlines()]
    out = {}
    for name in names:
        pod = next((r for r in recs if r.get("msg") == "pod started" and r.get("name") == name), None)
        if not pod:
            continue
        pid = pod.get("pod")
        created = next((r for r in recs if r.get("msg") == "container created" and r.get("pod") == pid), None)
        if not created:
            continue
        started = next((r for r in recs if r.get("msg") == "container started"
                        and r.get("container") == created.get("container")), None)
        row = {k: int(pod[k]) for k in ("net_ms", "template_ms", "spawn_ms", "sandbox_ms") if k in pod}
        row["create_ms"] = int((rfc3339(created["time"]) - rfc3339(pod["time"])) * 1000)
        if started:
            row["start_ms"] = int((rfc3339(started["time"]) - rfc3339(created["time"])) * 1000)
        out[name] = row
    return out


def measure_mode(templates, args, image, reg, net):
    m = Mode(templates, args, image, reg, net)
    out = {"templates": templates}
    try:
        # Warm-up: the first pod (with templates it waits for the template) is not counted.
        m.first_line()
        runs = [m.first_line() for _ in range(args.runs)]
        out["start"] = [t for t, _ in runs]
        out["start_from"] = sorted(set(s for _, s in runs))
        try:
            ph = phases(m.d.logs(), ["b%d" % i for i in range(2, args.runs + 2)])
            out["phases"] = {k: statistics.median([r[k] for r in ph.values() if k in r])
                             for k in ("net_ms", "template_ms", "spawn_ms", "sandbox_ms", "create_ms", "start_ms")
                             if any(k in r for r in ph.values())}
        except Exception as e:  # the breakdown is a help, not the measurement
            out["phases"] = {"error": str(e)}
        pods, all_ready, each = m.at_once(args.pods)
        out["at_once"] = all_ready
        out["at_once_each"] = each
        time.sleep(args.idle)
        per_pod = []
        for p in pods:
            i = m.info(p)
            per_pod.append(pss_kib(i["vmmPid"]) + pss_kib(i["shimPid"]))
        out["pss_kib"] = per_pod
        out["template_kib"] = tmpfs_kib(os.path.join(m.d.state, "templates"))
        for p in pods:
            m.remove(p)
    finally:
        m.stop()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--pods", type=int, default=10)
    ap.add_argument("--idle", type=float, default=10)
    ap.add_argument("--network", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--build", default=os.environ.get("PODVISOR_BUILD") or os.path.join(HERE, "..", "..", "build"))
    args = ap.parse_args()
    os.environ["PODVISOR_BUILD"] = os.path.abspath(args.build)
    sys.path[:0] = [os.path.join(os.environ["PODVISOR_BUILD"], "py"), E2E, os.path.join(HERE, "..", "boot")]
    import agent_util as au
    from bench_boot import measure
    from image_util import Registry
    from net_util import NetEnv
    from test_pods import busybox_image

    reg = Registry()
    net = NetEnv() if args.network else None
    res = []
    try:
        reg.push_image("bench/busybox", "1", busybox_image())
        image = "%s/bench/busybox:1" % reg.host
        for templates in (True, False):
            res.append(measure_mode(templates, args, image, reg, net))
    finally:
        if net:
            net.cleanup()
        reg.stop()
    bare = measure(au, au.find_kernel(), au.initramfs(), False, args.runs)
    bm = statistics.median(bare)
    if args.json:
        print(json.dumps({"modes": res, "bare_boot": bare}, indent=2))
    print("%d pods, %d runs, idle %ds, network %s, QEMU TCG, %d CPUs" % (args.pods, args.runs, args.idle,
                                                                   "on" if net else "off", os.cpu_count()))
    print("bare QEMU boot to agent ready (same kernel + initramfs): median %.3f s (min %.3f, max %.3f)"
          % (bm, min(bare), max(bare)))
    print("%-38s %16s %16s %12s" % ("", "templates=true", "templates=false", "target"))
    on, off = res
    pm = [statistics.median(r["start"]) for r in res]
    print("%-38s %14.3f s %14.3f s %12s" % ("pod start -> first log line, median", pm[0], pm[1], ""))
    print("%-38s %15.2fx %15.2fx %12s" % ("  ratio to the bare boot", pm[0] / bm, pm[1] / bm, "<= 0.55x"))
    print("%-38s %16s %16s" % ("  VM started from", ",".join(on["start_from"]), ",".join(off["start_from"])))
    print("%-38s %14.3f s %14.3f s %12s" % ("%d pods at once, all ready" % args.pods, on["at_once"], off["at_once"],
                                           "<= 1.5 s"))
    pss = [statistics.mean(r["pss_kib"]) / 1024 for r in res]
    print("%-38s %12.1f MiB %12.1f MiB %12s" % ("idle pod PSS (QEMU + shim), mean of %d" % args.pods, pss[0], pss[1],
                                               "<= 40 MiB"))
    for r in res:
        print("  where a start went (templates=%s), medians in ms: %s" % (
            str(r["templates"]).lower(), ", ".join("%s %s" % (k, v) for k, v in r.get("phases", {}).items())))
    tk = on["template_kib"] / 1024
    print("%-38s %12.1f MiB %16s" % ("  template RAM file (tmpfs, shared)", tk, "-"))
    print("%-38s %12.1f MiB %12.1f MiB" % ("  PSS + template share per pod", pss[0] + tk / args.pods, pss[1]))


if __name__ == "__main__":
    main()
