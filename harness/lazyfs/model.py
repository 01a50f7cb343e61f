"""What a crash leaves on disk: the page-cache semantics of the lose-unsynced layer.

A real kernel keeps written data in its page cache and writes it back when it
likes; only ``fsync`` promises that it is on disk. A node that acknowledges
before fsyncing, or that relies on a write it never synced, is only caught
when a crash actually loses the unsynced part, which a SIGKILL alone never
does (the kernel survives the process and writes the cache back). This module
is that cache, as data, so the FUSE adapter (:mod:`harness.lazyfs.ops`) is a
thin shell over it and Hypothesis can test the semantics without a mount.

The rules (POSIX's promise, taken strictly, as lazyfs does for data):

* a file's content after a crash is its content at its last ``fsync``: the
  writes and truncations since then are kept in order in memory
  (:attr:`Inode.pending`), and ``fsync`` applies them to the durable copy,
  a backing file per inode that is itself fsynced (so the layer keeps a real
  disk's fsync cost);
* a name (create, rename, unlink, mkdir) becomes durable only when its
  directory is fsynced: each directory keeps its durable entries beside its
  current ones, and a crash reverts to the durable ones, so a created file
  not made durable vanishes and a rename not made durable reverts;
* on a crash, unsynced writes are dropped wholly (``mode="drop"``, lazyfs's
  behaviour) or, with ``mode="tear"``, a random prefix of them reaches the
  disk, the last of those possibly cut in the middle: a torn tail, as when
  writeback got part of the way before power went;
* with disk errors on (:meth:`LazyFS.fail`, the ``disk-error`` fault), every
  ``fsync`` and directory fsync fails with EIO, and the writes it was asked to
  make durable are lost: the file keeps its size, but every byte they wrote
  now reads as the disk holds it (the old data, or zeros past the durable
  end). That is what Linux does after a failed writeback, taken strictly: the
  dirty pages are marked clean and may be evicted at any time (PostgreSQL's
  "fsyncgate"), so a node that retries the fsync, or ignores the error, goes
  on with a hole in its file and acknowledges data no disk holds. With
  ``mode="all"`` writes fail with EIO too (a disk that has gone away);
* durable directory entries are kept per directory: a file renamed from one
  directory to another whose two directories are fsynced at different times
  may be in both, or neither, after a crash (a real file system orders this
  in its journal; the reference system only renames within one directory).

Durable names live in this process's memory (the layer outlives every node
crash; it is the kernel and the disk together); durable file data lives in
the backing directory.
"""

from __future__ import annotations

import errno
import os
import random
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["FAIL_MODES", "CrashReport", "FsError", "Inode", "LazyFS", "Mode"]

Mode = Literal["drop", "tear"]
#: what :meth:`LazyFS.fail` can make fail: nothing, every fsync, or fsyncs and writes
FAIL_MODES = ("none", "fsync", "all")
ROOT = 1


class FsError(OSError):
    """A file-system error with its errno (the FUSE adapter answers it)."""

    def __init__(self, code: int, what: str = "") -> None:
        super().__init__(code, os.strerror(code) + (f": {what}" if what else ""))


@dataclass
class Inode:
    """A file or a directory.

    A file's durable bytes are its backing file (``durable_size`` long);
    ``pending`` holds the writes (``(offset, data)``) and truncations
    (``(size, None)``) made since its last fsync, in order.
    """

    ino: int
    is_dir: bool
    mode: int
    durable_size: int = 0
    size: int = 0
    pending: list[tuple[int, bytes | None]] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)
    durable_entries: dict[str, int] = field(default_factory=dict)
    mtime: float = field(default_factory=time.time)
    ctime: float = field(default_factory=time.time)


@dataclass(frozen=True)
class CrashReport:
    """What one crash threw away (recorded in the nemesis event)."""

    dropped_bytes: int
    torn_files: int
    lost_names: int
    reverted_files: int

    def to_dict(self) -> dict[str, int]:
        return {"dropped_bytes": self.dropped_bytes, "torn_files": self.torn_files,
                "lost_names": self.lost_names, "reverted_files": self.reverted_files}


