"""Helpers for shim e2e tests and the pod bench: a pod VM driven through podvisor-shimctl.

Everything started here is stopped by pid in Pod.stop(): the shim (from its pid file),
QEMU (from the shim's recorded state) and any ctl client a test left running.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

BUILD = os.environ.get("PODVISOR_BUILD", os.path.join(os.path.dirname(__file__), "..", "build"))
SHIMCTL = os.path.join(BUILD, "bin", "podvisor-shimctl")
SHIM = os.path.join(BUILD, "bin", "podvisor-shim")
FAKE_QEMU = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_qemu.py")


def kernel_path():
    """The guest kernel: $PODVISOR_KERNEL, $(BUILD)/kernel/vmlinux, or None."""
    for p in (os.environ.get("PODVISOR_KERNEL"), os.path.join(BUILD, "kernel", "vmlinux")):
        if p and os.path.exists(p):
            return p
    return None


def initramfs_path():
    for p in (os.environ.get("PODVISOR_INITRAMFS"), os.path.join(BUILD, "guest", "initramfs.cpio")):
        if p and os.path.exists(p):
            return p
    return None


def pid_alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(pred, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def make_ext4(path, files=None, size_mb=16):
    """An ext4 image with busybox-static as /bin/busybox (+ sh, applets) and extra files."""
    root = tempfile.mkdtemp(prefix="pv-rootfs-")
    try:
        for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "run"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        shutil.copy("/bin/busybox", os.path.join(root, "bin", "busybox"))
        for applet in ("sh", "echo", "cat", "sleep", "ls", "true", "false", "mount", "ps"):
            os.symlink("busybox", os.path.join(root, "bin", applet))
        for rel, content in (files or {}).items():
            p = os.path.join(root, rel.lstrip("/"))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(content)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", root, path, "%dM" % size_mb], check=True,
                       stdout=subprocess.DEVNULL)
    finally:
        shutil.rmtree(root)
    return path


class CtlError(Exception):
    def __init__(self, err):
        super().__init__("%s: %s" % (err.get("code"), err.get("message")))
        self.code = err.get("code")
        self.message = err.get("message")


def shimctl(*args, timeout=180, check=True):
    p = subprocess.run([SHIMCTL] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    out = p.stdout.decode().strip()
    try:
        j = json.loads(out.splitlines()[-1]) if out else {}
    except ValueError:
        raise AssertionError("shimctl %s: bad output %r stderr=%r" % (args, out, p.stderr))
    if check and "error" in j:
        raise CtlError(j["error"])
    return j


class Pod:
    """One pod VM owned by a podvisor-shim, in a temporary state dir."""

    def __init__(self, accel="auto", memory_mib=256, boot_timeout_ms=120000, kernel=None, initramfs=None,
                 extra=(), fake=False):
        """fake=True: e2e/fake_qemu.py stands in for QEMU and the guest agent (fast, no kernel)."""
        self.fake = fake
        if fake:
            kernel = initramfs = FAKE_QEMU
            extra = list(extra) + ["--qemu", FAKE_QEMU]
            accel = "tcg"
        self.dir = tempfile.mkdtemp(prefix="pv-pod-", dir="/tmp")
        self.state_dir = os.path.join(self.dir, "state")
        self.clients = []
        self.vmm_pid = None
        self.shim_pid = None
        args = ["spawn", "--state-dir", self.state_dir, "--kernel", kernel or kernel_path(),
                "--initramfs", initramfs or initramfs_path(), "--accel", accel, "--memory-mib", memory_mib,
                "--boot-timeout-ms", boot_timeout_ms, "--shim", SHIM, "--log-level", "debug"] + list(extra)
        self.spawn_result = shimctl(*args, check=False, timeout=boot_timeout_ms / 1000 + 60)
        if "error" in self.spawn_result:
            self.stop()
            raise CtlError(self.spawn_result["error"])
        self.shim_pid = self.spawn_result["shim_pid"]
        st = self.status()
        self.vmm_pid = st["vmm_pid"]

    def ctl(self, *args, **kw):
        return shimctl("-s", self.state_dir, *args, **kw)

    def status(self):
        return self.ctl("status")

    def offline_state(self):
        return self.ctl("state")

    def container(self, cid):
        for c in self.status()["containers"]:
            if c["id"] == cid:
                return c
        return None

    def popen_ctl(self, *args):
        """A long-running ctl client (e.g. wait) that the test may kill."""
        p = subprocess.Popen([SHIMCTL, "-s", self.state_dir] + [str(a) for a in args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.clients.append(p)
        return p

    def log(self, name):
        try:
            with open(os.path.join(self.state_dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, graceful=True):
        """Shut the pod down; then make sure shim and QEMU are gone, by pid."""
        for p in self.clients:
            if p.poll() is None:
                p.kill()
            p.wait()
        if self.shim_pid is None:
            try:
                with open(os.path.join(self.state_dir, "shim.pid")) as f:
                    self.shim_pid = int(f.read())
            except (OSError, ValueError):
                pass
        if graceful and pid_alive(self.shim_pid):
            try:
                self.ctl("shutdown", 10000, timeout=90)
            except Exception:
                pass
            try:
                wait_for(lambda: not pid_alive(self.shim_pid), 30, "shim exit")
            except AssertionError:
                pass
        for pid in (self.shim_pid, self.vmm_pid):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: not pid_alive(pid), 10, "pid %d to die" % pid)
        if os.environ.get("PV_KEEP_POD"):  # debugging: keep logs and state
            print("pod state kept in", self.state_dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
