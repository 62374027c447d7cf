"""ImageService e2e: a real docker-registry on loopback, images built here from
busybox-static, podvisord's CRI API, and a fake registry for the bad cases."""
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import grpc
import pytest

import cri_pb2
import image_util as iu
from conftest import BUILD

TOOL = os.path.join(BUILD, "bin", "podvisor-image")


@pytest.fixture
def start_daemon(start_daemon):
    """conftest's factory, skipping (not failing) while podvisord has no image handlers wired in."""

    def start(config=None, **kw):
        d = start_daemon(config, **kw)
        try:
            d.image.ImageFsInfo(cri_pb2.ImageFsInfoRequest(), timeout=60)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                pytest.skip("podvisord does not serve ImageService yet")
            raise
        return d

    return start


@pytest.fixture
def registry():
    r = iu.Registry()
    yield r
    r.stop()


@pytest.fixture
def fake():
    f = iu.FakeRegistry()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def busybox():
    return iu.Image(iu.busybox_layers(), {"User": "1000", "WorkingDir": "/home/user"})


def spec(name):
    return cri_pb2.ImageSpec(image=name)


def pull(d, name, auth=None, timeout=300):
    req = cri_pb2.PullImageRequest(image=spec(name))
    if auth:
        req.auth.CopyFrom(auth)
    return d.image.PullImage(req, timeout=timeout).image_ref


def status(d, name, verbose=False):
    return d.image.ImageStatus(cri_pb2.ImageStatusRequest(image=spec(name), verbose=verbose), timeout=60)


def list_images(d):
    return list(d.image.ListImages(cri_pb2.ListImagesRequest(), timeout=60).images)


def ext4_of(d, name):
    st = status(d, name, verbose=True)
    assert st.HasField("image")
    return json.loads(st.info["info"])["ext4"]


def store_files(d, sub):
    p = os.path.join(d.root, "images", sub)
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def test_pull_list_status_remove(start_daemon, registry, busybox):
    registry.push_image("test/busybox", "v1", busybox)
    d = start_daemon()
    name = registry.host + "/test/busybox:v1"
    assert pull(d, name) == busybox.id

    imgs = list_images(d)
    assert [i.id for i in imgs] == [busybox.id]
    img = imgs[0]
    assert list(img.repo_tags) == [name]
    assert list(img.repo_digests) == [registry.host + "/test/busybox@" + busybox.manifest_digest]
    assert img.size == len(busybox.config) + sum(l["size"] for l in busybox.layers)
    assert img.uid.value == 1000

    # status by tag, id, short id, and digest reference
    for ref in (name, busybox.id, busybox.id[7:19], registry.host + "/test/busybox@" + busybox.manifest_digest):
        st = status(d, ref)
        assert st.image.id == busybox.id, ref
    # filter
    resp = d.image.ListImages(cri_pb2.ListImagesRequest(filter=cri_pb2.ImageFilter(image=spec(name))))
    assert [i.id for i in resp.images] == [busybox.id]

    fs = d.image.ImageFsInfo(cri_pb2.ImageFsInfoRequest(), timeout=60)
    used = fs.image_filesystems[0].used_bytes.value
    assert used >= sum(l["size"] for l in busybox.layers)
    assert fs.image_filesystems[0].inodes_used.value > 5
    assert fs.image_filesystems[0].fs_id.mountpoint.startswith(d.root)

    d.image.RemoveImage(cri_pb2.RemoveImageRequest(image=spec(name)), timeout=60)
    assert not status(d, name).HasField("image")
    assert list_images(d) == []
    # blobs and the ext4 image are collected
    assert store_files(d, "blobs/sha256") == []
    assert store_files(d, "ext4") == []
    assert store_files(d, "records") == []
    fs2 = d.image.ImageFsInfo(cri_pb2.ImageFsInfoRequest(), timeout=60)
    assert fs2.image_filesystems[0].used_bytes.value < used
    # idempotent remove; unknown image status is OK and empty
    d.image.RemoveImage(cri_pb2.RemoveImageRequest(image=spec(name)), timeout=60)
    assert not status(d, "nothere:latest").HasField("image")


