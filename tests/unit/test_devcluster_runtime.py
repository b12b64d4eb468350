"""The node agent's image runtime, pure parts: references, layers, and the OCI bundle it writes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath

import pytest
from tts_devcluster.agent.images import (
    ImageConfig,
    ImageError,
    apply_layer,
    member_path,
    parse_reference,
    pull_policy,
    whiteout_target,
)
from tts_devcluster.agent.runtime import (
    DEFAULT_CAPABILITIES,
    Process,
    RuntimeConfigError,
    capabilities,
    container_argv,
    memory_limit,
    merge_env,
    oci_config,
    resolve_user,
    seccomp_profile,
)


@pytest.mark.parametrize(
    ("image", "registry", "repository", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("python:3.11-slim", "docker.io", "library/python", "3.11-slim", None),
        ("ghcr.io/kube-tts/router:0.2.0", "ghcr.io", "kube-tts/router", "0.2.0", None),
        ("127.0.0.1:5100/kube-tts/inference:0.2.0-cuda", "127.0.0.1:5100", "kube-tts/inference", "0.2.0-cuda", None),
        ("localhost/x@sha256:" + "a" * 64, "localhost", "x", None, "sha256:" + "a" * 64),
    ],
)
def test_references_parse_as_runtimes_do(image, registry, repository, tag, digest):
    ref = parse_reference(image)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


def test_loopback_registries_speak_http_and_others_https():
    assert parse_reference("127.0.0.1:5100/a/b:1").base_url == "http://127.0.0.1:5100/v2/a/b"
    assert parse_reference("ghcr.io/a/b:1").base_url == "https://ghcr.io/v2/a/b"
    assert parse_reference("busybox").base_url == "https://registry-1.docker.io/v2/library/busybox"


@pytest.mark.parametrize("bad", ["", " busybox", "Upper/Case:1", "a/b:bad tag", "a@sha256:short"])
def test_invalid_names_are_invalid_image_name(bad):
    with pytest.raises(ImageError) as info:
        parse_reference(bad)
    assert info.value.reason == "InvalidImageName"


def test_pull_policy_defaults_like_the_apiserver():
    assert pull_policy({"image": "busybox"}) == "Always"
    assert pull_policy({"image": "busybox:1.36"}) == "IfNotPresent"
    assert pull_policy({"image": "busybox", "imagePullPolicy": "Never"}) == "Never"


def test_member_paths_never_leave_the_root():
    assert member_path("./usr/bin/python") == PurePosixPath("usr/bin/python")
    assert member_path("/etc/passwd") == PurePosixPath("etc/passwd")
    assert member_path("../../etc/shadow") is None
    assert member_path("usr/../../x") is None
    assert whiteout_target(PurePosixPath("etc/.wh.motd")) == ("remove", PurePosixPath("etc/motd"))
    assert whiteout_target(PurePosixPath("var/cache/.wh..wh..opq")) == ("opaque", PurePosixPath("var/cache"))
    assert whiteout_target(PurePosixPath("etc/motd")) is None


def _layer(path: Path, entries: list[tuple[str, bytes | None]]) -> Path:
    """A gzipped layer: (name, content) files, None for a directory, symlinks as ('name', b'->target')."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif data.startswith(b"->"):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:].decode()
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return path


def test_layers_apply_in_order_with_whiteouts(tmp_path: Path):
    root = tmp_path / "rootfs"
    root.mkdir()
    base = [
        ("etc", None),
        ("etc/motd", b"hello"),
        ("etc/keep", b"k"),
        ("var/cache/old", b"o"),
        ("bin/sh", b"#!"),
        ("../escape", b"x"),
    ]
    apply_layer(_layer(tmp_path / "l1.tgz", base), root)
    top = [
        ("etc/.wh.motd", b""),
        ("var/cache/new", b"n"),
        ("var/cache/.wh..wh..opq", b""),
        ("bin/sh", b"->/bin/dash"),
        ("etc/keep", b"changed"),
    ]
    apply_layer(_layer(tmp_path / "l2.tgz", top), root)
    assert not (root / "etc/motd").exists()
    assert (root / "etc/keep").read_text() == "changed"
    assert not (root / "var/cache/old").exists() and (root / "var/cache/new").read_text() == "n"
    assert (root / "bin/sh").is_symlink() and str((root / "bin/sh").readlink()) == "/bin/dash"
    assert not (tmp_path / "escape").exists()


def test_command_and_args_replace_entrypoint_and_cmd_as_kubernetes_documents():
    img = ImageConfig(entrypoint=("/entry",), cmd=("--default",))
    assert container_argv({}, img) == ["/entry", "--default"]
    assert container_argv({"args": ["--x"]}, img) == ["/entry", "--x"]
    assert container_argv({"command": ["python", "-m", "a"]}, img) == ["python", "-m", "a"]
    assert container_argv({"command": ["sh"], "args": ["-c", "true"]}, img) == ["sh", "-c", "true"]
    with pytest.raises(RuntimeConfigError):
        container_argv({}, ImageConfig())


def test_pod_env_overrides_the_images():
    env = merge_env(("PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8", "X=image"), {"X": "pod"})
    assert env == {"PATH": "/usr/local/bin:/usr/bin", "LANG": "C.UTF-8", "X": "pod"}
    assert "PATH" in merge_env((), {})


