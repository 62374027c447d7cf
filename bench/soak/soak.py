#!/usr/bin/env python3
"""Soak: many real pod VMs started and removed in rounds, and nothing may be left behind.

Each round starts --pods pods (default 50, --parallel at a time), each with two containers
(one that exits at once, one that keeps running), checks every pod is READY with one
container EXITED(0) and one RUNNING, then stops and removes them all. After the last round:
no QEMU or shim of the daemon's, no pod netns or tap, no mount under the state or root
folders, no file left under <state>/pods or <root>/pods|containers|disks, and podvisord's
open fds back to where they were before the first round (/proc/PID/fd). (podvisor makes
no host cgroup per pod: the shims and VMs stay in podvisord's own.)

Prints per round: wall time to all-ready, to all-removed; at the end the fd counts and the
leftovers (a leftover fails the run, exit 1).

Usage: bench/soak/soak.py [--pods 50] [--rounds 3] [--parallel 8] [--build DIR]
Needs root (CNI networking, netns).
"""
import argparse
import concurrent.futures as cf
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(HERE, "..", "..", "e2e")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def mounts_under(prefixes):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if any(mp.startswith(p.rstrip("/") + "/") for p in prefixes):
                out.append(mp)
    return out


def files_under(path):
    out = []
    for root, dirs, files in os.walk(path):
        out += [os.path.join(root, x) for x in files]
    return out


def netns_names():
    try:
        return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    except OSError:
        return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--build", default=os.environ.get("PODVISOR_BUILD") or os.path.join(HERE, "..", "..", "build"))
    args = ap.parse_args()
    os.environ["PODVISOR_BUILD"] = os.path.abspath(args.build)
    sys.path[:0] = [os.path.join(os.environ["PODVISOR_BUILD"], "py"), E2E]
    import conftest
    import cri_pb2
    from image_util import Registry
    from net_util import NetEnv
    from test_pods import busybox_image, ctr_config, pod_config

    reg = Registry()
    net = NetEnv(ipam_range=None)
    d = None
    problems = []
    try:
        reg.push_image("soak/busybox", "1", busybox_image())
        d = conftest.Daemon({"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir}})
        rt = d.runtime
        image = "%s/soak/busybox:1" % reg.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
        logdir = os.path.join(d.dir, "logs")
        os.makedirs(logdir)
        # One pod first, so that lazily opened fds (registry client, CNI) are counted in the baseline.
        fds_before = None
        links_before = set(os.listdir("/sys/class/net"))
        ns_before = set(netns_names())

        def one_pod(rnd, i):
            name = "soak-%d-%d" % (rnd, i)
            cfg = pod_config(name, logdir)
            pod = rt.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=cfg), timeout=600).pod_sandbox_id
            ids = []
            for cname, cmd in (("once", ["/bin/true"]), ("stays", ["/bin/sleep", "100000"])):
                cid = rt.CreateContainer(cri_pb2.CreateContainerRequest(
                    pod_sandbox_id=pod, config=ctr_config(image, cname, cmd, log="%s-%s.log" % (name, cname)),
                    sandbox_config=cfg), timeout=600).container_id
                rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=300)
                ids.append(cid)
            return pod, ids

        def check_pod(pod, ids):
            st = rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=60).status
            if st.state != cri_pb2.SANDBOX_READY:
                problems.append("pod %s not READY" % pod)
            deadline = time.monotonic() + 60
            while True:
                once = rt.ContainerStatus(cri_pb2.ContainerStatusRequest(container_id=ids[0]), timeout=60).status
                if once.state == cri_pb2.CONTAINER_EXITED or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            stays = rt.ContainerStatus(cri_pb2.ContainerStatusRequest(container_id=ids[1]), timeout=60).status
            if once.state != cri_pb2.CONTAINER_EXITED or once.exit_code != 0:
                problems.append("container %s: %s exit %d" % (ids[0], once.state, once.exit_code))
            if stays.state != cri_pb2.CONTAINER_RUNNING:
                problems.append("container %s: %s, not RUNNING" % (ids[1], stays.state))

        def remove(pod):
            rt.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=600)
            rt.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=600)

        warm, ids = one_pod(0, 0)
        check_pod(warm, ids)
        remove(warm)
        fds_before = fd_count(d.proc.pid)

        with cf.ThreadPoolExecutor(max_workers=args.parallel) as ex:
            for rnd in range(1, args.rounds + 1):
                t0 = time.monotonic()
                pods = list(ex.map(lambda i: one_pod(rnd, i), range(args.pods)))
                t_ready = time.monotonic() - t0
                list(ex.map(lambda p: check_pod(*p), pods))
                t1 = time.monotonic()
                list(ex.map(lambda p: remove(p[0]), pods))
                t_removed = time.monotonic() - t1
                left = rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=60).items
                print("round %d: %d pods x 2 containers ready in %.1f s, removed in %.1f s, pods listed after: %d"
                      % (rnd, args.pods, t_ready, t_removed, len(left)), flush=True)
                if left:
                    problems.append("round %d: %d pods still listed" % (rnd, len(left)))

        time.sleep(1)
        fds_after = fd_count(d.proc.pid)
        print("podvisord open fds: %d before the rounds, %d after" % (fds_before, fds_after))
        if fds_after > fds_before:
            problems.append("podvisord fd count grew from %d to %d" % (fds_before, fds_after))
        leftovers = {
            "processes (QEMU, shims)": d.leftover_pids(),
            # podvisord's own templates tmpfs stays while it runs (checked again after it stops).
            "mounts under state/root": [m for m in mounts_under([d.state, d.root])
                                        if m != os.path.join(d.state, "templates")],
            "files under <state>/pods": files_under(os.path.join(d.state, "pods")),
            "files under <root>/pods": files_under(os.path.join(d.root, "pods")),
            "files under <root>/containers": files_under(os.path.join(d.root, "containers")),
            "container disks under <root>/disks": files_under(os.path.join(d.root, "disks")),
            "files in the netns dir": files_under(net.netns_dir),
            "new links (taps, veths)": sorted(set(os.listdir("/sys/class/net")) - links_before - {net.bridge}),
            "new named netns": sorted(set(netns_names()) - ns_before),
        }
        for what, items in leftovers.items():
            print("left behind, %s: %d" % (what, len(items)))
            if items:
                problems.append("%s: %s" % (what, items[:5]))
    finally:
        if d:
            d.cleanup()
            after = mounts_under([d.state, d.root])
            print("left behind after podvisord stopped, mounts under state/root: %d" % len(after))
            if after:
                problems.append("mounts after podvisord stopped: %s" % after[:5])
        net.cleanup()
        reg.stop()
    if problems:
        print("SOAK FAILED:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("soak: nothing left behind")


if __name__ == "__main__":
    main()
