"""Shared e2e fixtures: a real podvisord on a temporary socket and CRI clients for it.

Clients are built from the service descriptors in the protoc-generated cri_pb2
module with python3-grpcio's generic channel calls, so any method of the proto
can be called as client.runtime.Version(...) or client.image.PullImage(...).
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import grpc
import pytest

import cri_pb2

BUILD = os.environ.get("PODVISOR_BUILD", os.path.join(os.path.dirname(__file__), "..", "build"))
PODVISORD = os.path.join(BUILD, "bin", "podvisord")


class ServiceStub:
    """One callable attribute per rpc of a CRI service."""

    def __init__(self, channel, service_name):
        desc = cri_pb2.DESCRIPTOR.services_by_name[service_name]
        for m in desc.methods:
            path = "/runtime.v1.%s/%s" % (service_name, m.name)
            req_cls = getattr(cri_pb2, m.input_type.name)
            resp_cls = getattr(cri_pb2, m.output_type.name)
            make = channel.unary_stream if m.server_streaming else channel.unary_unary
            setattr(self, m.name, make(path, request_serializer=req_cls.SerializeToString,
                                       response_deserializer=resp_cls.FromString))


def logfmt(line):
    """The key=value fields of one log line (common/log.c), values unquoted and unescaped."""
    fields, i, n = {}, 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        eq = line.find("=", i)
        if eq < 0:
            break
        key, i = line[i:eq], eq + 1
        if i < n and line[i] == '"':
            i += 1
            val = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n:
                    i += 1
                    c = line[i]
                    if c == "x":
                        val.append(chr(int(line[i + 1:i + 3], 16)))
                        i += 2
                    else:
                        val.append({"n": "\n", "t": "\t", "r": "\r"}.get(c, c))
                else:
                    val.append(line[i])
                i += 1
            i += 1
            fields[key] = "".join(val)
        else:
            end = line.find(" ", i)
            end = n if end < 0 else end
            fields[key] = line[i:end]
            i = end
    return fields


def sanitizer_env(report_dir):
    """Options that send shims' sanitizer reports to files in report_dir (podvisord itself
    reports on stderr: it is the shims' parent only for a moment, so they need a file)."""
    env = {}
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"):
        opts = os.environ.get(var, "")
        env[var] = (opts + ":" if opts else "") + "log_exe_name=1:log_path=" + os.path.join(report_dir, "shim")
    return env


LIVE_DAEMONS = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, show the tail of every running podvisord's log with the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in LIVE_DAEMONS:
            tail = "\n".join(d.logs().splitlines()[-80:])
            rep.sections.append(("podvisord log %s" % d.dir, tail))
            for log in glob.glob(os.path.join(d.state, "pods", "*", "shim.log")):
                with open(log, errors="replace") as f:
                    rep.sections.append(("shim log %s" % log, "".join(f.readlines()[-40:])))


