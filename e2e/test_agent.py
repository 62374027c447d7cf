"""e2e: boot the guest kernel + initramfs in QEMU (microvm, TCG) and drive podvisor-agent.

Uses our kernel ($(BUILD)/kernel/vmlinux or the kernel build cache). If it is not built,
falls back to Debian's stock kernel on q35 with the virtio modules added to the initramfs
(the agent loads them), so the agent is still tested; the fallback is reported.
"""

import os
import shutil
import socket
import struct
import tempfile
import time

import pytest

import agent_util as au

MAC = "52:54:00:12:34:56"


@pytest.fixture(scope="module")
def vm():
    for p in (au.agentctl(), au.initramfs()):
        if not os.path.exists(p):
            pytest.fail(f"{p} not built")
    work = tempfile.mkdtemp(prefix="pv-agent-e2e-")
    kernel, stock, initrd = au.find_kernel(), False, None
    if not kernel:
        kernel, moddir = au.find_stock_kernel()
        if not kernel:
            shutil.rmtree(work)
            pytest.skip("no guest kernel built and no stock kernel in /boot")
        stock = True
        initrd = au.stock_initramfs(os.path.join(work, "stock.cpio"), moddir, au.STOCK_MODULES_FULL)
        print(f"NOTE: guest kernel not built; using stock kernel {kernel} on q35")
    disks = {}
    for name in ("r1", "r2", "r3"):
        disks[name] = au.make_rootfs_image(os.path.join(work, name + ".img"),
                                           extra_files={"/etc/marker": name + "\n"})
    g = au.GuestVM(work, kernel=kernel, initrd=initrd, stock=stock,
                   blk_disks=[(disks["r1"], "ctr1"), (disks["r2"], "ctr2")],
                   scsi_disks=[(disks["r3"], 1)], net_mac=MAC)
    g.start()
    try:
        g.ready_s = g.wait_ready(timeout=240)
        yield g
    finally:
        g.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_ping(vm):
    p = vm.ctl_json("ping")
    assert p["protocol_version"] == 1
    assert p["kernel_release"]
    assert p["uptime_ns"] > 0


def test_run_echo_exit_code(vm):
    r = vm.ctl("run", "c1", "--serial", "ctr1", "--", "/bin/sh", "-c", "echo hi; exit 3", check=False)
    assert r.returncode == 3, r.stderr
    assert r.stdout == "hi\n"
    assert "exit_code=3 signal=0" in r.stderr
    # The same process again via wait: the status is kept until removal.
    r = vm.ctl("wait", "c1", check=False)
    assert r.returncode == 3
    vm.ctl("remove", "c1")
    r = vm.ctl("wait", "c1", check=False)
    assert r.returncode != 0 and "not found" in r.stderr


def test_two_containers_at_once(vm):
    # A long-running container on a virtio-blk disk (by serial) with limits...
    vm.ctl("create", "long", "--serial", "ctr2", "--no-stdio", "--memory", "67108864", "--pids", "50",
           "--hostname", "longhost", "--", "/bin/sh", "-c", "echo started; exec sleep 600")
    pid = vm.ctl_json("start", "long")["pid"]
    assert pid > 1
    # ...while a second one, on a SCSI disk (by H:C:T:L), runs to completion.
    r = vm.ctl("run", "short", "--scsi", "0:0:1:0", "--hostname", "shorthost", "--",
               "/bin/sh", "-c", "echo $$; hostname; cat /etc/marker")
    assert r.stdout.split() == ["1", "shorthost", "r3"]  # PID 1 of its own PID ns, own UTS ns, own disk
    # exec joins the running container's namespaces.
    r = vm.ctl("exec", "long", "e1", "--", "/bin/sh", "-c", "hostname; cat /etc/marker; cat /proc/1/cmdline")
    out = r.stdout.split("\n")
    assert out[0] == "longhost"
    assert out[1] == "r2"
    assert "sleep" in out[2]
    stats = vm.ctl_json("stats", "long")
    assert stats["memory_limit_bytes"] == 67108864
    assert stats["pids_limit"] == 50
    assert stats["pids_current"] >= 1
    vm.ctl("update", "long", "--pids", "60")
    assert vm.ctl_json("stats", "long")["pids_limit"] == 60
    vm.ctl("signal", "long", "9")
    r = vm.ctl("wait", "long", check=False)
    assert r.returncode == 137
    assert "signal=9" in r.stderr
    vm.ctl("remove", "long")
    vm.ctl("remove", "short")


def test_stdin_and_tty(vm):
    r = vm.ctl("run", "cat1", "--serial", "ctr1", "--stdin", "--", "/bin/sh", "-c", "wc -c; echo done",
               input="x" * 300000)
    assert r.stdout.split() == ["300000", "done"]
    vm.ctl("remove", "cat1")
    r = vm.ctl("run", "tty1", "--serial", "ctr1", "--tty", "--", "/bin/sh", "-c", "test -t 1 && echo tty")
    assert "tty" in r.stdout
    vm.ctl("remove", "tty1")


