"""Input that must not be trusted blindly: log paths, volumes of podvisor's own state, names and ids,
error messages that echo input, and images that unpack to more than the store allows.

Real podvisord, real shim and pod VM (TCG), real registry (docker-registry), real CNI plugins, a
real gRPC client. One pod VM serves the tests that need a pod.
"""
import os
import shutil
import time

import grpc
import pytest

import cri_pb2
from image_util import Entry, Image, Registry, make_tar
from net_util import NetEnv
from test_pods import busybox_image, ctr_config, log_records, pod_config, wait_state

CAP = 32 << 20  # image.max_unpacked_bytes for this module's podvisord
MAX_DETAILS = 4096  # PV_ERR_WIRE_MAX: what a status message may take on the wire


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    reg.push_image("test/busybox", "1", busybox_image())
    # 64 MiB of zeros: a layer of about 64 KiB once gzipped.
    reg.push_image("test/bomb", "1", Image([make_tar([Entry("zeros", b"\0" * (64 << 20))])]))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def net():
    n = NetEnv()
    yield n
    n.cleanup()


@pytest.fixture(scope="module")
def env(registry, net):
    import conftest
    d = conftest.Daemon({"network": {"cni_conf_dir": net.conf_dir, "netns_dir": net.netns_dir},
                         "image": {"max_unpacked_bytes": CAP}})
    try:
        image = "%s/test/busybox:1" % registry.host
        d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=image)), timeout=300)
        # kubelet's layout: /var/log/pods/<namespace>_<name>_<uid>
        logdir = os.path.join(d.dir, "logs", "e2e_input_uid-input")
        os.makedirs(logdir)
        pod_cfg = pod_config("input", logdir)
        pod_id = d.runtime.RunPodSandbox(cri_pb2.RunPodSandboxRequest(config=pod_cfg), timeout=300).pod_sandbox_id
        yield {"daemon": d, "image": image, "pod": pod_id, "pod_cfg": pod_cfg, "logdir": logdir,
               "registry": registry, "net": net}
        try:
            d.runtime.StopPodSandbox(cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
            d.runtime.RemovePodSandbox(cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        except grpc.RpcError:
            pass
    finally:
        d.cleanup()


def rpc_error(call, req, timeout=120):
    with pytest.raises(grpc.RpcError) as e:
        call(req, timeout=timeout)
    return e.value


def expect_invalid(call, req, *words, code=grpc.StatusCode.INVALID_ARGUMENT):
    err = rpc_error(call, req)
    assert err.code() == code, err
    details = err.details()
    for w in words:
        assert w in details, details
    assert len(details.encode()) <= MAX_DETAILS
    return details


def create(env, cfg):
    rt = env["daemon"].runtime
    return rt.CreateContainer(cri_pb2.CreateContainerRequest(pod_sandbox_id=env["pod"], config=cfg,
                                                             sandbox_config=env["pod_cfg"]), timeout=120).container_id


def remove(env, cid):
    rt = env["daemon"].runtime
    rt.StopContainer(cri_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=60)
    rt.RemoveContainer(cri_pb2.RemoveContainerRequest(container_id=cid), timeout=60)


def container_names(env):
    rt = env["daemon"].runtime
    return [c.metadata.name for c in rt.ListContainers(cri_pb2.ListContainersRequest(), timeout=30).containers]


def victim(env, name):
    """A file outside the log directory that a log path must never reach."""
    path = os.path.join(env["daemon"].dir, name)
    with open(path, "w") as f:
        f.write("precious\n")
    return path


# ---- log paths -------------------------------------------------------------------------

def test_log_path_kubelet_layout(env):
    """<log dir>/<container>/<restart>.log with the container directory made by the caller,
    as kubelet does; an absolute path inside the log directory is the same file."""
    os.makedirs(os.path.join(env["logdir"], "layout"))
    cid = create(env, ctr_config(env["image"], "layout", ["/bin/echo", "hello log"], log="layout/0.log"))
    env["daemon"].runtime.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)
    st = wait_state(env, cid, cri_pb2.CONTAINER_EXITED)
    assert st.log_path == os.path.join(env["logdir"], "layout", "0.log")
    assert [r[2] for r in log_records(st.log_path)] == [b"hello log"]
    remove(env, cid)
    absolute = os.path.join(env["logdir"], "layout", "1.log")
    cid = create(env, ctr_config(env["image"], "layout", ["/bin/true"], log=absolute, attempt=1))
    assert os.path.exists(absolute)
    remove(env, cid)


def test_log_path_cannot_leave_log_dir(env):
    rt = env["daemon"].runtime
    target = victim(env, "victim.log")
    other = os.path.join(env["daemon"].dir, "elsewhere")
    os.makedirs(other)
    os.symlink(target, os.path.join(env["logdir"], "planted.log"))
    os.symlink(other, os.path.join(env["logdir"], "planteddir"))
    cases = [("dotdot", "../victim.log", "'..'"),
             ("deep", "x/../../../victim.log", "'..'"),
             ("absolute", target, "outside"),
             ("symlink", "planted.log", "symlink"),
             ("symlinkdir", "planteddir/0.log", "symlink"),
             ("missing", "nodir/0.log", "does not exist")]
    before = container_names(env)
    for name, log, word in cases:
        expect_invalid(rt.CreateContainer, cri_pb2.CreateContainerRequest(
            pod_sandbox_id=env["pod"], config=ctr_config(env["image"], name, ["/bin/echo", "x"], log=log),
            sandbox_config=env["pod_cfg"]), "log_path", word)
    assert open(target).read() == "precious\n"
    assert os.listdir(other) == []
    assert container_names(env) == before  # nothing half-made


def test_reopen_log_does_not_follow_symlink(env):
    """A log swapped for a symlink between rotations is refused at ReopenContainerLog; output
    keeps going to the file already open, and a later reopen of a real file works."""
    rt = env["daemon"].runtime
    target = victim(env, "reopen-victim.log")
    cid = create(env, ctr_config(env["image"], "ticker", ["/bin/sh", "-c", "while true; do echo tick; sleep 0.2; done"]))
    rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)
    log = os.path.join(env["logdir"], "ticker.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (os.path.exists(log) and os.path.getsize(log)):
        time.sleep(0.2)
    rotated = log + ".1"
    os.rename(log, rotated)
    os.symlink(target, log)
    expect_invalid(rt.ReopenContainerLog, cri_pb2.ReopenContainerLogRequest(container_id=cid), "symlink")
    size = os.path.getsize(rotated)
    time.sleep(1.5)
    assert os.path.getsize(rotated) > size  # still writing where it was
    assert open(target).read() == "precious\n"
    os.unlink(log)
    rt.ReopenContainerLog(cri_pb2.ReopenContainerLogRequest(container_id=cid), timeout=60)
    time.sleep(1.5)
    assert not os.path.islink(log) and os.path.getsize(log) > 0
    remove(env, cid)


# ---- volumes ---------------------------------------------------------------------------

def test_volumes_of_podvisors_own_state_refused(env):
    d = env["daemon"]
    rt = d.runtime

    def mount_cfg(name, host, **kw):
        return ctr_config(env["image"], name, ["/bin/true"],
                          mounts=[cri_pb2.Mount(container_path="/host", host_path=host, **kw)])

    for i, host in enumerate([d.root, d.state, os.path.join(d.root, "images"),
                              os.path.join(d.root, "pods", env["pod"])]):
        expect_invalid(rt.CreateContainer, cri_pb2.CreateContainerRequest(
            pod_sandbox_id=env["pod"], config=mount_cfg("own%d" % i, host), sandbox_config=env["pod_cfg"]),
            "config.mounts[0].host_path", "podvisor's own directory", "cannot be volumes")
    # Through a symlink: resolved first.
    link = os.path.join(d.dir, "state-link")
    os.symlink(d.state, link)
    expect_invalid(rt.CreateContainer, cri_pb2.CreateContainerRequest(
        pod_sandbox_id=env["pod"], config=mount_cfg("ownlink", link, readonly=True, recursive_read_only=True),
        sandbox_config=env["pod_cfg"]), "cannot be volumes")
    # A directory above them: only read-only, recursively, private.
    for name, kw in [("parentrw", {}), ("parentro", {"readonly": True}),
                     ("parentslave", {"readonly": True, "recursive_read_only": True,
                                      "propagation": cri_pb2.PROPAGATION_HOST_TO_CONTAINER})]:
        expect_invalid(rt.CreateContainer, cri_pb2.CreateContainerRequest(
            pod_sandbox_id=env["pod"], config=mount_cfg(name, d.dir, **kw), sandbox_config=env["pod_cfg"]),
            "contains podvisor's own directory", "read-only, recursively (recursive_read_only)")
    expect_invalid(rt.CreateContainer, cri_pb2.CreateContainerRequest(
        pod_sandbox_id=env["pod"], config=mount_cfg("rootfs", "/"), sandbox_config=env["pod_cfg"]),
        "contains podvisor's own directory")
    # Read-only all the way down it is allowed, and the pod cannot write podvisor's state through it.
    marker = os.path.join(d.dir, "marker")
    with open(marker, "w") as f:
        f.write("seen\n")
    cfg = ctr_config(env["image"], "parentrro", ["/bin/sh", "-c",
                                                  "cat /host/marker; touch /host/s/x 2>&1; echo rc=$?"],
                     mounts=[cri_pb2.Mount(container_path="/host", host_path=d.dir, readonly=True,
                                           recursive_read_only=True)])
    cid = create(env, cfg)
    rt.StartContainer(cri_pb2.StartContainerRequest(container_id=cid), timeout=120)
    st = wait_state(env, cid, cri_pb2.CONTAINER_EXITED)
    out = b"\n".join(r[2] for r in log_records(st.log_path))
    assert b"seen" in out and b"rc=1" in out, out
    assert not os.path.exists(os.path.join(d.state, "x"))
    remove(env, cid)


# ---- names, ids, sizes ------------------------------------------------------------------

def test_huge_namespace_never_reaches_cni(env):
    d, net = env["daemon"], env["net"]
    rt = d.runtime
    pods_before = len(rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items)
    netns_before = sorted(os.listdir(net.netns_dir)) if os.path.isdir(net.netns_dir) else []
    log_before = os.path.getsize(d.log_path)
    cfg = pod_config("big", env["logdir"])
    cfg.metadata.namespace = "n" * (3 << 20)
    t0 = time.monotonic()
    details = expect_invalid(rt.RunPodSandbox, cri_pb2.RunPodSandboxRequest(config=cfg),
                             "config.metadata.namespace is 3145728 bytes long, more than 63", "(3145728 bytes)")
    assert time.monotonic() - t0 < 10
    assert details.count("n") < 200  # a short prefix of the input, not the input
    assert len(rt.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=30).items) == pods_before
    assert (sorted(os.listdir(net.netns_dir)) if os.path.isdir(net.netns_dir) else []) == netns_before
    d.logs()
    assert os.path.getsize(d.log_path) - log_before < 64 << 10  # the log line is cut too
    assert "Argument list too long" not in d.logs()
    for field, value, word in [("namespace", "default ns", "only letters, digits"),
                               ("name", "web;K8S_POD_NAMESPACE=kube-system", "only letters, digits"),
                               ("uid", "u;IgnoreUnknown=0", "letters, digits")]:
        cfg = pod_config("named", env["logdir"])
        setattr(cfg.metadata, field, value)
        expect_invalid(rt.RunPodSandbox, cri_pb2.RunPodSandboxRequest(config=cfg), "config.metadata." + field, word)
    cfg = pod_config("attempt", env["logdir"])
    cfg.metadata.attempt = 1 << 31
    expect_invalid(rt.RunPodSandbox, cri_pb2.RunPodSandboxRequest(config=cfg), "config.metadata.attempt", "int32")


