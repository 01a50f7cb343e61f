"""The layer mounted for real (FUSE), under the reference system's own storage code:
what was fsynced survives a crash, what was not is gone, and the seeded ``no_fsync``
bug loses records it reported as synced. One mount serves every test in the module
(mounting costs about half a second); each test uses its own subdirectory."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.lazyfs import LazyMount, available
from harness.lazyfs.mount import _mounted
from harness.pytest_plugin import require
from reference_system.messages import AcceptRecord, Ballot, PromiseRecord, Snapshot
from reference_system.storage import Storage

_dirs = itertools.count()


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LazyMount]:
    why = available()
    require(why is None, f"cannot mount the lose-unsynced layer: {why}")
    root = tmp_path_factory.mktemp("lazyfs")
    mount = LazyMount(root / "mnt", root / "disk", log=root / "layer.log")
    mount.start()
    try:
        yield mount
    finally:
        mount.stop()
    assert not _mounted(root / "mnt"), "stop() leaves no mount behind"


def _fresh_dir(layer: LazyMount) -> Path:
    """A new directory on the layer whose name is durable (the root fsynced)."""
    d = layer.mountpoint / f"d{next(_dirs)}"
    d.mkdir()
    fd = os.open(layer.mountpoint, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return d


def _records(n: int, start: int = 1) -> list[AcceptRecord]:
    return [AcceptRecord(i, Ballot(1, 2), ({"op": "write", "k": f"k{i}"}, f"r{i}"))
            for i in range(start, start + n)]


def test_synced_records_survive_and_unsynced_vanish(layer: LazyMount) -> None:
    d = _fresh_dir(layer)
    s = Storage(d)
    s.recover()
    synced: list[PromiseRecord | AcceptRecord] = [PromiseRecord(Ballot(3, 1)), *_records(5)]
    s.append(synced)
    s.sync()
    s.append(_records(4, start=6))  # written, never fsynced
    assert Storage(d).recover()[1] == [*synced, *_records(4, start=6)], "visible before"
    s.close()  # the process is gone; what it wrote is only in the layer's cache
    report = layer.crash()
    assert report["dropped_bytes"] > 0
    assert Storage(d).recover() == (None, synced)


def test_torn_tail_is_cut_by_recovery(layer: LazyMount) -> None:
    d = _fresh_dir(layer)
    s = Storage(d)
    s.recover()
    s.append(_records(3))
    s.sync()
    for r in _records(20, start=4):  # many writes: a torn crash keeps a prefix of them
        s.append([r])
    s.close()
    layer.crash(mode="tear", seed=7)
    _, got = Storage(d).recover()
    assert got[:3] == _records(3)
    assert got == _records(len(got)), "a prefix of the log, with no torn record"


def test_snapshot_made_durable_by_rename_and_directory_fsync(layer: LazyMount) -> None:
    d = _fresh_dir(layer)
    s = Storage(d)
    s.recover()
    snap = Snapshot(4, {"items": {"a": 1}})
    s.install_snapshot(snap, _records(2, start=5))
    s.close()
    layer.crash()
    assert Storage(d).recover() == (snap, _records(2, start=5))


def test_no_fsync_bug_loses_what_sync_acknowledged(layer: LazyMount) -> None:
    d = _fresh_dir(layer)
    s = Storage(d, bugs=frozenset({"no_fsync"}))
    s.recover()
    s.append(_records(3))
    s.sync()  # returns as if durable
    s.close()
    layer.crash()
    assert Storage(d).recover() == (None, []), "the 'synced' records were never fsynced"


def test_control_socket_refuses_bad_commands(layer: LazyMount) -> None:
    from harness.lazyfs import LazyFSError

    with pytest.raises(LazyFSError, match="unknown"):
        layer.command({"op": "format"})
    with pytest.raises(LazyFSError, match="crash mode"):
        layer.command({"op": "crash", "mode": "half"})
    assert layer.stats()["crashes"] >= 0


def test_gc_unmounts_and_removes_a_docker_runs_layer_left_behind() -> None:
    """A SIGKILLed harness leaves a Docker run's layer mounted on the host; gc of that
    run unmounts it, removes its folder, and the layer process ends with its mount."""
    import tempfile
    import uuid

    from harness.cluster.docker import _remove_layers

    why = available()
    require(why is None, f"cannot mount the lose-unsynced layer: {why}")
    run_id = f"gc-{uuid.uuid4().hex[:8]}"
    root = Path(tempfile.mkdtemp(prefix=f"harness-{run_id}-lazyfs-"))
    mount = LazyMount(root / "n1", root / ".disk" / "n1", log=root.parent / f"{run_id}.log")
    mount.start()
    try:
        (mount.mountpoint / "wal.log").write_bytes(b"x")
        errors: list[str] = []
        _remove_layers(run_id, errors)
        assert errors == [] and not root.exists() and not _mounted(mount.mountpoint)
        assert mount.proc is not None
        mount.proc.wait(timeout=10)
    finally:
        mount.stop()
        (root.parent / f"{run_id}.log").unlink(missing_ok=True)


def test_a_layer_deep_in_a_long_folder_still_takes_commands(tmp_path: Path) -> None:
    """A Unix socket's path has a limit (107 bytes on Linux); a run folder deep in a
    user's TMPDIR passed it and the layer could not start. Its control socket then goes
    to a short private folder, removed by stop()."""
    why = available()
    require(why is None, f"cannot mount the lose-unsynced layer: {why}")
    root = tmp_path / ("deep-" * 12) / "run"
    mount = LazyMount(root / "mnt", root / ".disk" / "n1", log=tmp_path / "layer.log")
    mount.start()
    try:
        assert len(os.fsencode(root / ".disk" / ".n1.sock")) > 107
        assert mount.stats()["fsyncs"] == 0
        short = mount.control.parent
        assert str(short).startswith("/tmp/lazyfs-")
    finally:
        mount.stop()
    assert not short.exists()
    assert not _mounted(root / "mnt")