def test_user_comes_from_the_security_context_then_the_image(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nkubetts:x:65532:65532::/tmp:/bin/false\n")
    (tmp_path / "etc/group").write_text("kubetts:x:65532:\n")
    assert resolve_user(None, None, "65532:65532", tmp_path, True) == (65532, 65532, "/tmp")
    assert resolve_user(1000, 2000, "65532", tmp_path, True) == (1000, 2000, "/")
    assert resolve_user(None, None, "", tmp_path, False) == (0, 0, "/root")
    with pytest.raises(RuntimeConfigError, match="runAsNonRoot and image will run as root"):
        resolve_user(None, None, "", tmp_path, True)
    with pytest.raises(RuntimeConfigError, match="non-numeric user"):
        resolve_user(None, None, "kubetts", tmp_path, True)
    assert resolve_user(None, None, "kubetts:kubetts", tmp_path, False) == (65532, 65532, "/tmp")


def test_capabilities_after_drop_and_add():
    assert capabilities(None) == list(DEFAULT_CAPABILITIES)
    assert capabilities({"capabilities": {"drop": ["ALL"]}}) == []
    assert capabilities({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}) == ["CAP_NET_BIND_SERVICE"]
    assert "CAP_NET_RAW" not in capabilities({"capabilities": {"drop": ["NET_RAW"]}})


def test_runtime_default_seccomp_refuses_what_dockers_profile_refuses():
    assert seccomp_profile(None, None) is None
    profile = seccomp_profile({"seccompProfile": {"type": "RuntimeDefault"}}, None)
    assert profile is not None
    denied = profile["syscalls"][0]["names"]
    assert {"mount", "unshare", "ptrace", "kexec_load", "bpf"} <= set(denied)
    assert "read" not in denied and profile["defaultAction"] == "SCMP_ACT_ALLOW"
    assert seccomp_profile(None, {"seccompProfile": {"type": "RuntimeDefault"}}) == profile
    with pytest.raises(RuntimeConfigError, match="Localhost"):
        seccomp_profile({"seccompProfile": {"type": "Localhost"}}, None)


def test_oci_config_carries_the_pods_choices():
    cfg = oci_config(
        process=Process(["python", "-m", "x"], ["A=1"], "/", 65532, 65532, [65532]),
        rootfs=Path("/r"),
        read_only_root=True,
        no_new_privs=True,
        caps=[],
        seccomp=seccomp_profile({"seccompProfile": {"type": "RuntimeDefault"}}, None),
        netns="/var/run/netns/kt0-x",
        hostname="pod-a",
        mounts=[
            {"source": "/v/tmp", "target": "/tmp", "readOnly": False},
            {"source": "/v/m", "target": "/m", "readOnly": True},
        ],
        memory=memory_limit({"resources": {"limits": {"memory": "2Gi"}}}),
        nofile=(1024, 4096),
    )
    assert cfg["root"] == {"path": "/r", "readonly": True}
    assert cfg["process"]["user"] == {"uid": 65532, "gid": 65532, "additionalGids": [65532]}
    assert cfg["process"]["noNewPrivileges"] is True and cfg["process"]["capabilities"]["bounding"] == []
    assert {"type": "network", "path": "/var/run/netns/kt0-x"} in cfg["linux"]["namespaces"]
    assert cfg["linux"]["resources"]["memory"] == {"limit": 2 * 2**30}
    binds = {m["destination"]: m["options"] for m in cfg["mounts"] if m["type"] == "bind"}
    assert "ro" in binds["/m"] and "rw" in binds["/tmp"]
    assert cfg["hostname"] == "pod-a" and "seccomp" in cfg["linux"]
    # a root process keeps its capabilities; a non-root one gets none effective
    root = oci_config(
        process=Process(["sh"], [], "/", 0, 0, []),
        rootfs=Path("/r"),
        read_only_root=False,
        no_new_privs=False,
        caps=list(DEFAULT_CAPABILITIES),
        seccomp=None,
        netns=None,
        hostname="h",
        mounts=[],
        memory=None,
        nofile=(1024, 4096),
    )
    assert root["process"]["capabilities"]["effective"] == list(DEFAULT_CAPABILITIES)
    assert all(ns["type"] != "network" for ns in root["linux"]["namespaces"])
    assert "memory" not in root["linux"]["resources"] and "seccomp" not in root["linux"]


def test_prune_keeps_images_in_use_and_recently_used(tmp_path: Path):
    import os
    import time

    from tts_devcluster.agent.images import ImageStore

    store = ImageStore(tmp_path)
    for name, age in (("a" * 64, 7200), ("b" * 64, 7200), ("c" * 64, 60)):
        d = tmp_path / "sha256" / name
        (d / "rootfs").mkdir(parents=True)
        (d / "image.json").write_text("{}")
        old = time.time() - age
        os.utime(d / "image.json", (old, old))
    removed = store.prune({"sha256:" + "b" * 64})
    assert removed == ["sha256:" + "a" * 64]
    assert sorted(p.name[0] for p in (tmp_path / "sha256").iterdir()) == ["b", "c"]