class LazyFS:
    """A directory tree whose unsynced writes and names a crash can drop."""

    def __init__(self, backing: Path) -> None:
        self.backing = Path(backing)
        self.backing.mkdir(parents=True, exist_ok=True)
        self.inodes: dict[int, Inode] = {ROOT: Inode(ROOT, True, stat.S_IFDIR | 0o755)}
        self._next = ROOT + 1
        self.fsyncs = 0
        self.crashes = 0
        #: which operations fail with EIO now (:data:`FAIL_MODES`)
        self.failing = "none"
        self.failed_ops = 0
        self.failed_bytes = 0

    # --- paths ---------------------------------------------------------------------

    def lookup(self, path: str) -> Inode:
        node = self.inodes[ROOT]
        for part in _parts(path):
            if not node.is_dir:
                raise FsError(errno.ENOTDIR, path)
            ino = node.entries.get(part)
            if ino is None:
                raise FsError(errno.ENOENT, path)
            node = self.inodes[ino]
        return node

    def _parent(self, path: str) -> tuple[Inode, str]:
        parts = _parts(path)
        if not parts:
            raise FsError(errno.EBUSY, "the root")
        parent = self.lookup("/" + "/".join(parts[:-1]))
        if not parent.is_dir:
            raise FsError(errno.ENOTDIR, path)
        return parent, parts[-1]

    def _new(self, is_dir: bool, mode: int) -> Inode:
        ino = self._next
        self._next += 1
        kind = stat.S_IFDIR if is_dir else stat.S_IFREG
        node = self.inodes[ino] = Inode(ino, is_dir, kind | (mode & 0o7777))
        return node

    def _backing(self, ino: int) -> Path:
        return self.backing / f"{ino}"

    # --- names ---------------------------------------------------------------------

    def create(self, path: str, mode: int = 0o644) -> Inode:
        """An empty file at ``path`` (the existing one, truncated, when there is one)."""
        parent, name = self._parent(path)
        if name in parent.entries:
            node = self.inodes[parent.entries[name]]
            if node.is_dir:
                raise FsError(errno.EISDIR, path)
            self.truncate(node.ino, 0)
            return node
        node = self._new(False, mode)
        parent.entries[name] = node.ino
        parent.mtime = time.time()
        return node

    def mkdir(self, path: str, mode: int = 0o755) -> Inode:
        parent, name = self._parent(path)
        if name in parent.entries:
            raise FsError(errno.EEXIST, path)
        node = self._new(True, mode)
        parent.entries[name] = node.ino
        return node

    def unlink(self, path: str) -> None:
        parent, name = self._parent(path)
        ino = parent.entries.get(name)
        if ino is None:
            raise FsError(errno.ENOENT, path)
        if self.inodes[ino].is_dir:
            raise FsError(errno.EISDIR, path)
        del parent.entries[name]

    def rmdir(self, path: str) -> None:
        parent, name = self._parent(path)
        ino = parent.entries.get(name)
        if ino is None:
            raise FsError(errno.ENOENT, path)
        node = self.inodes[ino]
        if not node.is_dir:
            raise FsError(errno.ENOTDIR, path)
        if node.entries:
            raise FsError(errno.ENOTEMPTY, path)
        del parent.entries[name]

    def rename(self, old: str, new: str) -> None:
        src_dir, src = self._parent(old)
        dst_dir, dst = self._parent(new)
        ino = src_dir.entries.get(src)
        if ino is None:
            raise FsError(errno.ENOENT, old)
        moving = self.inodes[ino]
        target = dst_dir.entries.get(dst)
        if target is not None and target != ino:
            existing = self.inodes[target]
            if existing.is_dir and not moving.is_dir:
                raise FsError(errno.EISDIR, new)
            if moving.is_dir and not existing.is_dir:
                raise FsError(errno.ENOTDIR, new)
            if existing.is_dir and existing.entries:
                raise FsError(errno.ENOTEMPTY, new)
        if moving.is_dir and self._inside(dst_dir.ino, ino):
            raise FsError(errno.EINVAL, new)
        del src_dir.entries[src]
        dst_dir.entries[dst] = ino

    def _inside(self, ino: int, ancestor: int) -> bool:
        """Whether directory ``ino`` is ``ancestor`` or below it (current names)."""
        if ino == ancestor:
            return True
        todo = [ancestor]
        while todo:
            for child in self.inodes[todo.pop()].entries.values():
                if child == ino:
                    return True
                if self.inodes[child].is_dir:
                    todo.append(child)
        return False

    def listdir(self, ino: int) -> list[str]:
        node = self.inodes[ino]
        if not node.is_dir:
            raise FsError(errno.ENOTDIR)
        return sorted(node.entries)

    # --- data ----------------------------------------------------------------------

    def _file(self, ino: int) -> Inode:
        node = self.inodes.get(ino)
        if node is None:
            raise FsError(errno.EBADF)
        if node.is_dir:
            raise FsError(errno.EISDIR)
        return node

    def write(self, ino: int, offset: int, data: bytes) -> int:
        if offset < 0:
            raise FsError(errno.EINVAL)
        node = self._file(ino)
        if self.failing == "all":
            self.failed_ops += 1
            raise FsError(errno.EIO, "the disk fails writes (disk-error fault)")
        if data:
            node.pending.append((offset, bytes(data)))
            node.size = max(node.size, offset + len(data))
            node.mtime = time.time()
        return len(data)

    def truncate(self, ino: int, size: int) -> None:
        if size < 0:
            raise FsError(errno.EINVAL)
        node = self._file(ino)
        node.pending.append((size, None))
        node.size = size
        node.mtime = time.time()

    def read(self, ino: int, offset: int, n: int) -> bytes:
        """Bytes as the node sees them now: the durable copy with the pending writes."""
        node = self._file(ino)
        if offset >= node.size or n <= 0:
            return b""
        n = min(n, node.size - offset)
        buf = bytearray(self._read_durable(node, offset, n))
        buf.extend(bytes(n - len(buf)))
        end = offset + n
        for at, data in node.pending:
            if data is None:  # truncation: nothing beyond ``at`` survives it
                if at < end:
                    cut = max(at - offset, 0)
                    buf[cut:] = bytes(n - cut)
                continue
            lo, hi = max(at, offset), min(at + len(data), end)
            if lo < hi:
                buf[lo - offset : hi - offset] = data[lo - at : hi - at]
        return bytes(buf)

    def _read_durable(self, node: Inode, offset: int, n: int) -> bytes:
        if offset >= node.durable_size:
            return b""
        try:
            fd = os.open(self._backing(node.ino), os.O_RDONLY)
        except FileNotFoundError:
            return b""
        try:
            return os.pread(fd, min(n, node.durable_size - offset), offset)
        finally:
            os.close(fd)

    def fsync(self, ino: int) -> None:
        """Make a file's data durable (not its name: see :meth:`fsyncdir`)."""
        node = self.inodes.get(ino)
        if node is None:
            raise FsError(errno.EBADF)
        if node.is_dir:
            self.fsyncdir(ino)
            return
        if self.failing != "none":
            self._lose_pending(node)
            raise FsError(errno.EIO, "fsync failed (disk-error fault)")
        self.fsyncs += 1
        self._apply(node, node.pending, sync=True)
        node.pending.clear()

    def _apply(self, node: Inode, ops: list[tuple[int, bytes | None]], *, sync: bool) -> None:
        if not ops and node.durable_size == node.size:
            return
        fd = os.open(self._backing(node.ino), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            size = node.durable_size
            for at, data in ops:
                if data is None:
                    os.ftruncate(fd, at)
                    size = at
                else:
                    view = memoryview(data)
                    pos = at
                    while view:
                        done = os.pwrite(fd, view, pos)
                        view, pos = view[done:], pos + done
                    size = max(size, at + len(data))
            if size != os.fstat(fd).st_size:
                os.ftruncate(fd, size)
            if sync:
                os.fsync(fd)
            node.durable_size = size
        finally:
            os.close(fd)

    def fsyncdir(self, ino: int) -> None:
        """Make a directory's current names durable."""
        node = self.inodes.get(ino)
        if node is None or not node.is_dir:
            raise FsError(errno.ENOTDIR)
        if self.failing != "none":
            self.failed_ops += 1
            raise FsError(errno.EIO, "directory fsync failed (disk-error fault)")
        self.fsyncs += 1
        node.durable_entries = dict(node.entries)

    # --- disk errors ---------------------------------------------------------------

    def fail(self, mode: str) -> dict[str, int]:
        """Make fsyncs (``"fsync"``), or fsyncs and writes (``"all"``), fail with EIO
        from now on; ``"none"`` ends it. Answers what failed since the last call."""
        if mode not in FAIL_MODES:
            raise ValueError(f"disk-error mode must be one of {FAIL_MODES}, not {mode!r}")
        done = {"failed_ops": self.failed_ops, "lost_bytes": self.failed_bytes,
                "was_failing": int(self.failing != "none")}
        self.failing = mode
        self.failed_ops = self.failed_bytes = 0
        return done

    def _lose_pending(self, node: Inode) -> None:
        """A failed fsync: the writes it should have made durable are gone (see the
        module's docstring). The size stays; the content is the durable content,
        cut at the lowest pending truncation, then zeros up to the size."""
        self.failed_ops += 1
        self.failed_bytes += sum(len(d) for _, d in node.pending if d is not None)
        cut = min((at for at, d in node.pending if d is None), default=node.durable_size)
        base = min(cut, node.durable_size)
        node.pending = [(base, None)] if base < node.durable_size else []
        if node.size > base:
            node.pending.append((node.size, None))

    # --- the crash -----------------------------------------------------------------

    def crash(self, mode: Mode = "drop", rng: random.Random | None = None) -> CrashReport:
        """Forget everything not fsynced, as a power loss would.

        Every directory's names revert to its durable ones; files no durable
        name reaches are gone (with their backing data); every file's
        unsynced writes are dropped, or with ``mode="tear"`` a random prefix
        of them is kept, the last kept write possibly cut short.
        """
        rng = rng or random.Random()
        self.crashes += 1
        lost = 0
        for node in self.inodes.values():
            if node.is_dir:
                lost += len(set(node.entries.items()) - set(node.durable_entries.items()))
                node.entries = dict(node.durable_entries)
        reachable = {ROOT}
        todo = [ROOT]
        while todo:
            for child in self.inodes[todo.pop()].entries.values():
                if child not in reachable and child in self.inodes:
                    reachable.add(child)
                    if self.inodes[child].is_dir:
                        todo.append(child)
        for ino in [i for i in self.inodes if i not in reachable]:
            del self.inodes[ino]
            self._backing(ino).unlink(missing_ok=True)
        dropped = torn = reverted = 0
        for node in self.inodes.values():
            if node.is_dir or not node.pending:
                continue
            kept: list[tuple[int, bytes | None]] = []
            if mode == "tear":
                k = rng.randrange(len(node.pending) + 1)
                kept = list(node.pending[:k])
                if k < len(node.pending):
                    at, data = node.pending[k]
                    if data is not None and len(data) > 1:
                        kept.append((at, data[: rng.randrange(1, len(data))]))
                if kept:
                    torn += 1
            dropped += sum(len(d) for _, d in node.pending if d is not None)
            dropped -= sum(len(d) for _, d in kept if d is not None)
            self._apply(node, kept, sync=True)
            node.pending.clear()
            node.size = node.durable_size
            reverted += 1
        return CrashReport(dropped, torn, lost, reverted)

    def unsynced(self) -> dict[str, int]:
        """How much a crash now would lose."""
        files = [n for n in self.inodes.values() if not n.is_dir]
        dirs = [n for n in self.inodes.values() if n.is_dir]
        return {
            "pending_bytes": sum(len(d) for n in files for _, d in n.pending if d is not None),
            "dirty_files": sum(1 for n in files if n.pending),
            "dirty_dirs": sum(1 for n in dirs if n.entries != n.durable_entries),
            "fsyncs": self.fsyncs,
            "crashes": self.crashes,
        }


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]
