#!/usr/bin/env python3
"""Boot-to-agent-ready benchmark.

Measures, N times each (default 10), the wall time from starting QEMU to the first
successful ping answered by podvisor-agent (PID 1 of the initramfs), for:
  - podvisor: our guest kernel (vmlinux, PVH entry) on microvm,acpi=off;
  - arm64:    our arm64 guest (kernel/arm64.config Image + the arm64 agent) on QEMU virt,
              once per --arm64-cpu (default cortex-a57; e.g. --arm64-cpu cortex-a57,max);
  - stock:    Debian's linux-image-amd64 vmlinuz on q35 (it has no virtio-mmio
              command-line devices and virtio as modules, so it needs PCI and the
              agent loads virtio modules from the same initramfs plus /lib/modules).
Prints the median (and min/max) of each and the ratio stock/podvisor.

Usage: bench/boot/bench_boot.py [--runs N] [--build DIR] [--json] [--arm64-cpu LIST] [--no-stock]
Everything runs under TCG here (no /dev/kvm); see docs/guest.md for what that means.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "e2e"))


def measure(au, kernel, initrd, stock, runs, arch="x86_64", cpu=None):
    times = []
    for _ in range(runs):
        work = tempfile.mkdtemp(prefix="pv-bench-boot-")
        vm = au.GuestVM(work, kernel=kernel, initrd=initrd, stock=stock, arch=arch, cpu=cpu)
        try:
            vm.start()
            times.append(vm.wait_ready(timeout=300))
        finally:
            vm.stop()
            shutil.rmtree(work, ignore_errors=True)
    return times


def summary(name, desc, times):
    return {"name": name, "setup": desc, "runs": len(times), "median_s": statistics.median(times),
            "min_s": min(times), "max_s": max(times), "all_s": [round(t, 3) for t in times]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--build", default=os.environ.get("PODVISOR_BUILD") or os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--arm64-cpu", default="cortex-a57", help="comma-separated -cpu models for the arm64 guest")
    ap.add_argument("--no-stock", action="store_true", help="skip Debian's stock kernel")
    args = ap.parse_args()
    os.environ["PODVISOR_BUILD"] = os.path.abspath(args.build)
    import agent_util as au  # noqa: E402 (needs PODVISOR_BUILD set first)

    kernel = au.find_kernel()
    if not kernel:
        sys.exit("bench: no podvisor guest kernel (make kernel)")
    arm64_kernel = au.find_kernel("arm64")
    if not arm64_kernel or not os.path.isfile(au.initramfs("arm64")):
        sys.exit("bench: no arm64 guest (make build builds kernel/arm64 Image and the arm64 initramfs)")
    stock_kernel, moddir = au.find_stock_kernel()
    if not stock_kernel and not args.no_stock:
        sys.exit("bench: no stock kernel in /boot (apt-get install linux-image-amd64, or --no-stock)")
    results = []
    results.append(summary("podvisor", f"{kernel} on microvm,acpi=off (TCG)",
                           measure(au, kernel, au.initramfs(), False, args.runs)))
    for cpu in args.arm64_cpu.split(","):
        results.append(summary(f"arm64/{cpu}", f"{arm64_kernel} on virt,gic-version=3 -cpu {cpu} (TCG)",
                               measure(au, arm64_kernel, au.initramfs("arm64"), False, args.runs,
                                       arch="arm64", cpu=cpu)))
    ratio = None
    if not args.no_stock:
        tmp = tempfile.mkdtemp(prefix="pv-bench-initrd-")
        try:
            initrd = au.stock_initramfs(os.path.join(tmp, "stock.cpio"), moddir)
            results.append(summary("stock", f"{stock_kernel} on q35 + virtio-pci modules (TCG)",
                                   measure(au, stock_kernel, initrd, True, args.runs)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        ratio = results[-1]["median_s"] / results[0]["median_s"]
    if args.json:
        print(json.dumps({"results": results, "ratio_stock_over_podvisor": ratio}, indent=2))
        return
    print(f"boot to agent ready (QEMU start -> first ping answered), {args.runs} boots each")
    for r in results:
        print(f"  {r['name']:18s} median {r['median_s']:.3f} s  (min {r['min_s']:.3f}, max {r['max_s']:.3f})"
              f"  {r['setup']}")
    if ratio:
        print(f"  ratio stock/podvisor: {ratio:.2f}x")


if __name__ == "__main__":
    main()
