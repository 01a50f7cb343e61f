"""The layer's semantics against a plain model: random writes, truncations, fsyncs,
renames, unlinks and directory fsyncs, then a crash; what survives is exactly the
last fsynced content under the last fsynced names (drop), or that plus a prefix of
the unsynced writes, the last one possibly cut (tear). Disk errors come and go among
the steps: while they are on, every fsync fails with EIO and loses the file's unsynced
writes (the file keeps its size; their bytes read as the disk holds them), directory
fsyncs fail, and in mode ``all`` writes fail too."""

from __future__ import annotations

import errno
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.lazyfs.model import FsError, LazyFS

NAMES = ["a", "b", "c"]

op_st = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(NAMES)),
    st.tuples(st.just("write"), st.sampled_from(NAMES), st.integers(0, 40),
              st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("append"), st.sampled_from(NAMES), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("truncate"), st.sampled_from(NAMES), st.integers(0, 30)),
    st.tuples(st.just("fsync"), st.sampled_from(NAMES)),
    st.tuples(st.just("fsyncdir"),),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("unlink"), st.sampled_from(NAMES)),
    st.tuples(st.just("crash"), st.integers(0, 2**16)),
    st.tuples(st.just("fail"), st.sampled_from(["none", "fsync", "all"])),
)


def _apply(content: bytes, ops: list[tuple[int, bytes | None]]) -> bytes:
    buf = bytearray(content)
    for at, data in ops:
        if data is None:
            del buf[at:]
            buf.extend(bytes(at - len(buf)))
        else:
            if len(buf) < at:
                buf.extend(bytes(at - len(buf)))
            buf[at : at + len(data)] = data
    return bytes(buf)


