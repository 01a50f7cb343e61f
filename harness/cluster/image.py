"""Container images built without any registry.

No registry is reachable on the machines this runs on, so nothing can be
pulled, not even a Debian base. Instead: ``debootstrap`` a minimal Debian root
from the mirror the machine's own apt uses, with the Debian packages a system
needs installed at bootstrap time, ``docker import`` it as a base image, then
``docker build`` a system's image on top of that base with ``pull=False``.

Both steps are cached by a content hash in the image tag: the base by its
suite, mirror and package list; a system image by its base and the bytes of
every file copied into it. A second build with nothing changed is a lookup.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

__all__ = ["BaseSpec", "ImageError", "ImageSpec", "apt_mirror", "ensure_base", "ensure_image"]

BASE_RECIPE_VERSION = 1
LABEL = "harness.image"
LOCK_DIR = Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))


class ImageError(HarnessError):
    """An image could not be built; the message says which step and why."""


def apt_mirror(root: Path = Path("/")) -> tuple[str, str]:
    """(mirror URL, suite) of the machine's main Debian source, for debootstrap."""
    sources = root / "etc/apt/sources.list.d"
    candidates: list[tuple[str, str]] = []
    if sources.is_dir():
        for f in sorted(sources.glob("*.sources")):
            for stanza in f.read_text(errors="replace").split("\n\n"):
                fields = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (ln.partition(":") for ln in stanza.splitlines())
                    if v and not k.startswith("#")
                )
                if "deb" not in fields.get("types", "").split():
                    continue
                for uri in fields.get("uris", "").split():
                    for suite in fields.get("suites", "").split():
                        candidates.append((uri, suite))
    legacy = root / "etc/apt/sources.list"
    if legacy.exists():
        for line in legacy.read_text(errors="replace").splitlines():
            m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m:
                candidates.append((m.group(1), m.group(2)))
    for uri, suite in candidates:
        if "security" in uri or "-" in suite:
            continue  # debootstrap wants the base suite, not updates/security
        return uri.rstrip("/"), suite
    raise ImageError("no Debian mirror found in /etc/apt/sources.list(.d): cannot debootstrap")


@dataclass(frozen=True)
class BaseSpec:
    """A Debian base: suite, mirror and the packages installed at bootstrap."""

    packages: tuple[str, ...]
    suite: str | None = None
    mirror: str | None = None
    name: str = "harness-base"

    def resolved(self) -> BaseSpec:
        if self.suite and self.mirror:
            return self
        mirror, suite = apt_mirror()
        return BaseSpec(tuple(sorted(set(self.packages))), self.suite or suite,
                        self.mirror or mirror, self.name)

    @property
    def tag(self) -> str:
        spec = self.resolved()
        key = f"{BASE_RECIPE_VERSION}|{spec.suite}|{spec.mirror}|{','.join(spec.packages)}"
        return f"{self.name}:{hashlib.sha256(key.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class ImageSpec:
    """A system image: a base, files copied in, and Dockerfile instructions after them.

    ``files`` maps a path inside the image's build context to a source path
    on the host (a file or a folder); ``dockerfile`` is everything after the
    ``FROM`` line.
    """

    name: str
    base: BaseSpec
    files: Mapping[str, Path] = field(default_factory=dict)
    dockerfile: str = ""

    def _digest(self) -> str:
        h = hashlib.sha256()
        h.update(self.base.tag.encode())
        h.update(self.dockerfile.encode())
        for dest, src in sorted(self.files.items()):
            h.update(dest.encode())
            for p in _walk(Path(src)):
                h.update(str(p.relative_to(src) if p != src else "").encode())
                h.update(p.read_bytes())
        return h.hexdigest()[:16]

    @property
    def tag(self) -> str:
        return f"{self.name}:{self._digest()}"


def _walk(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    return sorted(
        p for p in src.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
    )


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialize builds of one image across processes (parallel test workers)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_DIR / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _has_image(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_base(client: Any, spec: BaseSpec) -> str:
    """The base image's tag, bootstrapping and importing it if it is not there yet."""
    spec = spec.resolved()
    tag = spec.tag
    if _has_image(client, tag):
        return tag
    with _lock(tag.replace(":", "-")):
        if _has_image(client, tag):
            return tag
        if shutil.which("debootstrap") is None:
            raise ImageError("debootstrap is not installed (apt-get install debootstrap)")
        if os.geteuid() != 0:
            raise ImageError("debootstrap needs root to build the base image")
        with tempfile.TemporaryDirectory(prefix="harness-rootfs-") as tmp:
            rootfs = Path(tmp) / "root"
            cmd = ["debootstrap", "--variant=minbase"]
            if spec.packages:
                cmd.append("--include=" + ",".join(spec.packages))
            cmd += [spec.suite or "", str(rootfs), spec.mirror or ""]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            if proc.returncode != 0:
                tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
                raise ImageError(f"debootstrap failed: {' | '.join(tail)}")
            # Smaller image, and no apt lists that would go stale inside it.
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                shutil.rmtree(rootfs / junk, ignore_errors=True)
            tarball = Path(tmp) / "root.tar"
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True,
                           timeout=600)
            repo, _, version = tag.partition(":")
            client.api.import_image_from_file(
                str(tarball), repository=repo, tag=version,
                changes=[f'LABEL {LABEL}="base"', 'ENV LANG=C.UTF-8', 'CMD ["/bin/bash"]'],
            )
    if not _has_image(client, tag):
        raise ImageError(f"docker import did not produce {tag}")
    return tag


def ensure_image(client: Any, spec: ImageSpec, *, extra_labels: Mapping[str, str] | None = None
                 ) -> str:
    """A system image's tag, building it on its base if it is not there yet."""
    tag = spec.tag
    if _has_image(client, tag):
        return tag
    base = ensure_base(client, spec.base)
    with _lock(tag.replace(":", "-")):
        if _has_image(client, tag):
            return tag
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            dockerfile = f"FROM {base}\n{spec.dockerfile}\n".encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
            for dest, src in spec.files.items():
                tar.add(str(src), arcname=dest,
                        filter=lambda ti: None if "__pycache__" in ti.name else ti)
        context.seek(0)
        labels = {LABEL: spec.name, **(extra_labels or {})}
        try:
            client.images.build(fileobj=context, custom_context=True, tag=tag, pull=False,
                                rm=True, forcerm=True, labels=labels)
        except Exception as e:  # docker.errors.BuildError carries the build log
            log: Sequence[Any] = getattr(e, "build_log", None) or []
            lines = [str(x.get("stream", x.get("error", ""))).strip() for x in log
                     if isinstance(x, dict)]
            tail = " | ".join(ln for ln in lines if ln)[-400:]
            raise ImageError(f"building {tag} failed: {e}; {tail}") from None
    return tag