def test_id_with_nul_matches_nothing(env):
    rt = env["daemon"].runtime
    pod = env["pod"]
    for call, req in [(rt.StopPodSandbox, cri_pb2.StopPodSandboxRequest(pod_sandbox_id=pod[:16] + "\0junk")),
                      (rt.PodSandboxStatus, cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod + "\0")),
                      (rt.RemovePodSandbox, cri_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod[:20] + "\0x")),
                      (rt.ListPodSandbox, cri_pb2.ListPodSandboxRequest(
                          filter=cri_pb2.PodSandboxFilter(id=pod[:12] + "\0")))]:
        expect_invalid(call, req, "holds a NUL byte")
    st = rt.PodSandboxStatus(cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=30).status
    assert st.state == cri_pb2.SANDBOX_READY
    expect_invalid(rt.PodSandboxStatus, cri_pb2.PodSandboxStatusRequest(pod_sandbox_id="../" + pod[:20]), "not an id")


def test_huge_inputs_get_short_errors(env):
    """Multi-megabyte input gets a status the client can read, with a short prefix of the input."""
    d = env["daemon"]
    expect_invalid(d.runtime.PodSandboxStatus, cri_pb2.PodSandboxStatusRequest(pod_sandbox_id="f" * (3 << 20)),
                   "pod_sandbox_id is 3145728 bytes long, more than 64")
    expect_invalid(d.image.PullImage, cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image="x" * (3 << 20))),
                   "image.image is 3145728 bytes long, more than 1024")
    expect_invalid(d.image.ImageStatus, cri_pb2.ImageStatusRequest(image=cri_pb2.ImageSpec(image="\0" * 10)),
                   "image.image holds a NUL byte")
    # Within the bounds, a handler's message quotes a short prefix of what it was given.
    name = "127.0.0.1:1/" + "a" * 200 + ":1"
    details = expect_invalid(d.runtime.CreateContainer, cri_pb2.CreateContainerRequest(
        pod_sandbox_id=env["pod"], config=ctr_config(name, "noimage", ["/bin/true"]),
        sandbox_config=env["pod_cfg"]), "pull it first", "...(%d bytes)" % len(name), code=grpc.StatusCode.NOT_FOUND)
    assert name not in details