def test_noisy_unread_output_does_not_starve_rpcs(vm):
    # stdout streams are registered but nobody reads them once this client exits:
    # the agent stops reading the pipe when the stream's credit is used up.
    vm.ctl("create", "noisy", "--serial", "ctr1", "--", "/bin/yes", "podvisor")
    vm.ctl("start", "noisy")
    for _ in range(5):
        t0 = time.monotonic()
        vm.ctl("ping", timeout=60)
        assert time.monotonic() - t0 < 30
    stats = vm.ctl_json("stats", "noisy")
    assert stats["pids_current"] >= 1
    vm.ctl("remove", "noisy")
    assert "fatal" not in vm.console()


def test_sandbox_mounts_user_readonly(vm):
    vm.ctl("sandbox", "--hostname", "pod-a", "--dns", "10.96.0.10", "--sysctl", "net.ipv4.ip_forward=1")
    r = vm.ctl("run", "s1", "--serial", "ctr1", "--ro", "--user", "1000:1001",
               "--mount", "bind:/run/podvisor/resolv.conf:/etc/resolv.conf:ro",
               "--mount", "tmpfs:tmpfs:/scratch:size=1m",
               "--", "/bin/sh", "-c",
               "hostname; id -u; id -g; cat /etc/resolv.conf; cat /proc/sys/net/ipv4/ip_forward; "
               "touch /x 2>/dev/null && echo rootfs-writable; "
               "echo ok > /scratch/f && cat /scratch/f; echo x > /etc/resolv.conf 2>/dev/null || echo ro-bind")
    assert r.stdout.split("\n") == ["pod-a", "1000", "1001", "nameserver 10.96.0.10", "1", "ok", "ro-bind", ""]
    vm.ctl("remove", "s1")


def test_oom_kill_is_reported(vm):
    # One 64 MiB allocation against a 32 MiB limit: the OOM kill comes at once. (Growing a
    # shell variable from a pipe instead can crawl for minutes in reclaim under emulation.)
    r = vm.ctl("run", "oom1", "--serial", "ctr1", "--memory", "33554432", "--",
               "/bin/busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1", check=False)
    assert r.returncode == 137, r.stderr
    assert "signal=9 oom_killed=1" in r.stderr
    assert "records out" not in r.stderr
    vm.ctl("remove", "oom1")


def test_missing_disk_times_out_without_blocking(vm):
    # The agent waits for a (hot-added) disk from a timer, answering when it shows up or
    # when wait_ms passes; meanwhile its loop keeps serving.
    t0 = time.monotonic()
    r = vm.ctl("create", "ghost", "--serial", "no-such-disk", "--wait-ms", "1500", "--no-stdio",
               "--", "/bin/true", check=False)
    assert r.returncode != 0 and "not found" in r.stderr
    assert time.monotonic() - t0 >= 1.4
    r = vm.ctl("start", "ghost", check=False)
    assert r.returncode != 0 and "not found" in r.stderr
    vm.ctl("ping")


def test_bad_process_setup_is_reported(vm):
    r = vm.ctl("run", "bad1", "--serial", "ctr1", "--", "/no/such/program", check=False)
    assert r.returncode != 0
    assert "exec /no/such/program" in r.stderr
    vm.ctl("remove", "bad1")
    vm.ctl("ping")


def test_interface_and_routes(vm):
    iface = vm.ctl_json("set-iface", "--mac", MAC, "--addr", "10.0.2.15/24", "--mtu", "1400", "--up")
    assert iface["mac"] == MAC and iface["up"] and iface["mtu"] == 1400
    listed = {i["mac"]: i for i in vm.ctl_json("list-ifaces")}
    got = listed[MAC]
    assert {"address": "10.0.2.15", "prefix_len": 24} in got["addresses"]
    assert got["mtu"] == 1400 and got["up"]
    vm.ctl("set-route", "default", "10.0.2.2", got["name"])
    routes = vm.ctl_json("list-routes")
    assert any(r["destination"] == "default" and r["gateway"] == "10.0.2.2" and r["device"] == got["name"]
               for r in routes), routes


# ---- bad input on the raw channel ---------------------------------------------------------

def _hdr(length, stream, ftype, flags=0, reserved=0):
    return struct.pack(">IIBBH", length, stream, ftype, flags, reserved)


def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _field(num, payload):
    return _varint((num << 3) | 2) + _varint(len(payload)) + payload