def test_ext4_contents(start_daemon, registry, busybox):
    registry.push_image("test/busybox", "v1", busybox)
    d = start_daemon()
    pull(d, registry.host + "/test/busybox:v1")
    e4 = ext4_of(d, busybox.id)
    rc, out = iu.fsck(e4)
    assert rc == 0, out
    st = iu.debugfs(e4, "stat /bin/busybox")
    assert "Type: regular    Mode:  0755" in st
    assert "Size: %d" % os.path.getsize(iu.BUSYBOX) in st
    assert "Links: 2" in st  # bin/ls is a hardlink
    dumped = os.path.join(d.dir, "busybox.out")
    iu.debugfs(e4, "dump /bin/busybox %s" % dumped)
    with open(dumped, "rb") as a, open(iu.BUSYBOX, "rb") as b:
        assert a.read() == b.read()
    assert "Fast link dest: \"busybox\"" in iu.debugfs(e4, "stat /bin/sh")
    etc = iu.debugfs(e4, "ls /etc")
    assert "passwd" in etc and "motd" in etc and "removed" not in etc  # whiteout applied
    cache = iu.debugfs(e4, "ls /var/cache")
    assert "new" in cache and "old" not in cache  # opaque dir applied
    home = iu.debugfs(e4, "stat /home/user")
    assert "Mode:  0700" in home and "User:  1000   Group:  1000" in home
    notes = iu.debugfs(e4, "stat /home/user/notes")
    assert "Mode:  0640" in notes and "User:  1000" in notes
    assert "Mode:  04755" in iu.debugfs(e4, "stat /etc/suid")
    dev = iu.debugfs(e4, "stat /dev/null")
    assert "character special" in dev and "Device major/minor number: 01:03" in dev
    assert "Mode:  01777" in iu.debugfs(e4, "stat /tmp")
    assert "user.podvisor" in iu.debugfs(e4, "ea_list /xattr")
    # read-only use is shared: a second tag of the same image reuses the same ext4 file
    registry.push_image("test/other", "v2", busybox)
    pull(d, registry.host + "/test/other:v2")
    assert ext4_of(d, registry.host + "/test/other:v2") == e4
    assert len(store_files(d, "ext4")) == 1
    assert len(list_images(d)) == 1
    assert sorted(status(d, busybox.id).image.repo_tags) == sorted(
        [registry.host + "/test/busybox:v1", registry.host + "/test/other:v2"])


def test_pull_by_digest_and_index(start_daemon, registry, busybox):
    arm = iu.Image([iu.make_tar([iu.Entry("arm", b"arm64 image")])], arch="arm64")
    idx_digest = registry.push_index("test/multi", "latest", {"amd64": busybox, "arm64": arm})
    d = start_daemon()
    name = registry.host + "/test/multi"
    assert pull(d, name) == busybox.id  # host platform
    assert list(status(d, busybox.id).image.repo_digests) == [name + "@" + idx_digest]
    # by the manifest's own digest
    d2 = start_daemon({"image": {"platform": "linux/arm64"}})
    assert pull(d2, name + "@" + idx_digest) == arm.id
    assert pull(d2, name + "@" + busybox.manifest_digest) == busybox.id
    assert not status(d2, name + ":latest").HasField("image")  # digest pulls add no tag
    d3 = start_daemon({"image": {"platform": "linux/s390x"}})
    with pytest.raises(grpc.RpcError) as ei:
        pull(d3, name)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert "linux/s390x" in ei.value.details() and "linux/arm64" in ei.value.details()


def test_zstd_layers(start_daemon, registry):
    img = iu.Image(iu.busybox_layers(), compress="zstd")
    registry.push_image("test/zstd", "v1", img)
    d = start_daemon()
    assert pull(d, registry.host + "/test/zstd:v1") == img.id
    rc, out = iu.fsck(ext4_of(d, img.id))
    assert rc == 0, out


def test_mirror(start_daemon, registry, busybox):
    registry.push_image("library/busybox", "mirrored", busybox)
    dead = "http://127.0.0.1:%d" % iu.free_port()
    d = start_daemon({"image": {"mirrors": {"docker.io": [dead, registry.url]}, "timeout_seconds": 5,
                                "max_retries": 0}})
    assert pull(d, "busybox:mirrored") == busybox.id
    img = status(d, "docker.io/library/busybox:mirrored").image
    assert list(img.repo_tags) == ["docker.io/library/busybox:mirrored"]


