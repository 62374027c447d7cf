"""e2e: the arm64 guest (kernel/arm64.config Image + the cross-built agent's initramfs) boots on
QEMU virt under TCG and runs containers from an arm64 busybox rootfs.

The rootfs disks hold Debian's busybox-static:arm64 (fetched with `apt-get download`): the
host cannot run them, so a container that answers proves the whole guest is arm64.
"""

import os
import shutil
import tempfile

import pytest

import agent_util as au

MAC = "52:54:00:12:34:64"


@pytest.fixture(scope="module")
def vm():
    kernel = au.find_kernel("arm64")
    for p in (au.agentctl(), au.initramfs("arm64"), kernel):
        if not p or not os.path.exists(p):
            pytest.fail(f"{p or 'the arm64 kernel'} not built (make build builds both guest architectures)")
    work = tempfile.mkdtemp(prefix="pv-arm64-e2e-")
    busybox = au.debian_busybox("arm64")
    disks = {name: au.make_rootfs_image(os.path.join(work, name + ".img"), busybox=busybox,
                                        extra_files={"/etc/marker": name + "\n"})
             for name in ("a1", "a2")}
    g = au.GuestVM(work, arch="arm64", kernel=kernel, blk_disks=[(disks["a1"], "ctr1")],
                   scsi_disks=[(disks["a2"], 1)], net_mac=MAC)
    g.start()
    try:
        g.ready_s = g.wait_ready(timeout=300)
        yield g
    finally:
        g.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_ping_from_arm64_guest(vm):
    p = vm.ctl_json("ping")
    assert p["protocol_version"] == 1
    assert p["kernel_release"].startswith("6.1")
    assert p["uptime_ns"] > 0


def test_container_is_aarch64(vm):
    # The blk disk (by serial) and the SCSI disk (by H:C:T:L) both carry an arm64 busybox.
    r = vm.ctl("run", "u1", "--serial", "ctr1", "--", "/bin/sh", "-c", "uname -m; cat /etc/marker; exit 7",
               check=False)
    assert r.returncode == 7, r.stderr
    assert r.stdout.split() == ["aarch64", "a1"]
    vm.ctl("remove", "u1")
    r = vm.ctl("run", "u2", "--scsi", "0:0:1:0", "--hostname", "armhost", "--memory", "67108864", "--",
               "/bin/sh", "-c", "echo $$; hostname; uname -m; cat /etc/marker")
    assert r.stdout.split() == ["1", "armhost", "aarch64", "a2"]
    vm.ctl("remove", "u2")


def test_arm64_guest_network_interface(vm):
    iface = vm.ctl_json("set-iface", "--mac", MAC, "--addr", "10.0.2.15/24", "--up")
    assert iface["mac"] == MAC and iface["up"]
    got = {i["mac"]: i for i in vm.ctl_json("list-ifaces")}[MAC]
    assert {"address": "10.0.2.15", "prefix_len": 24} in got["addresses"]


@pytest.fixture(scope="module")
def vm_x86():
    """The arm64-x86 handler's guest: the same kernel, the initramfs that adds qemu-x86_64."""
    kernel = au.find_kernel("arm64")
    initrd = os.path.join(au.BUILD, "guest", "arm64", "initramfs-x86.cpio")
    for p in (kernel, initrd):
        if not p or not os.path.exists(p):
            pytest.fail(f"{p or 'the arm64 kernel'} not built")
    work = tempfile.mkdtemp(prefix="pv-arm64x86-e2e-")
    # An x86_64 rootfs (the host's Debian busybox-static) and an arm64 one side by side.
    x86 = au.make_rootfs_image(os.path.join(work, "x86.img"), busybox=au.debian_busybox("amd64"))
    arm = au.make_rootfs_image(os.path.join(work, "arm.img"), busybox=au.debian_busybox("arm64"))
    g = au.GuestVM(work, arch="arm64", kernel=kernel, initrd=initrd,
                   blk_disks=[(x86, "x86"), (arm, "arm")])
    g.start()
    try:
        g.ready_s = g.wait_ready(timeout=300)
        yield g
    finally:
        g.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_x86_64_binary_runs_in_arm64_guest_through_binfmt(vm_x86):
    assert "binfmt registered" in vm_x86.console() and "enabled=yes" in vm_x86.console(), vm_x86.console()[-2000:]
    # qemu-x86_64 answers uname -m with the emulated machine; the kernel stays aarch64.
    r = vm_x86.ctl("run", "x1", "--serial", "x86", "--", "/bin/sh", "-c", "uname -m; echo $((6 * 7)); exit 5",
                   check=False)
    assert r.returncode == 5, r.stderr
    assert r.stdout.split() == ["x86_64", "42"]
    vm_x86.ctl("remove", "x1")
    r = vm_x86.ctl("run", "a1", "--serial", "arm", "--", "/bin/uname", "-m")
    assert r.stdout.strip() == "aarch64"
    vm_x86.ctl("remove", "a1")


def test_plain_arm64_initramfs_has_no_emulator(vm):
    # Opt-in: the plain arm64 guest registers nothing (only the arm64-x86 initramfs does).
    assert "agent ready" in vm.console()
    assert "binfmt" not in vm.console()


def test_arm64_guest_shutdown_ends_qemu(vm):
    # The agent's shutdown is a reboot(2): PSCI SYSTEM_RESET, which -no-reboot makes QEMU's exit.
    vm.ctl("shutdown", check=False)
    assert vm.proc.wait(timeout=60) == 0
