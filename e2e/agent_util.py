"""Helpers for tests and benchmarks that boot a pod VM and talk to podvisor-agent.

The host side of the protocol is podvisor-agentctl (guest-agent/agentctl.c), a
client of common/agent_client. QEMU runs microvm (acpi=off) under TCG here; the arm64
guest (arch="arm64") runs on QEMU virt under TCG.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

BUILD = os.environ.get("PODVISOR_BUILD") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "build"))
KERNEL_CACHE = "/var/cache/podvisor/kernel"
STOCK_MODULES = ["virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                 "virtio_pci", "virtio_console"]
# What containers and networking need on top (e2e fallback when our kernel is not built).
STOCK_MODULES_FULL = STOCK_MODULES + [
    "virtio_blk", "crc16", "mbcache", "jbd2", "crc32c_generic", "ext4", "failover", "net_failover",
    "virtio_net", "scsi_common", "scsi_mod", "virtio_scsi", "crc64", "crc64-rocksoft", "crct10dif_common",
    "crc-t10dif", "t10-pi", "sd_mod"]


def host_tsc_khz():
    """The host TSC rate from dmesg: under TCG the guest TSC ticks at it, and telling the
    guest (tsc_early_khz=) avoids a flaky calibration against the emulated PIT."""
    try:
        out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    mhz = None
    for line in out.splitlines():
        for key in ("tsc: Detected ", "tsc: Refined TSC clocksource calibration: "):
            if key in line and "MHz" in line:
                try:
                    mhz = float(line.split(key, 1)[1].split()[0])
                except ValueError:
                    pass
    return int(mhz * 1000) if mhz else None


# The arm64 guest's -cpu under TCG: cortex-a57 boots to agent-ready faster than `max`
# (no pointer-authentication, SVE or MTE to emulate); docs/arm64.md has the measurements.
ARM64_CPU = os.environ.get("PODVISOR_ARM64_CPU", "cortex-a57")


def agentctl():
    return os.path.join(BUILD, "bin", "podvisor-agentctl")


def initramfs(arch="x86_64"):
    if arch == "arm64":
        return os.path.join(BUILD, "guest", "arm64", "initramfs.cpio")
    return os.path.join(BUILD, "guest", "initramfs.cpio")


def find_kernel(arch="x86_64"):
    """Our guest kernel: $PODVISOR_KERNEL, $(BUILD)/kernel/vmlinux, or the build cache
    (arm64: $PODVISOR_KERNEL_ARM64, $(BUILD)/kernel/arm64/Image, or the cache's Image files)."""
    if arch == "arm64":
        cands, product = [os.environ.get("PODVISOR_KERNEL_ARM64"),
                          os.path.join(BUILD, "kernel", "arm64", "Image")], "Image"
    else:
        cands, product = [os.environ.get("PODVISOR_KERNEL"), os.path.join(BUILD, "kernel", "vmlinux")], "vmlinux"
    if os.path.isdir(KERNEL_CACHE):
        cached = [os.path.join(KERNEL_CACHE, d, product) for d in os.listdir(KERNEL_CACHE)]
        cands += sorted((c for c in cached if os.path.isfile(c)), key=os.path.getmtime, reverse=True)
    for c in cands:
        if c and os.path.isfile(c):
            return c
    return None


def find_stock_kernel():
    """Debian's linux-image-amd64 vmlinuz and its module dir, or (None, None)."""
    if not os.path.isdir("/boot"):
        return None, None
    for name in sorted(os.listdir("/boot"), reverse=True):
        if name.startswith("vmlinuz-"):
            release = name[len("vmlinuz-"):]
            mods = os.path.join("/lib/modules", release)
            if os.path.isdir(mods):
                return os.path.join("/boot", name), mods
    return None, None


def stock_initramfs(out, moddir, modules=None):
    """Our initramfs plus the virtio modules a stock kernel needs (loaded by the agent)."""
    modules = modules or STOCK_MODULES
    stage = tempfile.mkdtemp(prefix="pv-stock-initrd-")
    try:
        with open(initramfs(), "rb") as f:
            subprocess.run(["cpio", "-id", "--quiet"], stdin=f, cwd=stage, check=True)
        libmod = os.path.join(stage, "lib", "modules")
        os.makedirs(libmod, exist_ok=True)
        found = {}
        for root, _dirs, files in os.walk(os.path.join(moddir, "kernel")):
            for fn in files:
                if fn.endswith(".ko") and fn[:-3] in modules:
                    found[fn[:-3]] = os.path.join(root, fn)
        with open(os.path.join(libmod, "load.list"), "w") as lst:
            for m in modules:
                if m in found:  # some may be built in
                    shutil.copy(found[m], libmod)
                    lst.write(m + ".ko\n")
        files = subprocess.run(["find", ".", "-mindepth", "1"], cwd=stage, check=True,
                               capture_output=True, text=True).stdout
        with open(out, "wb") as f:
            subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "--owner=0:0"], input=files.encode(),
                           cwd=stage, stdout=f, check=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def debian_busybox(arch):
    """Debian's static busybox for arch ("amd64", "arm64"): /bin/busybox for the host's own,
    otherwise busybox-static:<arch> fetched once with `apt-get download` into $(BUILD)/debs."""
    if arch in ("amd64", "x86_64") and os.uname().machine == "x86_64":
        return "/bin/busybox"
    dest = os.path.join(BUILD, "debs", f"busybox-{arch}")
    path = os.path.join(dest, "bin", "busybox")
    if os.path.isfile(path):
        return path
    dl = tempfile.mkdtemp(prefix="pv-deb-")
    try:
        # APT::Sandbox::User=root: the temp dir is root's; _apt could not write there.
        subprocess.run(["apt-get", "download", "-qq", "-o", "APT::Sandbox::User=root",
                        f"busybox-static:{arch}"], cwd=dl, check=True, capture_output=True)
        deb = [f for f in os.listdir(dl) if f.endswith(".deb")][0]
        unpack = dest + ".tmp"
        shutil.rmtree(unpack, ignore_errors=True)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", os.path.join(dl, deb), unpack], check=True)
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(unpack, dest)
    finally:
        shutil.rmtree(dl, ignore_errors=True)
    return path


