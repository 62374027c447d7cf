"""Helpers for the image e2e tests: build OCI images in Python, run a real
docker-registry on loopback, push to it over the HTTP API, and a fake registry
that misbehaves on purpose."""
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.request

BUSYBOX = "/bin/busybox"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on %d after %ss" % (port, timeout))


# ---- building images -------------------------------------------------------

class Entry:
    def __init__(self, name, data=None, mode=0o644, kind="file", uid=0, gid=0, link=None,
                 major=0, minor=0, xattrs=None):
        self.name, self.data, self.mode, self.kind = name, data, mode, kind
        self.uid, self.gid, self.link = uid, gid, link
        self.major, self.minor, self.xattrs = major, minor, xattrs or {}


def make_tar(entries):
    """An uncompressed tar from Entry objects (pax, so xattrs and long names work)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.mode, ti.uid, ti.gid, ti.mtime = e.mode, e.uid, e.gid, 1700000000
            ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                       "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                       "fifo": tarfile.FIFOTYPE}[e.kind]
            if e.link:
                ti.linkname = e.link
            ti.devmajor, ti.devminor = e.major, e.minor
            if e.xattrs:
                ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in e.xattrs.items()}
            data = e.data or b""
            ti.size = len(data) if e.kind == "file" else 0
            t.addfile(ti, io.BytesIO(data) if e.kind == "file" else None)
    return buf.getvalue()


class Image:
    """An OCI image held in memory: blobs by digest, a manifest, a config."""

    def __init__(self, layers_tar, config_extra=None, arch="amd64", compress="gzip"):
        self.blobs = {}
        self.layers = []
        diff_ids = []
        for raw in layers_tar:
            diff_ids.append(sha256(raw))
            if compress == "zstd":
                blob = subprocess.run(["zstd", "-q", "-c"], input=raw, stdout=subprocess.PIPE,
                                      check=True).stdout
                mt = MT_LAYER_ZSTD
            else:
                blob = gzip.compress(raw, mtime=0)
                mt = MT_LAYER_GZIP
            d = self.add_blob(blob)
            self.layers.append({"mediaType": mt, "digest": d, "size": len(blob)})
        cfg = {"architecture": arch, "os": "linux",
               "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
               "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        if config_extra:
            cfg["config"].update(config_extra)
        self.config = json.dumps(cfg).encode()
        self.config_digest = self.add_blob(self.config)
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "digest": self.config_digest,
                       "size": len(self.config)},
            "layers": self.layers}).encode()
        self.manifest_digest = sha256(self.manifest)
        self.id = self.config_digest

    def add_blob(self, data):
        d = sha256(data)
        self.blobs[d] = data
        return d


def make_index(images):
    """(index bytes, digest) over {arch: Image}."""
    ms = [{"mediaType": MT_OCI_MANIFEST, "digest": img.manifest_digest, "size": len(img.manifest),
           "platform": {"os": "linux", "architecture": arch}} for arch, img in images.items()]
    body = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": ms}).encode()
    return body, sha256(body)


def busybox_layers():
    """Two layers from Debian's busybox-static; the second whites out a file and a dir's contents."""
    bb = open(BUSYBOX, "rb").read()
    base = [
        Entry("bin", kind="dir", mode=0o755),
        Entry("bin/busybox", bb, mode=0o755),
        Entry("bin/sh", kind="symlink", link="busybox", mode=0o777),
        Entry("bin/ls", kind="hardlink", link="bin/busybox"),
        Entry("etc", kind="dir", mode=0o755),
        Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"),
        Entry("etc/removed", b"this file is whited out by layer 2\n"),
        Entry("etc/suid", b"#!/bin/sh\n", mode=0o4755),
        Entry("var/cache", kind="dir", mode=0o755),
        Entry("var/cache/old", b"old"),
        Entry("home/user", kind="dir", mode=0o700, uid=1000, gid=1000),
        Entry("home/user/notes", b"hello\n", mode=0o640, uid=1000, gid=1000),
        Entry("dev", kind="dir", mode=0o755),
        Entry("dev/null", kind="chr", major=1, minor=3, mode=0o666),
        Entry("tmp", kind="dir", mode=0o1777),
        Entry("xattr", b"x", xattrs={"user.podvisor": "yes"}),
    ]
    top = [
        Entry("etc/.wh.removed", b""),
        Entry("var/cache/.wh..wh..opq", b""),
        Entry("var/cache/new", b"new"),
        Entry("etc/motd", b"layer two\n"),
    ]
    return [make_tar(base), make_tar(top)]


# ---- the real registry -----------------------------------------------------

class Registry:
    """Debian's docker-registry on 127.0.0.1:<free port>, storage in a temp dir, stopped by pid."""

    def __init__(self, htpasswd_user=None):
        self.dir = tempfile.mkdtemp(prefix="pv-registry-")
        self.port = free_port()
        self.user = self.password = None
        auth = ""
        if htpasswd_user:
            self.user, self.password = htpasswd_user
            hp = os.path.join(self.dir, "htpasswd")
            subprocess.run(["htpasswd", "-Bbc", hp, self.user, self.password], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            auth = "auth:\n  htpasswd:\n    realm: podvisor-test\n    path: %s\n" % hp
        cfg = os.path.join(self.dir, "config.yml")
        with open(cfg, "w") as f:
            f.write("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                    "  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%d\n%s"
                    % (os.path.join(self.dir, "data"), self.port, auth))
        self.log = open(os.path.join(self.dir, "registry.log"), "wb")
        self.proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, self.proc)
        except Exception:
            self.stop()
            raise
        self.host = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.host

    def _req(self, method, path, data=None, headers=None):
        url = path if path.startswith("http") else self.url + path
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        if self.user:
            tok = base64.b64encode(("%s:%s" % (self.user, self.password)).encode()).decode()
            req.add_header("Authorization", "Basic " + tok)
        return urllib.request.urlopen(req, timeout=60)

    def push_blob(self, repo, data):
        d = sha256(data)
        try:
            self._req("HEAD", "/v2/%s/blobs/%s" % (repo, d))
            return d
        except urllib.error.HTTPError:
            pass
        r = self._req("POST", "/v2/%s/blobs/uploads/" % repo)
        loc = r.headers["Location"]
        if not loc.startswith("http"):
            loc = self.url + loc
        loc += ("&" if "?" in loc else "?") + "digest=" + d
        self._req("PUT", loc, data=data, headers={"Content-Type": "application/octet-stream"})
        return d

    def push_manifest(self, repo, ref, body, media_type):
        self._req("PUT", "/v2/%s/manifests/%s" % (repo, ref), data=body,
                  headers={"Content-Type": media_type})

    def push_image(self, repo, tag, img):
        for data in img.blobs.values():
            self.push_blob(repo, data)
        self.push_manifest(repo, tag, img.manifest, MT_OCI_MANIFEST)

    def push_index(self, repo, tag, images):
        for img in images.values():
            for data in img.blobs.values():
                self.push_blob(repo, data)
            self.push_manifest(repo, img.manifest_digest, img.manifest, MT_OCI_MANIFEST)
        body, digest = make_index(images)
        self.push_manifest(repo, tag, body, MT_OCI_INDEX)
        return digest

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- a registry that misbehaves ---------------------------------------------

