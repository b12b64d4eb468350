"""Container images for the node agent: references, pulls from an OCI registry, unpacked rootfs.

A kubelet asks its container runtime to pull; this agent is its own runtime, so it speaks the OCI
distribution API itself (plain HTTP for registries on loopback, HTTPS elsewhere), verifies every
blob's sha256, and unpacks each image once per manifest digest into a cached root filesystem
(layers applied in order, whiteouts honoured). Containers never write there: each run gets an
overlay with a fresh upper directory (see ``runtime.py``).

``parse_reference`` and ``apply_layer``'s path rules are pure and unit-tested; ``ImageStore``
does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp

log = logging.getLogger(__name__)
JSON = dict[str, Any]

DEFAULT_REGISTRY = "docker.io"
MEDIA_INDEX = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MEDIA_MANIFEST = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT = ", ".join(MEDIA_INDEX + MEDIA_MANIFEST)
PLATFORM = {"os": "linux", "architecture": "amd64"}

_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class ImageError(RuntimeError):
    """Why an image cannot be had. ``reason`` is the kubelet's waiting reason."""

    def __init__(self, message: str, reason: str = "ErrImagePull") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository`` (what ``imageID`` puts before ``@sha256:…``)."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What the manifest is fetched by: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def loopback(self) -> bool:
        host = self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else self.registry
        return host in ("localhost", "127.0.0.1", "[::1]") or host.startswith("127.")

    @property
    def base_url(self) -> str:
        scheme = "http" if self.loopback else "https"
        host = "registry-1.docker.io" if self.registry == DEFAULT_REGISTRY else self.registry
        return f"{scheme}://{host}/v2/{self.repository}"


def parse_reference(image: str) -> ImageRef:
    """Parse an image reference the way container runtimes do (docker.io and library/ implied).

    >>> str(parse_reference("busybox"))
    'docker.io/library/busybox:latest'
    """
    if not image or image != image.strip():
        raise ImageError(f"invalid image name {image!r}", "InvalidImageName")
    rest, _, pinned = image.partition("@")
    digest = pinned or None
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DEFAULT_REGISTRY, rest
    tag = None
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    if not _NAME.match(path):
        raise ImageError(f"invalid image name {image!r}: repository {path!r}", "InvalidImageName")
    if tag is not None and not _TAG.match(tag):
        raise ImageError(f"invalid image name {image!r}: tag {tag!r}", "InvalidImageName")
    if digest is not None and not _DIGEST.match(digest):
        raise ImageError(f"invalid image name {image!r}: digest {digest!r}", "InvalidImageName")
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry, path, tag, digest)


def pull_policy(container: JSON) -> str:
    """The effective ``imagePullPolicy`` (the apiserver defaults it; this mirrors its rule)."""
    policy = container.get("imagePullPolicy")
    if policy:
        return str(policy)
    ref = parse_reference(container.get("image", ""))
    return "Always" if ref.tag == "latest" and not ref.digest else "IfNotPresent"


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's config that decide how its containers run."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_blob(cls, blob: JSON) -> ImageConfig:
        cfg = blob.get("config") or {}
        return cls(
            entrypoint=tuple(cfg.get("Entrypoint") or ()),
            cmd=tuple(cfg.get("Cmd") or ()),
            env=tuple(cfg.get("Env") or ()),
            working_dir=cfg.get("WorkingDir") or "",
            user=cfg.get("User") or "",
            labels=dict(cfg.get("Labels") or {}),
        )


@dataclass(frozen=True)
class Image:
    """A pulled, unpacked image."""

    ref: ImageRef
    digest: str  # the manifest's digest: what ``imageID`` names
    rootfs: Path
    config: ImageConfig
    size: int

    @property
    def image_id(self) -> str:
        return f"{self.ref.name}@{self.digest}"


# --- unpacking ------------------------------------------------------------------------------


