"""The lose-unsynced layer: a FUSE file system that keeps writes in memory until fsync.

:mod:`~harness.lazyfs.model` holds the semantics (what a crash leaves),
:mod:`~harness.lazyfs.ops` the FUSE adapter, :mod:`~harness.lazyfs.server`
the layer's process and :mod:`~harness.lazyfs.mount` the harness's handle on
one mount. The fault kind ``lose-unsynced`` kills a node, tells its layer to
drop what was not fsynced, and restarts it.
"""

from harness.lazyfs.model import CrashReport, LazyFS
from harness.lazyfs.mount import LazyFSError, LazyMount, available

__all__ = ["CrashReport", "LazyFS", "LazyFSError", "LazyMount", "available"]
