"""Durable storage of one replica: a write-ahead log and a snapshot file.

Log format: each record is ``length (4 bytes, big-endian) | crc32 (4 bytes) |
payload``. On recovery a record that runs past the end of the file, or the
*last* record with a bad checksum, is a torn tail (a crash in the middle of
an append): the file is truncated there. A bad checksum with valid data after
it is not a torn write but corruption of something that was acknowledged, so
recovery refuses (:class:`CorruptLog`) instead of silently forgetting a
promise. A damaged record followed only by zero bytes is a torn tail too: a
file system that extended the file but never wrote the data (a failed fsync
whose pages were dropped, a crash under delayed allocation) leaves zeros, and
eight zero bytes would otherwise read as an empty record with a valid
checksum (crc32 of nothing is 0), so no record is ever empty.

Group commit: :meth:`Storage.append` only writes; one :meth:`Storage.sync`
makes everything appended so far durable. An fsync error is fatal
(:class:`StorageFailed`): after a failed fsync the page cache can no longer be
trusted, so the node must stop rather than retry.

Snapshots are written atomically (tmp file, fsync, rename, fsync the
directory); after a snapshot the log is rewritten the same way holding only
the acceptor state above the snapshot, so the log does not grow without bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import time
import zlib
from collections.abc import Iterable
from pathlib import Path

from reference_system.codec import (
    CodecError,
    decode_record,
    encode_record,
    snapshot_from_json,
    snapshot_to_json,
)
from reference_system.messages import Record, Snapshot

__all__ = ["CorruptLog", "Storage", "StorageFailed", "frame", "scan"]

_HEADER = struct.Struct(">II")
MAX_RECORD_BYTES = 256 * 1024 * 1024
WAL_NAME = "wal.log"
SNAPSHOT_NAME = "snapshot.json"


class StorageFailed(RuntimeError):
    """A write or fsync failed: the node must stop."""


class CorruptLog(RuntimeError):
    """The log is damaged before its tail: refusing to guess."""


def frame(payload: bytes) -> bytes:
    """One log record on disk: length, CRC32, payload (never empty: see the module)."""
    if not payload:
        raise ValueError("a log record cannot be empty: it would read as a zeroed tail")
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def scan(data: bytes) -> tuple[list[bytes], int]:
    """The intact payloads in ``data`` and the length of the intact prefix.

    Raises :class:`CorruptLog` when a damaged record is followed by more data
    that is not itself just the torn remainder.
    """
    out: list[bytes] = []
    pos = 0
    n = len(data)
    while pos < n:
        if pos + _HEADER.size > n:
            break  # torn header
        length, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if length > MAX_RECORD_BYTES or end > n:
            break  # torn: the record runs past the end
        payload = data[pos + _HEADER.size : end]
        if length == 0 or zlib.crc32(payload) != crc:
            if end == n or not any(memoryview(data)[end:]):
                break  # the last record, partly written, or a zero-filled tail
            raise CorruptLog(f"bad checksum at offset {pos} with {n - end} bytes after it")
        out.append(payload)
        pos = end
    return out, pos


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Storage:
    """The log and snapshot of one replica in ``data_dir``."""

    def __init__(self, data_dir: str | os.PathLike[str], *,
                 bugs: frozenset[str] = frozenset()):
        self.dir = Path(data_dir)
        #: seeded bug ``no_fsync``: :meth:`sync` returns without fsyncing
        self._no_fsync = "no_fsync" in bugs
        #: the seeded bugs switched on (``retry_fsync``: :meth:`sync` retries a failed
        #: fsync until one succeeds and takes that as durable)
        self.bugs = bugs
        self.dir.mkdir(parents=True, exist_ok=True)
        self.wal_path = self.dir / WAL_NAME
        self.snapshot_path = self.dir / SNAPSHOT_NAME
        self._fd: int | None = None
        self._failed = False
        self.synced_bytes = 0
        self.fsyncs = 0

    # ------------------------------------------------------------ recovery

    def recover(self) -> tuple[Snapshot | None, list[Record]]:
        """Read the snapshot and the log, truncating a torn tail; open for append."""
        snapshot = self._read_snapshot()
        records: list[Record] = []
        if self.wal_path.exists():
            data = self.wal_path.read_bytes()
            payloads, good = scan(data)
            try:
                records = [decode_record(p) for p in payloads]
            except CodecError as e:
                raise CorruptLog(f"{self.wal_path}: {e}") from e
            if good < len(data):
                with open(self.wal_path, "r+b") as f:
                    f.truncate(good)
                    f.flush()
                    os.fsync(f.fileno())
        self._open()
        return snapshot, records

    def _read_snapshot(self) -> Snapshot | None:
        self.dir.joinpath(SNAPSHOT_NAME + ".tmp").unlink(missing_ok=True)
        if not self.snapshot_path.exists():
            return None
        payloads, _ = scan(self.snapshot_path.read_bytes())
        if len(payloads) != 1:
            raise CorruptLog(f"{self.snapshot_path} is damaged")
        try:
            return snapshot_from_json(json.loads(payloads[0]))
        except (ValueError, CodecError) as e:
            raise CorruptLog(f"{self.snapshot_path}: {e}") from e

    def _open(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.wal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _fsync_dir(self.dir)

    # ------------------------------------------------------------ writing

    def append(self, records: Iterable[Record]) -> None:
        """Write records (not yet durable: call :meth:`sync`)."""
        data = b"".join(frame(encode_record(r)) for r in records)
        if not data:
            return
        self._check()
        assert self._fd is not None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as e:
            self._failed = True
            raise StorageFailed(f"write to {self.wal_path} failed: {e}") from e

    def sync(self) -> None:
        """Make everything appended durable (one fsync for the whole group)."""
        self._check()
        assert self._fd is not None
        if self._no_fsync:  # seeded bug: the caller acknowledges what the cache holds
            self.fsyncs += 1
            return
        try:
            os.fsync(self._fd)
        except OSError as e:
            if "retry_fsync" in self.bugs:  # seeded bug: PostgreSQL until 2018
                while True:  # a later fsync "succeeds": the failed pages were marked clean
                    time.sleep(0.05)
                    with contextlib.suppress(OSError):
                        os.fsync(self._fd)
                        self.fsyncs += 1
                        return
            self._failed = True
            raise StorageFailed(f"fsync of {self.wal_path} failed: {e}") from e
        self.fsyncs += 1

    def install_snapshot(self, snapshot: Snapshot, records: Iterable[Record]) -> None:
        """Write ``snapshot`` atomically, then replace the log by ``records``
        (the acceptor state above the snapshot)."""
        self._check()
        try:
            body = json.dumps(snapshot_to_json(snapshot), separators=(",", ":")).encode()
            _write_atomically(self.snapshot_path, frame(body))
            log = b"".join(frame(encode_record(r)) for r in records)
            _write_atomically(self.wal_path, log)
            self._open()
        except OSError as e:
            self._failed = True
            raise StorageFailed(f"snapshot in {self.dir} failed: {e}") from e

    def close(self) -> None:
        """Close the log file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _check(self) -> None:
        if self._failed:
            raise StorageFailed("storage failed earlier; the node must stop")
        if self._fd is None:
            raise StorageFailed("storage is not open (call recover first)")