def test_sizes_bounded(env):
    rt = env["daemon"].runtime

    def create_req(cfg):
        return cri_pb2.CreateContainerRequest(pod_sandbox_id=env["pod"], config=cfg, sandbox_config=env["pod_cfg"])

    pod = pod_config("sizes", env["logdir"])
    pod.annotations["big"] = "v" * (600 << 10)
    expect_invalid(rt.RunPodSandbox, cri_pb2.RunPodSandboxRequest(config=pod), "config.annotations",
                   "more than 524288 bytes")
    pod = pod_config("sizes", env["logdir"])
    pod.dns_config.servers.extend(["10.0.0.2", "10.0.0.3", "10.0.0.4"])
    expect_invalid(rt.RunPodSandbox, cri_pb2.RunPodSandboxRequest(config=pod), "config.dns_config.servers",
                   "more than 3")
    cfg = ctr_config(env["image"], "mounts", ["/bin/true"],
                     mounts=[cri_pb2.Mount(container_path="/m%d" % i, host_path="/tmp") for i in range(257)])
    expect_invalid(rt.CreateContainer, create_req(cfg), "config.mounts has 257 entries, more than 256")
    cfg = ctr_config(env["image"], "envs", ["/bin/true"],
                     envs=[cri_pb2.KeyValue(key="E%d" % i, value="v" * (100 << 10)) for i in range(10)])
    expect_invalid(rt.CreateContainer, create_req(cfg), "(command, args and envs)", "more than 786432")
    cfg = ctr_config(env["image"], "bad;name", ["/bin/true"])
    expect_invalid(rt.CreateContainer, create_req(cfg), "config.metadata.name", "only letters, digits")
    cfg = ctr_config(env["image"], "labels", ["/bin/true"])
    cfg.labels[""] = "x"
    expect_invalid(rt.CreateContainer, create_req(cfg), "config.labels has an empty key")
    expect_invalid(rt.ExecSync, cri_pb2.ExecSyncRequest(container_id="0" * 64, cmd=["x" * (200 << 10)]),
                   "cmd[0] is 204800 bytes long")