def make_rootfs_image(path, size_mb=24, extra_files=None, busybox="/bin/busybox"):
    """An ext4 image with static busybox at /bin/busybox and /bin/sh -> busybox."""
    stage = tempfile.mkdtemp(prefix="pv-rootfs-")
    try:
        for d in ("bin", "proc", "sys", "dev", "etc", "tmp", "root"):
            os.makedirs(os.path.join(stage, d), exist_ok=True)
        shutil.copy(busybox, os.path.join(stage, "bin", "busybox"))
        for applet in ("sh", "echo", "cat", "sleep", "hostname", "ls", "id", "ps", "mount", "true", "yes",
                       "head", "wc", "env", "pwd", "uname"):
            os.symlink("busybox", os.path.join(stage, "bin", applet))
        for rel, data in (extra_files or {}).items():
            p = os.path.join(stage, rel.lstrip("/"))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(data)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", stage, path, f"{size_mb}M"],
                       check=True, capture_output=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return path


class GuestVM:
    """One QEMU process booting kernel + initramfs with the agent channel on a unix socket."""

    def __init__(self, workdir, kernel=None, initrd=None, blk_disks=(), scsi_disks=(), net_mac=None,
                 stock=False, mem_mb=256, arch="x86_64", cpu=None):
        self.workdir = workdir
        self.arch = arch
        self.cpu = cpu
        self.kernel = kernel or find_kernel(arch)
        self.initrd = initrd or initramfs(arch)
        self.sock = os.path.join(workdir, "agent.sock")
        self.console_path = os.path.join(workdir, "console.log")
        self.blk_disks = list(blk_disks)      # [(path, serial)]
        self.scsi_disks = list(scsi_disks)    # [(path, scsi_id)] on bus 0, channel 0, lun 0
        self.net_mac = net_mac
        self.stock = stock
        self.mem_mb = mem_mb
        self.proc = None
        self.started_at = None

    def cmdline(self):
        if self.arch == "arm64":
            return self._cmdline_arm64()
        # reboot=t + -no-reboot: without ACPI there is no power-off; a triple fault ends QEMU.
        append = "console=ttyS0 reboot=t panic=-1 quiet"
        if self.stock:
            # Debian's kernel has virtio as modules and no virtio-mmio command-line devices:
            # q35 with virtio-pci, modules loaded by the agent from the initramfs.
            machine = ["-M", "q35", "-device", "virtio-serial-pci"]
            blk_dev, scsi_dev, net_dev = "virtio-blk-pci", "virtio-scsi-pci", "virtio-net-pci"
            khz = host_tsc_khz()
            append += f" tsc_early_khz={khz}" if khz else ""
        else:
            # pit/pic on: TCG has no TSC-deadline timer and the kernel checks its LAPIC timer
            # against PIT ticks; rtc on: the boot-time CMOS read spins 1 s without it
            # (kernel/boot-check.sh explains these).
            machine = ["-M", "microvm,acpi=off,x-option-roms=off,rtc=on,pit=on,pic=on,isa-serial=on",
                       "-device", "virtio-serial-device"]
            append += " acpi=off"
            khz = host_tsc_khz()
            append += f" tsc_early_khz={khz}" if khz else " lpj=4000000"
            blk_dev, scsi_dev, net_dev = "virtio-blk-device", "virtio-scsi-device", "virtio-net-device"
        cmd = ["qemu-system-x86_64", *machine, "-accel", "tcg", "-cpu", "max", "-m", str(self.mem_mb),
               "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
               "-serial", "file:" + self.console_path,
               "-kernel", self.kernel, "-initrd", self.initrd, "-append", append,
               "-chardev", f"socket,id=agent,path={self.sock},server=on,wait=off",
               "-device", "virtserialport,chardev=agent,name=podvisor.agent"]
        return cmd + self._disk_net_args(blk_dev, scsi_dev, net_dev)

    def _cmdline_arm64(self):
        # QEMU virt: the device tree lists GIC v3, PL011 (ttyAMA0), PSCI, the arch timer and 32
        # virtio-mmio transports; the guest's reboot (PSCI reset) + -no-reboot ends QEMU.
        cmd = ["qemu-system-aarch64", "-M", "virt,gic-version=3", "-accel", "tcg",
               "-cpu", self.cpu or ARM64_CPU, "-m", str(self.mem_mb),
               "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
               "-serial", "file:" + self.console_path,
               "-kernel", self.kernel, "-initrd", self.initrd, "-append", "console=ttyAMA0 panic=-1 quiet",
               "-device", "virtio-serial-device",
               "-chardev", f"socket,id=agent,path={self.sock},server=on,wait=off",
               "-device", "virtserialport,chardev=agent,name=podvisor.agent"]
        return cmd + self._disk_net_args("virtio-blk-device", "virtio-scsi-device", "virtio-net-device")

    def _disk_net_args(self, blk_dev, scsi_dev, net_dev):
        cmd = []
        for i, (path, serial) in enumerate(self.blk_disks):
            cmd += ["-drive", f"file={path},format=raw,if=none,id=blk{i},cache=unsafe",
                    "-device", f"{blk_dev},drive=blk{i},serial={serial}"]
        if self.scsi_disks:
            cmd += ["-device", f"{scsi_dev},id=scsi0"]
            for i, (path, scsi_id) in enumerate(self.scsi_disks):
                cmd += ["-drive", f"file={path},format=raw,if=none,id=scsi{i},cache=unsafe",
                        "-device", f"scsi-hd,drive=scsi{i},bus=scsi0.0,channel=0,scsi-id={scsi_id},lun=0"]
        if self.net_mac:
            cmd += ["-netdev", "user,id=n0", "-device", f"{net_dev},netdev=n0,mac={self.net_mac}"]
        return cmd

    def start(self):
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.cmdline(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.workdir, "qemu.err"), "wb"),
                                     start_new_session=True)
        return self

    def console(self):
        try:
            with open(self.console_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def ctl(self, *args, timeout=120, check=True, input=None):
        """Run podvisor-agentctl against this VM; returns CompletedProcess (text)."""
        cmd = [agentctl(), "-s", self.sock, "-t", str(int(timeout * 1000)), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"agentctl {' '.join(args)} failed rc={r.returncode}\n"
                                 f"stdout={r.stdout}\nstderr={r.stderr}\nconsole=\n{self.console()[-3000:]}")
        return r

    def ctl_json(self, *args, timeout=120):
        return json.loads(self.ctl(*args, timeout=timeout).stdout)

    def wait_ready(self, timeout=180):
        """Ping until the agent answers; returns seconds since QEMU start."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"qemu exited rc={self.proc.returncode}\nconsole=\n{self.console()[-3000:]}")
            r = self.ctl("ping", timeout=max(1, deadline - time.monotonic()), check=False)
            if r.returncode == 0:
                return time.monotonic() - self.started_at
            if time.monotonic() > deadline:
                raise AssertionError(f"agent not ready: {r.stderr}\nconsole=\n{self.console()[-3000:]}")
            time.sleep(0.05)

    def stop(self, timeout=10):
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