class Daemon:
    """A podvisord process started by a test; stop() ends it by pid."""

    def __init__(self, config=None, extra_args=(), env=None, socket=None, binary=None):
        # Short: unix socket paths under <state>/pods/<64-hex id>/ must stay below 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="pv", dir="/tmp")
        self.socket = socket or os.path.join(self.dir, "podvisor.sock")
        self.root = os.path.join(self.dir, "root")
        self.state = os.path.join(self.dir, "s")
        self.log_path = os.path.join(self.dir, "podvisord.log")
        args = [binary or PODVISORD, "--listen", self.socket, "--root", self.root,
                "--state-dir", self.state, "--log-level", "debug"]
        cfg = dict(config or {})
        # PODVISOR_TEMPLATES=0 runs a suite with runtime.templates=false (every pod VM boots).
        if os.environ.get("PODVISOR_TEMPLATES", "1") in ("0", "false") and \
                "templates" not in cfg.get("runtime", {}):
            cfg["runtime"] = dict(cfg.get("runtime", {}), templates=False)
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        args += ["--config", self.config_path]
        args += list(extra_args)
        self.log = open(self.log_path, "wb")
        # The shims' sanitizer reports go to files here (their logs go with their pods).
        self.san_dir = os.path.join(self.dir, "sanitizer")
        os.makedirs(self.san_dir)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **sanitizer_env(self.san_dir), **(env or {})))
        self.channel = None
        self.expect_exit = False  # tests that kill or crash the daemon on purpose set this
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            shutil.rmtree(self.dir, ignore_errors=True)  # its logs are in the exception
            raise
        self.runtime = ServiceStub(self.channel, "RuntimeService")
        self.image = ServiceStub(self.channel, "ImageService")
        LIVE_DAEMONS.append(self)

    def _wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("podvisord exited with %s:\n%s" % (self.proc.returncode, self.logs()))
            if os.path.exists(self.socket):
                self.channel = grpc.insecure_channel("unix:" + self.socket)
                try:
                    grpc.channel_ready_future(self.channel).result(timeout=2)
                    return
                except grpc.FutureTimeoutError:
                    self.channel.close()
                    self.channel = None
            time.sleep(0.05)
        raise RuntimeError("podvisord not ready after %ss:\n%s" % (timeout, self.logs()))

    def kill_and_restart(self):
        """kill -9 podvisord and start it again on the same root, state dir, socket and config:
        what a crashed and restarted podvisord sees (its shims and VMs kept running)."""
        self.expect_exit = True
        self.proc.kill()
        self.proc.wait()
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        args = [PODVISORD, "--listen", self.socket, "--root", self.root, "--state-dir", self.state,
                "--log-level", "debug", "--config", self.config_path]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **sanitizer_env(self.san_dir)))
        self.expect_exit = False
        self._wait_ready()
        self.runtime = ServiceStub(self.channel, "RuntimeService")
        self.image = ServiceStub(self.channel, "ImageService")

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=30):
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=30):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def sanitizer_reports(self):
        """ASan/LSan/UBSan/TSan findings of podvisord (its output) and of its shims (their report
        files): `make test` builds with ASan+UBSan, `make test-tsan` with TSan."""
        text = self.logs()
        for f in sorted(glob.glob(os.path.join(self.san_dir, "*"))):
            with open(f, errors="replace") as fh:
                text += "\n" + fh.read()
        return [l for l in text.splitlines()
                if "ERROR: AddressSanitizer" in l or "ERROR: LeakSanitizer" in l or "runtime error:" in l
                or "WARNING: ThreadSanitizer" in l]

    def leftover_pids(self, templates=False):
        """Processes (shims, QEMUs) still running with this daemon's state dir on their command line.
        A template being built (its shim has --make-template, its QEMU maps its RAM share=on;
        docs/sandbox.md) belongs to podvisord, not to a pod: left out unless templates=True.
        Clones of a template (share=off) are pods and count."""
        pids = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            builder = b"--make-template" in cmd or b",share=on" in cmd
            if (self.state + "/").encode() in cmd and (templates or not builder):
                pids.append(int(p))
        return pids

    def cleanup(self):
        if self in LIVE_DAEMONS:
            LIVE_DAEMONS.remove(self)
        self.stop()
        # A test that failed half-way may leave pods behind: stop their shims and VMs by pid.
        for pid in self.leftover_pids(templates=True):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reports = self.sanitizer_reports()
        rc = self.proc.returncode
        logs = self.logs()
        shim_reports = ""
        for f in sorted(glob.glob(os.path.join(self.san_dir, "*"))):
            with open(f, errors="replace") as fh:
                shim_reports += "--- %s ---\n%s\n" % (os.path.basename(f), fh.read())
        # A pod left running by a failed test keeps its volume share (a bind mount) under dir.
        with open("/proc/self/mountinfo") as f:
            left = [line.split()[4] for line in f if line.split()[4].startswith(self.dir + "/")]
        for mp in reversed(left):
            subprocess.call(["umount", "-l", mp])
        shutil.rmtree(self.dir, ignore_errors=True)
        assert not reports, "sanitizer findings:\n" + shim_reports + "--- podvisord log ---\n" + logs
        # A clean SIGTERM shutdown exits 0; anything else (LSan exits 23) is a bug.
        assert rc in (0, -9) or self.expect_exit, "podvisord exited %s:\n%s" % (rc, logs)


@pytest.fixture
def start_daemon():
    """Factory: start_daemon(config_dict, extra_args=..., socket=..., binary=...) -> Daemon, stopped at teardown."""
    started = []

    def start(config=None, extra_args=(), env=None, socket=None, binary=None):
        d = Daemon(config, extra_args, env, socket, binary)
        started.append(d)
        return d

    yield start
    for d in started:
        d.cleanup()


@pytest.fixture
def daemon(start_daemon):
    """A podvisord with default config on a temporary socket and root."""
    return start_daemon()
