"""The write-ahead log and snapshot files: round trips, torn tails, corruption,
fsync failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_system.codec import decode_message, encode_message
from reference_system.messages import (
    Accept,
    Accepted,
    AcceptRecord,
    Ballot,
    CatchupReply,
    CatchupRequest,
    Nack,
    Prepare,
    PreVote,
    PreVoteReply,
    Promise,
    PromiseRecord,
    Snapshot,
)
from reference_system.storage import CorruptLog, Storage, StorageFailed, frame, scan

RECORDS = [
    PromiseRecord(Ballot(1, 2)),
    AcceptRecord(1, Ballot(1, 2), ({"op": "write", "k": "x"}, "b")),
    AcceptRecord(2, Ballot(1, 2), ()),
]


def test_round_trip_and_group_commit(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    assert s.recover() == (None, [])
    s.append(RECORDS[:2])
    s.append(RECORDS[2:])
    s.sync()
    assert s.fsyncs == 1
    s.close()
    assert Storage(tmp_path).recover() == (None, RECORDS)


@pytest.mark.parametrize("cut", [1, 4, 8, 9, 15])
def test_torn_tail_is_truncated(tmp_path: Path, cut: int) -> None:
    s = Storage(tmp_path)
    s.recover()
    s.append(RECORDS)
    s.sync()
    s.close()
    wal = tmp_path / "wal.log"
    size = wal.stat().st_size
    last = len(frame(b'["a",2,[1,2],[]]'))
    with open(wal, "r+b") as f:
        f.truncate(size - last + cut)
    s2 = Storage(tmp_path)
    assert s2.recover() == (None, RECORDS[:2])
    assert wal.stat().st_size == size - last  # truncated to the intact prefix
    s2.append([AcceptRecord(3, Ballot(1, 2), ("c",))])
    s2.sync()
    s2.close()
    assert Storage(tmp_path).recover()[1] == [*RECORDS[:2], AcceptRecord(3, Ballot(1, 2), ("c",))]


def test_garbled_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    s.recover()
    s.append(RECORDS)
    s.sync()
    s.close()
    wal = tmp_path / "wal.log"
    data = bytearray(wal.read_bytes())
    data[-2] ^= 0xFF
    wal.write_bytes(bytes(data))
    assert Storage(tmp_path).recover()[1] == RECORDS[:2]


def test_corruption_before_the_tail_refuses_to_start(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    s.recover()
    s.append(RECORDS)
    s.sync()
    s.close()
    wal = tmp_path / "wal.log"
    data = bytearray(wal.read_bytes())
    data[10] ^= 0xFF  # inside the first record's payload
    wal.write_bytes(bytes(data))
    with pytest.raises(CorruptLog):
        Storage(tmp_path).recover()


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(st.binary(min_size=1, max_size=40), max_size=8),
       garbage=st.binary(max_size=30))
def test_scan_returns_every_intact_record_before_a_torn_tail(
    payloads: list[bytes], garbage: bytes
) -> None:
    data = b"".join(frame(p) for p in payloads)
    try:
        got, good = scan(data + garbage)
    except CorruptLog:
        return  # garbage that looks like a complete bad record followed by more
    assert got[: len(payloads)] == payloads
    assert good >= len(data)


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(st.binary(min_size=1, max_size=40), max_size=8),
       zeros=st.integers(1, 300), cut=st.integers(0, 60),
       more=st.binary(min_size=1, max_size=40).filter(lambda b: b[-1] != 0))
def test_a_zero_filled_tail_is_torn_but_zeros_before_a_record_are_corruption(
    payloads: list[bytes], zeros: int, cut: int, more: bytes
) -> None:
    """What a failed fsync or a crash under delayed allocation leaves: the file's size
    grew but its last writes read as zeros, maybe after part of a record. Recovery
    keeps every record before them; records written after such a hole (a node that
    went on after its fsync failed) are corruption, never silently dropped."""
    data = b"".join(frame(p) for p in payloads)
    # part of one more record (its last byte is not zero, so zeros cannot complete it)
    partial = frame(more)[: min(cut, len(frame(more)) - 1)]
    assert scan(data + partial + bytes(zeros)) == (payloads, len(data))
    with pytest.raises(CorruptLog):
        scan(data + bytes(zeros + 8) + frame(more))


def test_an_empty_record_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="empty"):
        frame(b"")


def test_snapshot_is_atomic_and_compacts_the_log(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    s.recover()
    s.append(RECORDS)
    s.sync()
    snap = Snapshot(1, {"items": {"a": 1}})
    s.install_snapshot(snap, [PromiseRecord(Ballot(1, 2)), RECORDS[2]])
    s.append([AcceptRecord(3, Ballot(1, 2), ("c",))])
    s.sync()
    s.close()
    assert not (tmp_path / "snapshot.json.tmp").exists()
    got_snap, recs = Storage(tmp_path).recover()
    assert got_snap == snap
    assert recs == [PromiseRecord(Ballot(1, 2)), RECORDS[2], AcceptRecord(3, Ballot(1, 2), ("c",))]


def test_a_leftover_tmp_snapshot_is_ignored(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    s.recover()
    s.install_snapshot(Snapshot(4, [1]), [])
    s.close()
    (tmp_path / "snapshot.json.tmp").write_bytes(b"half a snap")
    assert Storage(tmp_path).recover()[0] == Snapshot(4, [1])


def test_fsync_failure_is_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Storage(tmp_path)
    s.recover()
    s.append(RECORDS)

    def broken(fd: int) -> None:
        raise OSError(5, "EIO")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(StorageFailed):
        s.sync()
    monkeypatch.undo()
    with pytest.raises(StorageFailed):
        s.append(RECORDS)  # no retry after a failed fsync
    with pytest.raises(StorageFailed):
        s.sync()
    s.close()


@pytest.mark.parametrize(
    "msg",
    [
        Prepare(1, Ballot(2, 1), 5),
        PreVote(2, Ballot(3, 2)),
        PreVoteReply(3, Ballot(3, 2), True),
        Promise(2, Ballot(2, 1), ((5, Ballot(1, 3), ("x", {"a": 1})),), 4, 3),
        Nack(3, Ballot(1, 1), Ballot(2, 2)),
        Accept(1, Ballot(2, 1), ((6, ()), (7, ("y",))), 5),
        Accepted(2, Ballot(2, 1), (6, 7), 5),
        CatchupRequest(3, 9),
        CatchupReply(1, Snapshot(8, {"k": [1, 2]}), ((9, ("z",)),), 9),
        CatchupReply(1, None, (), 9),
    ],
)
def test_messages_round_trip_through_json(msg: object) -> None:
    import json

    assert decode_message(json.loads(json.dumps(encode_message(msg)))) == msg  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"t": "accept"},
        {"t": "accept", "src": 1, "b": [1], "e": [], "c": 0},
        {"t": "nope", "src": 1},
        {"t": "accepted", "src": 1, "b": [1, 1], "s": "x", "a": 0},
        [1, 2],
        None,
        {"t": "prepare", "src": True, "b": [1, 1], "f": 1},
    ],
)
def test_malformed_messages_raise_codec_error(bad: object) -> None:
    from reference_system.codec import CodecError

    with pytest.raises(CodecError):
        decode_message(bad)