def test_basic_auth(start_daemon):
    reg = iu.Registry(htpasswd_user=("alice", "s3cret"))
    try:
        img = iu.Image([iu.make_tar([iu.Entry("secret", b"only for alice")])])
        reg.push_image("private/img", "v1", img)
        d = start_daemon()
        name = reg.host + "/private/img:v1"
        with pytest.raises(grpc.RpcError) as ei:
            pull(d, name)
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED, ei.value.details()
        with pytest.raises(grpc.RpcError) as ei:
            pull(d, name, cri_pb2.AuthConfig(username="alice", password="wrong"))
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert list_images(d) == []
        assert pull(d, name, cri_pb2.AuthConfig(username="alice", password="s3cret")) == img.id
        d.image.RemoveImage(cri_pb2.RemoveImageRequest(image=spec(name)), timeout=60)
        auth = base64.b64encode(b"alice:s3cret").decode()
        assert pull(d, name, cri_pb2.AuthConfig(auth=auth)) == img.id
    finally:
        reg.stop()


def test_bearer_token(start_daemon, fake):
    img = iu.Image([iu.make_tar([iu.Entry("f", b"token")])])
    fake.serve_image("tok/img", "v1", img)
    protected = dict(fake.routes)
    fake.routes.clear()
    seen = {}

    def token(h):
        seen["auth"] = h.headers.get("Authorization")
        seen["query"] = h.path
        seen["post"] = getattr(h, "post_body", None)
        h.reply(200, {"Content-Type": "application/json"}, b'{"token":"T0K"}')

    def guarded(h):
        path = h.path.split("?")[0]
        if h.headers.get("Authorization") != "Bearer T0K":
            return h.reply(401, {"WWW-Authenticate": 'Bearer realm="http://%s/token",service="fake"' % fake.host},
                           b"{}")
        h.reply(*protected[path])

    fake.routes["/token"] = token
    for p in protected:
        fake.routes[p] = guarded
    d = start_daemon()
    assert pull(d, fake.host + "/tok/img:v1", cri_pb2.AuthConfig(username="bob", password="pw")) == img.id
    assert seen["auth"] == "Basic " + base64.b64encode(b"bob:pw").decode()
    assert "scope=repository%3Atok%2Fimg%3Apull" in seen["query"] and "service=fake" in seen["query"]
    # an identity token is exchanged with an OAuth2 refresh_token POST
    d.image.RemoveImage(cri_pb2.RemoveImageRequest(image=spec(fake.host + "/tok/img:v1")), timeout=60)
    assert pull(d, fake.host + "/tok/img:v1", cri_pb2.AuthConfig(identity_token="REFRESH")) == img.id
    assert b"grant_type=refresh_token" in seen["post"] and b"refresh_token=REFRESH" in seen["post"]
    assert b"scope=repository%3Atok%2Fimg%3Apull" in seen["post"]
    # a registry token is sent as is, without asking the token server
    seen.clear()
    d.image.RemoveImage(cri_pb2.RemoveImageRequest(image=spec(fake.host + "/tok/img:v1")), timeout=60)
    assert pull(d, fake.host + "/tok/img:v1", cri_pb2.AuthConfig(registry_token="T0K")) == img.id
    assert seen == {}


def test_invalid_reference(start_daemon):
    d = start_daemon()
    with pytest.raises(grpc.RpcError) as ei:
        pull(d, "Bad//Ref")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Bad//Ref" in ei.value.details()