class FakeRegistry:
    """http.server in a thread. routes: {path: (status, headers, body)} or a callable(handler)."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.stop_event = threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                fake.requests.append(self.path)
                route = fake.routes.get(self.path.split("?")[0])
                if route is None:
                    return self.reply(404, {}, b'{"errors":[{"code":"NOT_FOUND"}]}')
                if callable(route):
                    return route(self)
                self.reply(*route)

            do_HEAD = do_GET

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.post_body = self.rfile.read(n)
                self.do_GET()

            def reply(self, status, headers, body, length=None):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                if self.command != "HEAD":
                    try:
                        self.wfile.write(body)
                        self.wfile.flush()
                    except OSError:
                        pass
                if length is not None and length != len(body):
                    self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = "127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve_image(self, repo, tag, img, manifest=None, media_type=MT_OCI_MANIFEST):
        body = img.manifest if manifest is None else manifest
        self.routes["/v2/%s/manifests/%s" % (repo, tag)] = (200, {"Content-Type": media_type}, body)
        for d, data in img.blobs.items():
            self.routes["/v2/%s/blobs/%s" % (repo, d)] = (200, {"Content-Type": "application/octet-stream"},
                                                         data)

    def hang(self, handler):
        """Answer nothing until the test ends."""
        self.stop_event.wait(120)

    def stop(self):
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


# ---- inspecting ext4 images ----------------------------------------------------

def debugfs(image, cmd):
    r = subprocess.run(["debugfs", "-R", cmd, image], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    return r.stdout.decode(errors="replace")


def fsck(image):
    r = subprocess.run(["e2fsck", "-fn", image], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    return r.returncode, r.stdout.decode(errors="replace")