class Model:
    """Files as whole byte strings: current and durable, plus the unsynced ops."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.durable_names: dict[str, int] = {}
        self.durable: dict[int, bytes] = {}
        self.pending: dict[int, list[tuple[int, bytes | None]]] = {}
        self.next = 100

    def current(self, ino: int) -> bytes:
        return _apply(self.durable[ino], self.pending[ino])


def _run(ops: list[tuple], tmp: Path, mode: str) -> None:
    fs = LazyFS(tmp)
    m = Model()
    ino_of: dict[int, int] = {}  # model inode -> fs inode
    failing = "none"
    failed = lost = 0
    for op in ops:
        kind = op[0]
        if kind == "fail":
            assert fs.fail(op[1]) == {"failed_ops": failed, "lost_bytes": lost,
                                      "was_failing": int(failing != "none")}
            failing, failed, lost = op[1], 0, 0
            continue
        if failing != "none" and kind in ("write", "append", "truncate", "fsync",
                                          "fsyncdir") and (kind == "fsyncdir"
                                                           or op[1] in m.names):
            if kind == "fsyncdir":
                with pytest.raises(FsError) as e:
                    fs.fsyncdir(1)
                assert e.value.errno == errno.EIO
                failed += 1
                continue
            mi = m.names[op[1]]
            ino = fs.lookup("/" + op[1]).ino
            if kind == "fsync":  # fails, and what it should have made durable is gone:
                with pytest.raises(FsError) as e:  # the size stays, the bytes are the disk's
                    fs.fsync(ino)
                assert e.value.errno == errno.EIO
                failed += 1
                lost += sum(len(d) for _, d in m.pending[mi] if d is not None)
                size = len(m.current(mi))
                cuts = [at for at, d in m.pending[mi] if d is None]
                kept = m.durable[mi][: min(cuts)] if cuts else m.durable[mi]
                m.pending[mi] = [(0, None), (0, kept.ljust(size, b"\0"))]
                continue
            if failing == "all" and kind in ("write", "append"):
                with pytest.raises(FsError) as e:
                    fs.write(ino, op[2] if kind == "write" else 0, op[-1])
                assert e.value.errno == errno.EIO
                failed += 1
                continue
        if kind == "create":
            node = fs.create("/" + op[1])
            if op[1] in m.names:
                m.pending[m.names[op[1]]].append((0, None))
            else:
                m.names[op[1]] = m.next
                m.durable[m.next] = b""
                m.pending[m.next] = []
                ino_of[m.next] = node.ino
                m.next += 1
            assert ino_of[m.names[op[1]]] == node.ino
        elif kind in ("write", "append", "truncate", "fsync"):
            name = op[1]
            if name not in m.names:
                with pytest.raises(FsError):
                    fs.lookup("/" + name)
                continue
            mi = m.names[name]
            ino = fs.lookup("/" + name).ino
            if kind == "write":
                fs.write(ino, op[2], op[3])
                m.pending[mi].append((op[2], op[3]))
            elif kind == "append":
                at = len(m.current(mi))
                fs.write(ino, at, op[2])
                m.pending[mi].append((at, op[2]))
            elif kind == "truncate":
                fs.truncate(ino, op[2])
                m.pending[mi].append((op[2], None))
            else:
                fs.fsync(ino)
                m.durable[mi] = m.current(mi)
                m.pending[mi] = []
        elif kind == "fsyncdir":
            fs.fsyncdir(1)
            m.durable_names = dict(m.names)
        elif kind == "rename":
            src, dst = op[1], op[2]
            if src not in m.names:
                with pytest.raises(FsError) as e:
                    fs.rename("/" + src, "/" + dst)
                assert e.value.errno == errno.ENOENT
                continue
            fs.rename("/" + src, "/" + dst)
            m.names[dst] = m.names.pop(src)
        elif kind == "unlink":
            if op[1] not in m.names:
                continue
            fs.unlink("/" + op[1])
            del m.names[op[1]]
        elif kind == "crash":
            before = {mi: (m.durable[mi], list(m.pending[mi])) for mi in m.pending}
            fs.crash(mode, random.Random(op[1]))  # type: ignore[arg-type]
            m.names = dict(m.durable_names)
            live = set(m.names.values())
            for mi in list(m.pending):
                if mi not in live:
                    del m.pending[mi], m.durable[mi]
                    continue
                ino = ino_of[mi]
                got = fs.read(ino, 0, 1 << 20)
                durable, pending = before[mi]
                if mode == "drop":
                    assert got == durable
                else:
                    assert got in _torn_outcomes(durable, pending)
                m.durable[mi] = got
                m.pending[mi] = []
        # after every step the visible state matches the model
        assert sorted(fs.listdir(1)) == sorted(m.names)
        for name, mi in m.names.items():
            node = fs.lookup("/" + name)
            want = m.current(mi)
            assert node.size == len(want)
            assert fs.read(node.ino, 0, 1 << 20) == want
            assert fs.read(node.ino, 3, 5) == want[3:8]


def _torn_outcomes(durable: bytes, pending: list[tuple[int, bytes | None]]) -> set[bytes]:
    out = set()
    for k in range(len(pending) + 1):
        out.add(_apply(durable, pending[:k]))
        if k < len(pending):
            at, data = pending[k]
            if data is not None:
                for cut in range(1, len(data)):
                    out.add(_apply(durable, [*pending[:k], (at, data[:cut])]))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(op_st, max_size=40))
def test_drop_keeps_exactly_the_synced_state(tmp_path_factory: pytest.TempPathFactory,
                                              ops: list[tuple]) -> None:
    _run(ops, tmp_path_factory.mktemp("disk"), "drop")


@settings(max_examples=100, deadline=None)
@given(st.lists(op_st, max_size=30))
def test_tear_keeps_a_prefix_of_the_unsynced_writes(tmp_path_factory: pytest.TempPathFactory,
                                                     ops: list[tuple]) -> None:
    _run(ops, tmp_path_factory.mktemp("disk"), "tear")


def test_created_file_needs_a_directory_fsync(tmp_path: Path) -> None:
    fs = LazyFS(tmp_path)
    node = fs.create("/wal")
    fs.write(node.ino, 0, b"record")
    fs.fsync(node.ino)
    report = fs.crash()
    assert fs.listdir(1) == []
    assert report.lost_names == 1
    assert not any(tmp_path.iterdir()), "the lost file's backing data is removed"


def test_rename_reverts_unless_the_directory_is_fsynced(tmp_path: Path) -> None:
    fs = LazyFS(tmp_path)
    old = fs.create("/snap")
    fs.write(old.ino, 0, b"old")
    fs.fsync(old.ino)
    fs.fsyncdir(1)
    new = fs.create("/snap.tmp")
    fs.write(new.ino, 0, b"new")
    fs.fsync(new.ino)
    fs.rename("/snap.tmp", "/snap")
    fs.crash()
    assert fs.listdir(1) == ["snap"]
    assert fs.read(fs.lookup("/snap").ino, 0, 10) == b"old"
    fs.rename("/snap", "/x")
    fs.fsyncdir(1)
    fs.crash()
    assert fs.listdir(1) == ["x"]


def test_subdirectories_keep_their_own_durable_names(tmp_path: Path) -> None:
    fs = LazyFS(tmp_path)
    fs.mkdir("/n1")
    fs.create("/n1/wal")
    fs.fsyncdir(fs.lookup("/n1").ino)
    fs.crash()  # n1 itself was never made durable in the root
    assert fs.listdir(1) == []
    fs.mkdir("/n1")
    fs.fsyncdir(1)
    fs.crash()
    assert fs.listdir(1) == ["n1"]
    assert fs.listdir(fs.lookup("/n1").ino) == []