def member_path(name: str) -> PurePosixPath | None:
    """A tar member's path inside the rootfs, or None when it would escape it (``..``, absolute)."""
    parts = [p for p in PurePosixPath(name.lstrip("/")).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return PurePosixPath(*parts)


def whiteout_target(path: PurePosixPath) -> tuple[str, PurePosixPath] | None:
    """``("opaque", dir)`` for ``dir/.wh..wh..opq``, ``("remove", p)`` for ``.wh.<name>``, else None."""
    if path.name == ".wh..wh..opq":
        return "opaque", path.parent
    if path.name.startswith(".wh."):
        return "remove", path.parent / path.name[len(".wh.") :]
    return None


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def apply_layer(layer: Path, root: Path) -> None:
    """Apply one (possibly compressed) layer tarball to ``root``, honouring OCI whiteouts."""
    added: set[PurePosixPath] = set()
    with tarfile.open(layer, "r:*") as tar:
        for member in tar:
            rel = member_path(member.name)
            if rel is None:
                continue
            wh = whiteout_target(rel)
            if wh is not None:
                kind, target = wh
                dest = root / target
                if kind == "remove":
                    with contextlib.suppress(FileNotFoundError):
                        _remove(dest)
                elif dest.is_dir():
                    # an opaque directory hides what lower layers put there, not this layer's own files
                    for child in dest.iterdir():
                        if target / child.name not in added:
                            _remove(child)
                continue
            dest = root / rel
            keep_dir = member.isdir() and dest.is_dir() and not dest.is_symlink()
            if (dest.is_symlink() or dest.exists()) and not keep_dir:
                _remove(dest)
            if member.ischr() or member.isblk() or member.isfifo():
                # device nodes belong to the runtime's /dev, not to an image
                continue
            member.name = str(rel)
            if member.islnk():
                link = member_path(member.linkname)
                if link is None:
                    continue
                member.linkname = str(link)
            tar.extract(member, root, set_attrs=True, numeric_owner=True, filter="fully_trusted")
            added.add(rel)


# --- the store ------------------------------------------------------------------------------


class ImageStore:
    """Pulls images and keeps one unpacked rootfs per manifest digest under ``root``."""

    def __init__(self, root: Path, session_factory: Any = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._session_factory = session_factory or (lambda: aiohttp.ClientSession())
        self._locks: dict[str, asyncio.Lock] = {}
        self._refs_file = self.root / "refs.json"

    # tag -> digest, as last pulled (what IfNotPresent and Never go by)
    def _refs(self) -> dict[str, str]:
        try:
            return dict(json.loads(self._refs_file.read_text()))
        except (OSError, ValueError):
            return {}

    def _remember(self, ref: ImageRef, digest: str) -> None:
        refs = self._refs()
        refs[str(ref)] = digest
        tmp = self._refs_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(refs, indent=1, sort_keys=True))
        tmp.replace(self._refs_file)

    def _dir(self, digest: str) -> Path:
        return self.root / "sha256" / digest.removeprefix("sha256:")

    def _load(self, ref: ImageRef, digest: str) -> Image | None:
        d = self._dir(digest)
        try:
            meta = json.loads((d / "image.json").read_text())
        except (OSError, ValueError):
            return None
        os.utime(d / "image.json")  # last used: what pruning goes by
        return Image(ref, digest, d / "rootfs", ImageConfig.from_blob(meta["config"]), int(meta.get("size", 0)))

    def present(self, image: str) -> Image | None:
        ref = parse_reference(image)
        digest = ref.digest or self._refs().get(str(ref))
        return self._load(ref, digest) if digest else None

    async def ensure(self, image: str, policy: str) -> tuple[Image, bool]:
        """The image for a container per its pull policy; (image, pulled now)."""
        ref = parse_reference(image)
        if policy != "Always":
            have = self.present(image)
            if have is not None:
                return have, False
            if policy == "Never":
                raise ImageError(
                    f'Container image "{image}" is not present with pull policy of Never', "ErrImageNeverPull"
                )
        return await self.pull(ref), True

    async def pull(self, ref: ImageRef) -> Image:
        async with self._session_factory() as session:
            manifest, digest = await self._manifest(session, ref, ref.reference)
            lock = self._locks.setdefault(digest, asyncio.Lock())
            async with lock:
                have = self._load(ref, digest)
                if have is None:
                    have = await self._unpack(session, ref, digest, manifest)
        self._remember(ref, digest)
        return have

    async def _get(self, session: aiohttp.ClientSession, url: str, accept: str | None = None) -> aiohttp.ClientResponse:
        headers = {"Accept": accept} if accept else {}
        try:
            resp = await session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=None, sock_read=60))
        except aiohttp.ClientError as exc:
            raise ImageError(f"registry unreachable: {exc}") from exc
        except OSError as exc:
            raise ImageError(f"registry unreachable: {exc}") from exc
        if resp.status == 200:
            return resp
        body = (await resp.text(errors="replace"))[:300]
        resp.release()
        detail = body
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            err = json.loads(body)["errors"][0]
            code, message = err.get("code", "").lower().replace("_", " "), err.get("message", "")
            detail = message if message.lower() == code else f"{code}: {message}"
        if resp.status == 401:
            detail = f"{detail} (the local cluster's agent pulls anonymously; imagePullSecrets are not supported)"
        raise ImageError(f"{resp.status} from {url}: {detail.strip()}")

    async def _manifest(self, session: aiohttp.ClientSession, ref: ImageRef, reference: str) -> tuple[JSON, str]:
        resp = await self._get(session, f"{ref.base_url}/manifests/{reference}", ACCEPT)
        async with resp:
            body = await resp.read()
            media = resp.headers.get("Content-Type", "").split(";")[0]
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise ImageError(f"manifest digest mismatch: asked for {reference}, got {digest}")
        manifest = json.loads(body)
        media = manifest.get("mediaType") or media
        if media in MEDIA_INDEX or "manifests" in manifest:
            for entry in manifest.get("manifests", []):
                plat = entry.get("platform") or {}
                if all(plat.get(k) == v for k, v in PLATFORM.items()):
                    return await self._manifest(session, ref, entry["digest"])
            raise ImageError(f"no linux/amd64 image in the index of {ref}")
        if "layers" not in manifest or "config" not in manifest:
            raise ImageError(f"unsupported manifest type {media!r} for {ref}")
        return manifest, digest

    async def _blob(self, session: aiohttp.ClientSession, ref: ImageRef, digest: str, dest: Path) -> int:
        resp = await self._get(session, f"{ref.base_url}/blobs/{digest}")
        h = hashlib.sha256()
        size = 0
        async with resp:
            with open(dest, "wb") as fh:
                async for chunk in resp.content.iter_chunked(1 << 20):
                    h.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
        if "sha256:" + h.hexdigest() != digest:
            raise ImageError(f"blob {digest} of {ref} failed verification")
        return size

    async def _unpack(self, session: aiohttp.ClientSession, ref: ImageRef, digest: str, manifest: JSON) -> Image:
        t0 = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="pull-", dir=self.root))
        try:
            cfg_path = work / "config.json"
            await self._blob(session, ref, manifest["config"]["digest"], cfg_path)
            config = json.loads(cfg_path.read_text())
            rootfs = work / "rootfs"
            rootfs.mkdir()
            rootfs.chmod(0o755)
            size = 0
            for layer in manifest["layers"]:
                media = layer.get("mediaType", "")
                if "zstd" in media:
                    raise ImageError(f"layer {layer['digest']} of {ref} is zstd-compressed, which is not supported")
                blob = work / "layer"
                size += await self._blob(session, ref, layer["digest"], blob)
                await asyncio.to_thread(apply_layer, blob, rootfs)
                blob.unlink()
            (work / "image.json").write_text(json.dumps({"ref": str(ref), "config": config, "size": size}))
            final = self._dir(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                shutil.rmtree(final)
            work.rename(final)
            took = time.monotonic() - t0
            log.info("unpacked %s (%s, %.0f MB compressed) in %.1fs", ref, digest[:19], size / 1e6, took)
            return Image(ref, digest, final / "rootfs", ImageConfig.from_blob(config), size)
        except (OSError, tarfile.TarError, ValueError, KeyError) as exc:
            raise ImageError(f"cannot unpack {ref}: {exc}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def prune(self, keep: set[str], older_than: float = 3600.0) -> list[str]:
        """Delete unpacked images not in ``keep`` (digests in use) and unused for ``older_than`` s."""
        removed = []
        now = time.time()
        for d in (self.root / "sha256").glob("*"):
            digest = f"sha256:{d.name}"
            try:
                used = (d / "image.json").stat().st_mtime
            except OSError:
                used = 0.0
            if digest not in keep and now - used > older_than:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(digest)
        return removed