def test_unknown_config_key(start_daemon):
    start_daemon()  # skips unless the image service is wired in
    tmp = tempfile.mkdtemp(prefix="pv-img-cfg-")
    try:
        cfg = os.path.join(tmp, "config.json")
        with open(cfg, "w") as f:
            json.dump({"image": {"foo": 1}}, f)
        p = subprocess.run([os.path.join(BUILD, "bin", "podvisord"), "--listen", os.path.join(tmp, "s.sock"),
                            "--root", os.path.join(tmp, "root"), "--state-dir", os.path.join(tmp, "state"),
                            "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        assert p.returncode != 0
        assert 'image: unknown key \\"foo\\"' in p.stdout.decode() or 'image: unknown key "foo"' in p.stdout.decode()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- bad registries and bad content ------------------------------------------------


def _escape_image(entries):
    return iu.Image([iu.make_tar(entries)])


def _case(fake, name):
    """Set the fake registry up for one bad case; returns (expected code, message fragment)."""
    good = iu.Image([iu.make_tar([iu.Entry("a", os.urandom(5000))]), iu.make_tar([iu.Entry("b", b"b")])])
    layer = good.layers[0]["digest"]
    lpath = "/v2/bad/img/blobs/" + layer
    mpath = "/v2/bad/img/manifests/v1"
    fake.serve_image("bad/img", "v1", good)
    if name == "digest-mismatch":
        fake.routes[lpath] = (200, {}, b"x" * layer_size(good))
        return grpc.StatusCode.DATA_LOSS, "digest mismatch"
    if name == "truncated":
        body = good.blobs[layer]
        fake.routes[lpath] = lambda h: h.reply(200, {}, body[:100], length=len(body))
        return None, "truncated"
    if name == "oversized":
        fake.routes[lpath] = (200, {}, good.blobs[layer] + b"extra bytes")
        return grpc.StatusCode.DATA_LOSS, "larger than"
    if name == "bad-json-manifest":
        fake.routes[mpath] = (200, {"Content-Type": iu.MT_OCI_MANIFEST}, b"{\"schemaVersion\": 2, oops")
        return grpc.StatusCode.INVALID_ARGUMENT, "not valid JSON"
    if name == "bad-json-config":
        cfg = b"{not json"
        m = json.loads(good.manifest)
        m["config"] = {"mediaType": iu.MT_OCI_CONFIG, "digest": iu.sha256(cfg), "size": len(cfg)}
        fake.routes[mpath] = (200, {"Content-Type": iu.MT_OCI_MANIFEST}, json.dumps(m).encode())
        fake.routes["/v2/bad/img/blobs/" + iu.sha256(cfg)] = (200, {}, cfg)
        return grpc.StatusCode.INVALID_ARGUMENT, "image config is not valid JSON"
    if name == "bad-diff-id":
        # layers verify against the manifest, but the config lies about their contents
        cfg = json.loads(good.config)
        cfg["rootfs"]["diff_ids"][0] = iu.sha256(b"some other layer")
        cfg = json.dumps(cfg).encode()
        m = json.loads(good.manifest)
        m["config"] = {"mediaType": iu.MT_OCI_CONFIG, "digest": iu.sha256(cfg), "size": len(cfg)}
        fake.routes[mpath] = (200, {"Content-Type": iu.MT_OCI_MANIFEST}, json.dumps(m).encode())
        fake.routes["/v2/bad/img/blobs/" + iu.sha256(cfg)] = (200, {}, cfg)
        return grpc.StatusCode.DATA_LOSS, "does not match diff_id"
    if name == "unknown-media-type":
        m = json.loads(good.manifest)
        m["layers"][0]["mediaType"] = "application/x-rar"
        fake.routes[mpath] = (200, {"Content-Type": iu.MT_OCI_MANIFEST}, json.dumps(m).encode())
        return grpc.StatusCode.INVALID_ARGUMENT, "application/x-rar"
    if name == "unknown-manifest-type":
        fake.routes[mpath] = (200, {"Content-Type": "application/vnd.example+json"},
                              json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.example+json"}).encode())
        return grpc.StatusCode.INVALID_ARGUMENT, "unsupported manifest media type"
    if name == "401":
        fake.routes[mpath] = (401, {}, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
        return grpc.StatusCode.UNAUTHENTICATED, "401"
    if name == "404":
        del fake.routes[mpath]
        return grpc.StatusCode.NOT_FOUND, "not found"
    if name == "500":
        fake.routes[mpath] = (500, {}, b"boom")
        return grpc.StatusCode.UNAVAILABLE, "500"
    if name == "hang":
        fake.routes[lpath] = fake.hang
        return grpc.StatusCode.DEADLINE_EXCEEDED, "timed out"
    escapes = {
        "escape-dotdot": [iu.Entry("../../etc/evil", b"x")],
        "escape-absolute": [iu.Entry("/etc/evil", b"x")],
        "escape-symlink": [iu.Entry("lnk", kind="symlink", link="/etc"), iu.Entry("lnk/evil", b"x")],
        "escape-hardlink": [iu.Entry("h", kind="hardlink", link="../../etc/shadow")],
    }
    img = _escape_image(escapes[name])
    fake.serve_image("bad/img", "v1", img)
    return grpc.StatusCode.INVALID_ARGUMENT, "layer"


def layer_size(img):
    return img.layers[0]["size"]


BAD_CASES = ["digest-mismatch", "truncated", "oversized", "bad-json-manifest", "bad-json-config", "bad-diff-id",
             "unknown-media-type", "unknown-manifest-type", "401", "404", "500", "hang",
             "escape-dotdot", "escape-absolute", "escape-symlink", "escape-hardlink"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_registry(start_daemon, fake, case):
    code, fragment = _case(fake, case)
    d = start_daemon({"image": {"timeout_seconds": 3 if case == "hang" else 30, "max_retries": 1}})
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        pull(d, fake.host + "/bad/img:v1", timeout=120)
    assert time.monotonic() - t0 < 60
    if code is not None:
        assert ei.value.code() == code, ei.value.details()
    assert fragment in ei.value.details(), ei.value.details()
    # nothing half-made is listed or left behind
    assert list_images(d) == []
    assert store_files(d, "records") == []
    assert store_files(d, "ext4") == []
    assert [f for f in store_files(d, "tmp") if not f.endswith(".lock")] == []
    if case == "500":  # retried before giving up
        assert fake.requests.count("/v2/bad/img/manifests/v1") == 2


def test_concurrent_pulls_download_once(start_daemon, fake):
    img = iu.Image([iu.make_tar([iu.Entry("big", os.urandom(300000))]), iu.make_tar([iu.Entry("s", b"s")])])
    fake.serve_image("conc/img", "v1", img)
    slow = img.layers[0]["digest"]
    path = "/v2/conc/img/blobs/" + slow
    body = img.blobs[slow]

    def slow_reply(h):
        time.sleep(1.5)
        h.reply(200, {}, body)

    fake.routes[path] = slow_reply
    d = start_daemon()
    results, errors = [], []

    def worker():
        try:
            results.append(pull(d, fake.host + "/conc/img:v1"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert results == [img.id] * 3
    for dg in img.blobs:
        assert fake.requests.count("/v2/conc/img/blobs/" + dg) == 1, dg
    assert len(list_images(d)) == 1


def test_killed_pull_is_resumable(fake):
    """podvisor-image killed mid-pull: no image listed; the next pull keeps finished blobs and
    continues the interrupted one with an HTTP Range request."""
    big = os.urandom(2 << 20)
    img = iu.Image([iu.make_tar([iu.Entry("one", b"1" * 10000)]), iu.make_tar([iu.Entry("big", big)]),
                    iu.make_tar([iu.Entry("three", b"3")])])
    fake.serve_image("kill/img", "v1", img)
    first, second = img.layers[0]["digest"], img.layers[1]["digest"]
    body = img.blobs[second]
    half = len(body) // 2
    path2 = "/v2/kill/img/blobs/" + second

    def half_then_hang(h):
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[:half])
        h.wfile.flush()
        fake.stop_event.wait(120)

    ranges = []

    def ranged(h):
        rng = h.headers.get("Range")
        ranges.append(rng)
        if not rng:
            return h.reply(200, {}, body)
        start = int(rng.split("=")[1].split("-")[0])
        h.reply(206, {"Content-Range": "bytes %d-%d/%d" % (start, len(body) - 1, len(body))}, body[start:])

    fake.routes[path2] = half_then_hang
    root = tempfile.mkdtemp(prefix="pv-img-kill-")
    try:
        name = fake.host + "/kill/img:v1"
        p = subprocess.Popen([TOOL, "--root", root, "pull", name], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        part = os.path.join(root, "images", "tmp", second[7:] + ".partial")
        deadline = time.monotonic() + 60
        while not (os.path.exists(part) and os.path.getsize(part) >= half):
            assert time.monotonic() < deadline and p.poll() is None, "pull did not reach the big layer"
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        p.stderr.close()
        out = subprocess.run([TOOL, "--root", root, "list"], stdout=subprocess.PIPE, check=True, timeout=60)
        assert out.stdout == b""  # never a half image
        assert os.listdir(os.path.join(root, "images", "records")) == []
        fake.routes[path2] = ranged
        before = fake.requests.count("/v2/kill/img/blobs/" + first)
        out = subprocess.run([TOOL, "--root", root, "pull", name], stdout=subprocess.PIPE, timeout=120)
        assert out.returncode == 0 and out.stdout.decode().strip() == img.id
        # the finished blob was not downloaded again; the interrupted one continued where it stopped
        assert fake.requests.count("/v2/kill/img/blobs/" + first) == before
        assert ranges == ["bytes=%d-" % half]
        assert os.listdir(os.path.join(root, "images", "tmp")) == [] or all(
            f.endswith(".lock") for f in os.listdir(os.path.join(root, "images", "tmp")))
        e4 = subprocess.run([TOOL, "--root", root, "ext4", name], stdout=subprocess.PIPE, check=True,
                            timeout=60).stdout.decode().strip()
        rc, log = iu.fsck(e4)
        assert rc == 0, log
        assert "Size: %d" % len(big) in iu.debugfs(e4, "stat /big")
    finally:
        subprocess.run(["rm", "-rf", root])


def pull_for(d, name, handler="", sandbox_config=None):
    req = cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=name, runtime_handler=handler))
    if sandbox_config is not None:
        req.sandbox_config.CopyFrom(sandbox_config)
    return d.image.PullImage(req, timeout=300).image_ref


def test_pull_platform_follows_runtime_handler(start_daemon, registry, busybox):
    """docs/arm64.md: an arm64 pod's pull picks the index's arm64 entry, an x86_64 pod's the
    amd64 one, and both images live under the same tag, each found for its own platform."""
    arm = iu.Image([iu.make_tar([iu.Entry("arm", b"arm64 image")])], arch="arm64")
    registry.push_index("test/multi", "v1", {"amd64": busybox, "arm64": arm})
    d = start_daemon()
    name = registry.host + "/test/multi:v1"
    assert pull_for(d, name, "arm64") == arm.id
    assert pull_for(d, name, "x86_64") == busybox.id
    assert pull_for(d, name, "arm64-x86") == arm.id  # arm64 first, amd64 only as a fallback
    assert pull_for(d, name) == busybox.id  # no handler: the default (host) platform
    # Both images keep the tag: one per platform.
    for img in (arm, busybox):
        assert list(status(d, img.id).image.repo_tags) == [name]
    st = d.image.ImageStatus(cri_pb2.ImageStatusRequest(image=spec(arm.id), verbose=True), timeout=60)
    assert json.loads(st.info["info"])["platform"] == "linux/arm64"
    with pytest.raises(grpc.RpcError) as ei:
        pull_for(d, name, "kata")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'runtime_handler "kata" is not configured' in ei.value.details()


def test_pull_platform_not_available_names_what_image_has(start_daemon, registry, busybox):
    s390 = iu.Image([iu.make_tar([iu.Entry("s", b"s390x")])], arch="s390x")
    registry.push_index("test/s390", "v1", {"s390x": s390})
    registry.push_image("test/amd64only", "v1", busybox)
    d = start_daemon()
    with pytest.raises(grpc.RpcError) as ei:
        pull_for(d, registry.host + "/test/s390:v1", "arm64")
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no manifest for platform linux/arm64 in index (has: linux/s390x)" in ei.value.details()
    # A single-platform amd64 image for an arm64 pod: refused, naming both platforms...
    with pytest.raises(grpc.RpcError) as ei:
        pull_for(d, registry.host + "/test/amd64only:v1", "arm64")
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert "linux/arm64" in ei.value.details() and "the image is linux/amd64 only" in ei.value.details()
    # ...but taken by the handler that runs amd64 binaries in an arm64 guest.
    assert pull_for(d, registry.host + "/test/amd64only:v1", "arm64-x86") == busybox.id
    print("tmp:", store_files(d, "tmp"))
    assert not [f for f in store_files(d, "tmp") if not f.endswith(".lock")]


def test_pull_platform_from_the_pods_handler(start_daemon, registry, busybox):
    """Without ImageSpec.runtime_handler, the pod named by sandbox_config gives the handler; a
    sandbox_config of no known pod pulls the default platform."""
    arm = iu.Image([iu.make_tar([iu.Entry("arm", b"arm64 image")])], arch="arm64")
    registry.push_index("test/multi2", "v1", {"amd64": busybox, "arm64": arm})
    d = start_daemon()
    meta = cri_pb2.PodSandboxMetadata(name="nobody", namespace="ns", uid="no-such-pod")
    assert pull_for(d, registry.host + "/test/multi2:v1",
                    sandbox_config=cri_pb2.PodSandboxConfig(metadata=meta)) == busybox.id


def test_image_status_per_handler(start_daemon, registry, busybox):
    """kubelet asks ImageStatus with the pod's handler before pulling: an image of another
    platform under the tag must read as absent, or the pod would get the wrong one."""
    registry.push_image("test/amd", "v1", busybox)
    d = start_daemon()
    name = registry.host + "/test/amd:v1"
    pull(d, name)

    def st(handler):
        return d.image.ImageStatus(cri_pb2.ImageStatusRequest(
            image=cri_pb2.ImageSpec(image=name, runtime_handler=handler)), timeout=60)

    assert st("").image.id == busybox.id
    assert st("x86_64").image.id == busybox.id
    assert st("arm64-x86").image.id == busybox.id
    assert not st("arm64").HasField("image")