# ---- images ----------------------------------------------------------------------------

def store_listing(d):
    images = os.path.join(d.root, "images")
    return {sub: sorted(os.listdir(os.path.join(images, sub))) for sub in ("blobs/sha256", "ext4", "records", "tmp")}


def test_unpacked_size_cap(env):
    d = env["daemon"]
    before = store_listing(d)
    assert before["tmp"] == []  # no lock files left by the pull of the module's image
    ref = "%s/test/bomb:1" % env["registry"].host
    t0 = time.monotonic()
    err = rpc_error(d.image.PullImage, cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=ref)), timeout=300)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert ref in err.details()
    assert "more than %d bytes (image.max_unpacked_bytes)" % CAP in err.details()
    assert time.monotonic() - t0 < 120
    # Nothing of it is left: no blob, ext4 image, record or temporary file.
    assert store_listing(d) == before
    listed = [t for i in d.image.ListImages(cri_pb2.ListImagesRequest(), timeout=30).images for t in i.repo_tags]
    assert ref not in listed
    # The module's image still pulls (everything there: nothing fetched) and tmp/ stays empty.
    d.image.PullImage(cri_pb2.PullImageRequest(image=cri_pb2.ImageSpec(image=env["image"])), timeout=300)
    assert store_listing(d)["tmp"] == []
