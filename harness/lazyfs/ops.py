"""The FUSE adapter: kernel requests onto :class:`~harness.lazyfs.model.LazyFS`.

fusepy (ctypes over Debian's libfuse2) rather than pyfuse3: it needs no
compiler, no libfuse3 headers and no trio, and the layer's few, synchronous
operations gain nothing from an async loop. Requests arrive on libfuse's
threads; one lock serialises them (the model is not thread-safe, and a
node's storage writes one file at a time anyway).

File handles are inode numbers, so a write through a handle still reaches
its file after the name was renamed or unlinked, as on a real file system.
The mount is made with ``direct_io`` and zero attribute and entry timeouts:
the kernel must not serve reads or sizes from its own cache, or a crash that
drops our unsynced data would leave the kernel showing it.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from typing import Any

from fuse import FuseOSError, Operations

from harness.lazyfs.model import FsError, LazyFS

__all__ = ["LazyOps"]


class LazyOps(Operations):
    """fusepy operations over one :class:`LazyFS`."""

    use_ns = False

    def __init__(self, fs: LazyFS) -> None:
        self.fs = fs
        self.mutex = threading.Lock()

    def __call__(self, op: str, *args: Any) -> Any:
        handler = getattr(self, op, None)
        if handler is None:
            raise FuseOSError(errno.EFAULT)
        with self.mutex:
            try:
                return handler(*args)
            except FsError as e:
                raise FuseOSError(e.errno or errno.EIO) from None
            except KeyError:
                raise FuseOSError(errno.ENOENT) from None

    # --- attributes ----------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        node = self.fs.inodes[fh] if fh in self.fs.inodes else self.fs.lookup(path)
        nlink = 2 + sum(1 for c in node.entries.values()
                        if self.fs.inodes[c].is_dir) if node.is_dir else 1
        return {"st_mode": node.mode, "st_ino": node.ino, "st_nlink": nlink,
                "st_size": 4096 if node.is_dir else node.size,
                "st_uid": os.getuid(), "st_gid": os.getgid(),
                "st_mtime": node.mtime, "st_ctime": node.ctime, "st_atime": node.mtime,
                "st_blocks": (node.size + 511) // 512, "st_blksize": 4096}

    def access(self, path: str, amode: int) -> int:
        self.fs.lookup(path)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        node = self.fs.lookup(path)
        node.mode = stat.S_IFMT(node.mode) | (mode & 0o7777)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        return 0

    def utimens(self, path: str, times: tuple[float, float] | None = None) -> int:
        node = self.fs.lookup(path)
        node.mtime = times[1] if times else time.time()
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 24, "f_bfree": 1 << 23,
                "f_bavail": 1 << 23, "f_files": 1 << 20, "f_ffree": 1 << 19,
                "f_namemax": 255}

    # --- names ---------------------------------------------------------------------

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return self.fs.create(path, mode).ino

    def mkdir(self, path: str, mode: int) -> int:
        self.fs.mkdir(path, mode)
        return 0

    def unlink(self, path: str) -> int:
        self.fs.unlink(path)
        return 0

    def rmdir(self, path: str) -> int:
        self.fs.rmdir(path)
        return 0

    def rename(self, old: str, new: str) -> int:
        self.fs.rename(old, new)
        return 0

    def opendir(self, path: str) -> int:
        node = self.fs.lookup(path)
        if not node.is_dir:
            raise FsError(errno.ENOTDIR, path)
        return node.ino

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *self.fs.listdir(fh if fh in self.fs.inodes
                                            else self.fs.lookup(path).ino)]

    def releasedir(self, path: str, fh: int) -> int:
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        self.fs.fsyncdir(fh if fh in self.fs.inodes else self.fs.lookup(path).ino)
        return 0

    # --- data ----------------------------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        node = self.fs.lookup(path)
        if node.is_dir:
            raise FsError(errno.EISDIR, path)
        if flags & os.O_TRUNC:
            self.fs.truncate(node.ino, 0)
        return node.ino

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self.fs.read(fh, offset, size)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return self.fs.write(fh, offset, data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        ino = fh if fh in self.fs.inodes else self.fs.lookup(path).ino
        self.fs.truncate(ino, length)
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self.fs.fsync(fh)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def release(self, path: str, fh: int) -> int:
        return 0
