#!/usr/bin/env python3
"""Pull+unpack benchmark: podvisor-image (registry -> verified blobs -> ext4 via libext2fs)
against `skopeo copy` + tar extraction + `mkfs.ext4 -d` of the same image, same run.

The image (~100 MB, several layers of incompressible and compressible files) is built here
and pushed to a docker-registry on loopback. Prints the median of --runs runs and the ratio.

  make BUILD=build/rel build/rel/bin/podvisor-image
  python3 bench/image/bench.py --build build/rel [--runs 5] [--mb 100]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "e2e"))
import image_util as iu  # noqa: E402


def make_layers(total_mb, n_layers=4):
    """Half random (incompressible) data, half text-like (compressible), spread over layers."""
    per_layer = total_mb * 1024 * 1024 // n_layers
    layers = []
    words = b"podvisor runs every pod in its own micro vm with an ext4 root filesystem "
    for li in range(n_layers):
        entries = [iu.Entry("layer%d" % li, kind="dir", mode=0o755)]
        done, i = 0, 0
        while done < per_layer:
            size = min(1 << 20, per_layer - done) if i % 4 else min(4 << 20, per_layer - done)
            if i % 2:
                data = (words * (size // len(words) + 1))[:size]
            else:
                data = os.urandom(size)
            entries.append(iu.Entry("layer%d/file%04d" % (li, i), data, mode=0o644))
            done += size
            i += 1
        for j in range(200):  # many small files too
            entries.append(iu.Entry("layer%d/small/s%03d" % (li, j), b"x" * (j * 10)))
        layers.append(iu.make_tar(entries))
    return layers


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def run_podvisor(tool, ref, work):
    root = os.path.join(work, "pv-root")
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run([tool, "--root", root, "pull", ref], check=True, stdout=subprocess.DEVNULL)
    path = subprocess.run([tool, "--root", root, "ext4", ref], check=True, stdout=subprocess.PIPE
                          ).stdout.decode().strip()
    return path


def run_skopeo(ref, work):
    oci = os.path.join(work, "oci")
    rootfs = os.path.join(work, "rootfs")
    img = os.path.join(work, "skopeo.ext4")
    for p in (oci, rootfs, img):
        shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else (os.path.exists(p) and os.unlink(p))
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "docker://" + ref, "dir:" + oci],
                   check=True, stdout=subprocess.DEVNULL)
    import json
    manifest = json.load(open(os.path.join(oci, "manifest.json")))
    os.makedirs(rootfs)
    for l in manifest["layers"]:
        subprocess.run(["tar", "-xzf", os.path.join(oci, l["digest"].split(":")[1]), "-C", rootfs],
                       check=True)
    used = int(subprocess.run(["du", "-sk", rootfs], check=True, stdout=subprocess.PIPE).stdout.split()[0])
    size_kb = used + used // 5 + 16384
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", rootfs, img, "%dk" % size_kb], check=True,
                   stdout=subprocess.DEVNULL)
    return img


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("PODVISOR_BUILD", "build"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mb", type=int, default=100)
    a = ap.parse_args()
    tool = os.path.join(a.build, "bin", "podvisor-image")
    work = tempfile.mkdtemp(prefix="pv-bench-image-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    reg = iu.Registry()
    try:
        t0 = time.monotonic()
        img = iu.Image(make_layers(a.mb))
        reg.push_image("bench/big", "v1", img)
        ref = reg.host + "/bench/big:v1"
        total = sum(l["size"] for l in img.layers)
        print("image: %d layers, %.1f MB compressed, built+pushed in %.1fs"
              % (len(img.layers), total / 1e6, time.monotonic() - t0))
        pv, sk = [], []
        for i in range(a.runs):
            pv.append(timed(lambda: run_podvisor(tool, ref, work)))
            sk.append(timed(lambda: run_skopeo(ref, work)))
            print("run %d: podvisor-image %.2fs   skopeo+tar+mkfs.ext4 %.2fs" % (i + 1, pv[-1], sk[-1]))
        e4 = run_podvisor(tool, ref, work)
        fsck = subprocess.run(["e2fsck", "-fn", e4], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mp, ms = statistics.median(pv), statistics.median(sk)
        print("median of %d: podvisor-image %.2fs, skopeo copy + tar + mkfs.ext4 -d %.2fs, ratio %.2fx"
              % (a.runs, mp, ms, ms / mp))
        print("ext4 sizes: podvisor %.1f MB (e2fsck %s), mkfs.ext4 %.1f MB"
              % (os.path.getsize(e4) / 1e6, "clean" if fsck.returncode == 0 else "FAILED",
                 os.path.getsize(os.path.join(work, "skopeo.ext4")) / 1e6))
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
