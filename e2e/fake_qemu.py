#!/usr/bin/python3
"""A stand-in for qemu-system-x86_64 used by e2e/test_shim.py's fast tests.

podvisor-shim starts it with the QEMU command line it builds; it takes the listening
sockets the shim hands over (-chardev socket,id=qmp,fd=N / id=agent,fd=N), speaks QMP
on one (blockdev-add, device_add, device_del + DEVICE_DELETED, blockdev-del, quit) and
the agent protocol (common/frame.h framing, proto/agent.proto messages) on the other.
Container processes are run on the host with their args (the rootfs is not used), their
output sent as DATA frames. A container's rootfs must name a SCSI target that was
really attached with device_add, so the shim's hot-plug wiring is checked too.
"""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading

import ctypes

import agent_pb2

HDR = struct.Struct(">IIBBH")
REQUEST, RESPONSE, DATA, WINDOW, CLOSE = 1, 2, 3, 4, 5

lock = threading.Lock()
disks = {}      # device id -> scsi target
procs = {}      # (container, exec_id) -> Proc
containers = {}  # id -> CreateContainerRequest
log = open(os.devnull, "w")


def die_with_parent():
    """Container processes die with the fake VM, as they would with a real one."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def chardev_fd(argv, ident):
    for i, a in enumerate(argv):
        if a == "-chardev" and ("id=%s," % ident) in argv[i + 1]:
            m = re.search(r"fd=(\d+)", argv[i + 1])
            if m:
                return int(m.group(1))
    raise SystemExit("fake_qemu: no -chardev id=%s,fd=N" % ident)


class Agent:
    def __init__(self, sock):
        self.sock = sock
        self.wlock = threading.Lock()
        self.waiters = {}  # (ctr, exec) -> [request ids]

    def send(self, ftype, stream, payload=b"", flags=0):
        with self.wlock:
            self.sock.sendall(HDR.pack(len(payload), stream, ftype, flags, 0) + payload)

    def reply(self, rid, status=0, message="", **kw):
        r = agent_pb2.Response(status=status, message=message, **kw)
        self.send(RESPONSE, rid, r.SerializeToString())

    def run(self):
        buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                os._exit(0)
            buf += data
            while len(buf) >= HDR.size:
                ln, stream, ftype, _, _ = HDR.unpack(buf[:HDR.size])
                if len(buf) < HDR.size + ln:
                    break
                payload, buf = buf[HDR.size:HDR.size + ln], buf[HDR.size + ln:]
                if ftype == REQUEST:
                    req = agent_pb2.Request()
                    req.ParseFromString(payload)
                    self.handle(stream, req)

    def handle(self, rid, req):
        kind = req.WhichOneof("req")
        if kind == "ping":
            self.reply(rid, ping=agent_pb2.PingResponse(agent_version="fake-agent", protocol_version=1))
        elif kind == "create_sandbox":
            self.reply(rid, empty=agent_pb2.Empty())
        elif kind == "create_container":
            c = req.create_container
            target = int(c.rootfs.scsi_address.split(":")[2]) if c.rootfs.scsi_address else -1
            with lock:
                attached = target in disks.values()
            if not attached:
                self.reply(rid, status=9, message="no disk at %s" % c.rootfs.scsi_address)
                return
            containers[c.container_id] = c
            self.reply(rid, empty=agent_pb2.Empty())
        elif kind == "start_container":
            c = containers.get(req.start_container.container_id)
            if not c:
                self.reply(rid, status=5, message="no such container")
                return
            p = self.spawn(c.container_id, "", c.process)
            self.reply(rid, start_container=agent_pb2.StartContainerResponse(pid=p.pid))
        elif kind == "exec_process":
            e = req.exec_process
            p = self.spawn(e.container_id, e.exec_id, e.process)
            self.reply(rid, exec_process=agent_pb2.ExecProcessResponse(pid=p.pid))
        elif kind == "signal_process":
            s = req.signal_process
            p = procs.get((s.container_id, s.exec_id))
            if p and p.poll() is None:
                p.send_signal(s.signal)
            self.reply(rid, empty=agent_pb2.Empty())
        elif kind == "wait_process":
            w = req.wait_process
            key = (w.container_id, w.exec_id)
            with lock:
                p = procs.get(key)
                if p is None:
                    self.reply(rid, status=5, message="no such process")
                    return
                if getattr(p, "done", False):
                    self.reply_wait(rid, p)
                else:
                    self.waiters.setdefault(key, []).append(rid)
        elif kind == "remove_container":
            cid = req.remove_container.container_id
            for (c, _), p in list(procs.items()):
                if c == cid and p.poll() is None:
                    p.kill()
            containers.pop(cid, None)
            self.reply(rid, empty=agent_pb2.Empty())
        elif kind == "stats_container":
            self.reply(rid, stats_container=agent_pb2.StatsContainerResponse(memory_usage_bytes=4096))
        elif kind == "shutdown":
            self.reply(rid, empty=agent_pb2.Empty())
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
            os._exit(0)  # the guest powered off
        else:
            self.reply(rid, status=12, message="fake agent: %s not implemented" % kind)

    def reply_wait(self, rid, p):
        rc = p.returncode
        sig = -rc if rc < 0 else 0
        self.reply(rid, wait_process=agent_pb2.WaitProcessResponse(
            exit_code=128 + sig if sig else rc, signal=sig, pid=p.pid))

    def spawn(self, cid, eid, proc):
        p = subprocess.Popen(list(proc.args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        procs[(cid, eid)] = p
        pumps = []
        for pipe, stream in ((p.stdout, proc.stdout_stream), (p.stderr, proc.stderr_stream)):
            t = threading.Thread(target=self.pump, args=(pipe, stream), daemon=True)
            t.start()
            pumps.append(t)

        def reaper():
            for t in pumps:
                t.join()
            p.wait()
            with lock:
                p.done = True
                rids = self.waiters.pop((cid, eid), [])
            for rid in rids:
                self.reply_wait(rid, p)

        threading.Thread(target=reaper, daemon=True).start()
        return p

    def pump(self, pipe, stream):
        while True:
            data = os.read(pipe.fileno(), 32768)
            if not data:
                break
            if stream:
                self.send(DATA, stream, data)
        if stream:
            self.send(CLOSE, stream)


def qmp(sock):
    f = sock.makefile("rwb", buffering=0)

    def send(obj):
        f.write(json.dumps(obj).encode() + b"\r\n")

    send({"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}})
    for line in f:
        msg = json.loads(line)
        cmd, args, mid = msg.get("execute"), msg.get("arguments", {}), msg.get("id")
        ret = {"return": {}, "id": mid}
        if cmd == "device_add":
            with lock:
                if args["id"] in disks:
                    ret = {"error": {"class": "GenericError", "desc": "Duplicate ID"}, "id": mid}
                else:
                    disks[args["id"]] = args["scsi-id"]
        elif cmd == "device_del":
            with lock:
                found = disks.pop(args["id"], None) is not None
            if not found:
                ret = {"error": {"class": "DeviceNotFound", "desc": "Device '%s' not found" % args["id"]},
                       "id": mid}
            else:
                send(ret)
                ret = {"event": "DEVICE_DELETED", "data": {"device": args["id"]}, "timestamp": {}}
        elif cmd == "quit":
            send(ret)
            os._exit(0)
        send(ret)
    os._exit(0)


def main():
    argv = sys.argv
    agent_fd, qmp_fd = chardev_fd(argv, "agent"), chardev_fd(argv, "qmp")
    print("fake_qemu: started with %s" % " ".join(argv[1:]), file=sys.stderr, flush=True)
    qs = socket.socket(fileno=qmp_fd)
    ags = socket.socket(fileno=agent_fd)
    conn, _ = qs.accept()
    threading.Thread(target=qmp, args=(conn,), daemon=True).start()
    aconn, _ = ags.accept()
    Agent(aconn).run()


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
