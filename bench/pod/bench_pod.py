#!/usr/bin/env python3
"""Pod bench: host memory of an idle pod and start times of 10 pods, printed in one run.

  memory:  PSS (from /proc/<pid>/smaps_rollup) of QEMU + podvisor-shim for one idle pod,
           peak while it boots and steady after it has sat idle for a while
  start:   10 pods started one after another (each: spawn -> agent answered), then 10 at once

Usage: PODVISOR_BUILD=$PWD/build python3 bench/pod/bench_pod.py [--pods 10] [--idle 10]
       [--accel auto|tcg|kvm] [--memory-mib 256] [--tcg-tb-size MIB]
Every pod it starts is stopped by pid before it exits.
"""
import argparse
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "e2e"))
from shim_util import Pod, pid_alive  # noqa: E402


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(args):
    extra = ["--tcg-tb-size", str(args.tcg_tb_size)] if args.tcg_tb_size else []
    peak = 0
    samples = []
    stop = threading.Event()
    pids = {}

    def sampler():
        nonlocal peak
        while not stop.is_set():
            d = pids.get("dir")
            if d:
                tot = 0
                try:
                    with open(os.path.join(d, "shim.pid")) as f:
                        shim = int(f.read())
                    tot += pss_kb(shim)
                    # QEMU is the shim's only child.
                    with open("/proc/%d/task/%d/children" % (shim, shim)) as f:
                        for c in f.read().split():
                            tot += pss_kb(int(c))
                except (OSError, ValueError):
                    pass
                peak = max(peak, tot)
            time.sleep(0.05)

    # Pod() blocks until ready; sample from a thread meanwhile. The state dir is known only
    # once Pod() has made it, so poll the newest pv-pod-* dir.
    t = threading.Thread(target=sampler, daemon=True)
    before = set(os.listdir("/tmp"))
    t.start()

    def find_dir():
        while not stop.is_set() and "dir" not in pids:
            new = [x for x in set(os.listdir("/tmp")) - before if x.startswith("pv-pod-")]
            if new:
                pids["dir"] = os.path.join("/tmp", new[0], "state")
            time.sleep(0.01)

    threading.Thread(target=find_dir, daemon=True).start()
    t0 = time.monotonic()
    pod = Pod(accel=args.accel, memory_mib=args.memory_mib, extra=extra, boot_timeout_ms=300000)
    boot = time.monotonic() - t0
    try:
        time.sleep(args.idle)
        stop.set()
        st = pod.status()
        shim_pss, qemu_pss = pss_kb(st["shim_pid"]), pss_kb(st["vmm_pid"])
        samples.append((shim_pss, qemu_pss))
        print("accelerator:           %s" % st["accel"])
        print("guest memory:          %d MiB, %d vCPU" % (st["memory_mib"], st["vcpus"]))
        print("boot (spawn -> ready): %.2f s" % boot)
        print("idle pod PSS peak:     %.1f MiB (QEMU + shim, sampled every 50 ms during boot)" % (peak / 1024))
        print("idle pod PSS steady:   %.1f MiB (QEMU %.1f + shim %.1f, after %d s idle)" %
              ((shim_pss + qemu_pss) / 1024, qemu_pss / 1024, shim_pss / 1024, args.idle))
    finally:
        stop.set()
        pod.stop()


def start_many(args, parallel):
    extra = ["--tcg-tb-size", str(args.tcg_tb_size)] if args.tcg_tb_size else []
    pods, times, errors = [], [], []
    lock = threading.Lock()

    def one():
        t0 = time.monotonic()
        try:
            p = Pod(accel=args.accel, memory_mib=args.memory_mib, extra=extra, boot_timeout_ms=600000)
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(str(e))
            return
        with lock:
            pods.append(p)
            times.append(time.monotonic() - t0)

    t0 = time.monotonic()
    try:
        if parallel:
            ths = [threading.Thread(target=one) for _ in range(args.pods)]
            for th in ths:
                th.start()
            for th in ths:
                th.join()
        else:
            for _ in range(args.pods):
                one()
        wall = time.monotonic() - t0
        mode = "all at once     " if parallel else "one after another"
        if times:
            print("%d pods %s: %.2f s total; per pod median %.2f s, min %.2f, max %.2f%s" %
                  (args.pods, mode, wall, statistics.median(times), min(times), max(times),
                   "" if not errors else " (%d failed: %s)" % (len(errors), errors[0][:200])))
        else:
            print("%d pods %s: all failed: %s" % (args.pods, mode, errors[:1]))
    finally:
        for p in pods:
            p.stop()
        for p in pods:
            assert not pid_alive(p.vmm_pid) and not pid_alive(p.shim_pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=10)
    ap.add_argument("--idle", type=int, default=10)
    ap.add_argument("--accel", default="auto")
    ap.add_argument("--memory-mib", type=int, default=256)
    ap.add_argument("--tcg-tb-size", type=int, default=0)
    args = ap.parse_args()
    print("== podvisor pod bench (%s)" % time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    memory(args)
    start_many(args, parallel=False)
    start_many(args, parallel=True)


if __name__ == "__main__":
    main()