def _read_frame(s, deadline):
    buf = b""
    while len(buf) < 12:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = s.recv(12 - len(buf))
        assert chunk, "agent channel closed"
        buf += chunk
    length, stream, ftype, _flags, _res = struct.unpack(">IIBBH", buf)
    payload = b""
    while len(payload) < length:
        chunk = s.recv(length - len(payload))
        assert chunk
        payload += chunk
    return stream, ftype, payload


def _status(payload):
    """Response.status (field 1, varint); 0 when absent."""
    if payload[:1] == b"\x08":
        v, shift, i = 0, 0, 1
        while True:
            b = payload[i]
            v |= (b & 0x7F) << shift
            i += 1
            shift += 7
            if not b & 0x80:
                return v
    return 0


def _expect(s, stream, status):
    deadline = time.monotonic() + 60
    while True:
        sid, ftype, payload = _read_frame(s, deadline)
        if ftype == 2 and sid == stream:
            assert _status(payload) == status, payload
            return payload


def _connect(vm):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(vm.sock)
    return s


def test_bad_input_gets_errors_and_agent_survives(vm):
    s = _connect(vm)
    try:
        # Unknown frame type: connection-level notice on id 0.
        s.sendall(_hdr(5, 3, 9) + b"abcde")
        _expect(s, 0, 3)
        # Undecodable protobuf.
        s.sendall(_hdr(2, 7, 1) + b"\x0a\xff")
        _expect(s, 7, 3)
        # Empty request (no oneof member set).
        s.sendall(_hdr(0, 8, 1))
        _expect(s, 8, 12)
        # A mount destination that escapes the rootfs.
        cc = (_field(1, b"evil") + _field(2, _field(1, b"/dev/vda")) +
              _field(3, _field(1, b"/../../etc") + _field(2, b"bind") + _field(3, b"/tmp")) +
              _field(4, _field(1, b"/bin/sh")))
        req = _field(12, cc)
        s.sendall(_hdr(len(req), 9, 1) + req)
        assert b"'..'" in _expect(s, 9, 3)
        # Invalid UTF-8 in a path.
        cc = _field(1, b"evil") + _field(2, _field(1, b"/dev/\xff\xfe")) + _field(4, _field(1, b"/bin/sh"))
        req = _field(12, cc)
        s.sendall(_hdr(len(req), 10, 1) + req)
        _expect(s, 10, 3)
        # Request id 0 is reserved.
        ping = _field(10, b"")
        s.sendall(_hdr(len(ping), 0, 1) + ping)
        _expect(s, 0, 3)
        # Still answering.
        s.sendall(_hdr(len(ping), 11, 1) + ping)
        _expect(s, 11, 0)
        # Oversized length: rejected; the channel resyncs when the host reconnects.
        s.sendall(_hdr(0x7FFFFFFF, 12, 1))
        _expect(s, 0, 3)
    finally:
        s.close()
    # Truncated frame, then hang up: the next client's frames must not be swallowed
    # (the agent drops a partial frame that went stale; the client re-pings).
    s = _connect(vm)
    s.sendall(_hdr(100, 13, 1) + b"\x52\x00")
    s.close()
    vm.ctl("ping", timeout=60)
    vm.ctl("ping", timeout=60)
    assert "fatal" not in vm.console()


def test_refresh_sets_rng_clock_mac_hostname(vm):
    """What a clone of a template gets first (docs/sandbox.md, "Templates")."""
    new_mac = "02:aa:bb:cc:dd:01"
    ahead = time.time_ns() + 3600 * 10**9
    r = vm.ctl_json("refresh", "--mac", new_mac, "--hostname", "refreshed", "--time-ns", str(ahead))
    assert r["entropy_bits"] == 512, r
    assert r["clock_step_ns"] > 3590 * 10**9, r
    assert new_mac in {i["mac"] for i in vm.ctl_json("list-ifaces")}
    # The guest's clock was an hour ahead: stepping it back moves it about -1 h.
    r = vm.ctl_json("refresh", "--entropy-bytes", "32")
    assert -3610 * 10**9 < r["clock_step_ns"] < -3590 * 10**9, r
    assert r["entropy_bits"] == 256
    out = vm.ctl("run", "h1", "--serial", "ctr1", "--", "/bin/hostname", check=False)
    vm.ctl("remove", "h1", check=False)
    assert out.stdout.strip() == "refreshed", out.stderr
    for bad, needle in ((["--entropy-bytes", "8"], "32..512"), (["--mac", "02:aa:bb"], "MAC"),
                        (["--entropy-bytes", "600"], "32..512")):
        r = vm.ctl("refresh", *bad, check=False)
        assert r.returncode != 0 and needle in r.stderr, (bad, r.stderr)
    vm.ctl("ping")


def test_shutdown_stops_the_vm(vm):
    # Last test of the module: the VM is gone afterwards.
    vm.ctl("shutdown")
    assert vm.proc.wait(timeout=60) == 0
