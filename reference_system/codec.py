"""JSON encoding of peer messages and disk records.

JSON because the node must be standard-library only and a human should be able
to read a log with ``jq``. Decoding validates shapes and raises
:class:`CodecError` on anything unexpected: a malformed frame from a peer drops
that connection, never the node.
"""

from __future__ import annotations

import json
from typing import Any

from reference_system.messages import (
    Accept,
    Accepted,
    AcceptRecord,
    Ballot,
    CatchupReply,
    CatchupRequest,
    Message,
    Nack,
    Prepare,
    PreVote,
    PreVoteReply,
    Promise,
    PromiseRecord,
    Record,
    Snapshot,
    Value,
)

__all__ = [
    "CodecError",
    "decode_message",
    "decode_record",
    "encode_message",
    "encode_record",
    "snapshot_from_json",
    "snapshot_to_json",
]


class CodecError(ValueError):
    """Bytes that do not decode to a message or record."""


def _ballot(x: Any) -> Ballot:
    if (
        isinstance(x, list)
        and len(x) == 2
        and all(isinstance(i, int) and not isinstance(i, bool) for i in x)
    ):
        return Ballot(x[0], x[1])
    raise CodecError(f"bad ballot {x!r}")


def _int(x: Any) -> int:
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    raise CodecError(f"expected an integer, got {x!r}")


def _value(x: Any) -> Value:
    if isinstance(x, list):
        return tuple(x)
    raise CodecError(f"bad value {x!r}")


def _entries(x: Any) -> tuple[tuple[int, Value], ...]:
    if not isinstance(x, list):
        raise CodecError("entries must be a list")
    out = []
    for e in x:
        if not isinstance(e, list) or len(e) != 2:
            raise CodecError(f"bad entry {e!r}")
        out.append((_int(e[0]), _value(e[1])))
    return tuple(out)


def snapshot_to_json(s: Snapshot) -> Any:
    """A snapshot as a JSON-able object."""
    return {"slot": s.slot, "state": s.state}


def snapshot_from_json(x: Any) -> Snapshot:
    """The inverse of :func:`snapshot_to_json`."""
    if not isinstance(x, dict) or "state" not in x:
        raise CodecError("bad snapshot")
    return Snapshot(_int(x.get("slot")), x["state"])


def encode_message(m: Message) -> dict[str, Any]:
    """A message as a JSON-able dict with a type tag ``t``."""
    if isinstance(m, Accept):
        return {
            "t": "accept",
            "src": m.src,
            "b": list(m.ballot),
            "e": [[s, list(v)] for s, v in m.entries],
            "c": m.commit,
        }
    if isinstance(m, Accepted):
        return {
            "t": "accepted",
            "src": m.src,
            "b": list(m.ballot),
            "s": list(m.slots),
            "a": m.applied,
        }
    if isinstance(m, Prepare):
        return {"t": "prepare", "src": m.src, "b": list(m.ballot), "f": m.from_slot}
    if isinstance(m, Promise):
        return {
            "t": "promise",
            "src": m.src,
            "b": list(m.ballot),
            "acc": [[s, list(b), list(v)] for s, b, v in m.accepted],
            "ct": m.compacted_through,
            "a": m.applied,
        }
    if isinstance(m, PreVote):
        return {"t": "prevote", "src": m.src, "b": list(m.ballot)}
    if isinstance(m, PreVoteReply):
        return {"t": "prevote_reply", "src": m.src, "b": list(m.ballot), "g": bool(m.granted)}
    if isinstance(m, Nack):
        return {"t": "nack", "src": m.src, "b": list(m.ballot), "p": list(m.promised)}
    if isinstance(m, CatchupRequest):
        return {"t": "catchup", "src": m.src, "f": m.from_slot}
    if isinstance(m, CatchupReply):
        return {
            "t": "catchup_reply",
            "src": m.src,
            "snap": snapshot_to_json(m.snapshot) if m.snapshot else None,
            "e": [[s, list(v)] for s, v in m.entries],
            "a": m.applied,
        }
    raise TypeError(f"not a message: {m!r}")


def decode_message(d: Any) -> Message:
    """The inverse of :func:`encode_message`; :class:`CodecError` if malformed."""
    try:
        t = d["t"]
        src = _int(d["src"])
        if t == "accept":
            return Accept(src, _ballot(d["b"]), _entries(d["e"]), _int(d["c"]))
        if t == "accepted":
            slots = d["s"]
            if not isinstance(slots, list):
                raise CodecError("slots must be a list")
            return Accepted(src, _ballot(d["b"]), tuple(_int(s) for s in slots), _int(d["a"]))
        if t == "prepare":
            return Prepare(src, _ballot(d["b"]), _int(d["f"]))
        if t == "promise":
            acc = d["acc"]
            if not isinstance(acc, list):
                raise CodecError("accepted must be a list")
            entries = []
            for e in acc:
                if not isinstance(e, list) or len(e) != 3:
                    raise CodecError(f"bad accepted entry {e!r}")
                entries.append((_int(e[0]), _ballot(e[1]), _value(e[2])))
            return Promise(src, _ballot(d["b"]), tuple(entries), _int(d["ct"]), _int(d["a"]))
        if t == "prevote":
            return PreVote(src, _ballot(d["b"]))
        if t == "prevote_reply":
            granted = d["g"]
            if not isinstance(granted, bool):
                raise CodecError("granted must be a boolean")
            return PreVoteReply(src, _ballot(d["b"]), granted)
        if t == "nack":
            return Nack(src, _ballot(d["b"]), _ballot(d["p"]))
        if t == "catchup":
            return CatchupRequest(src, _int(d["f"]))
        if t == "catchup_reply":
            snap = None if d["snap"] is None else snapshot_from_json(d["snap"])
            return CatchupReply(src, snap, _entries(d["e"]), _int(d["a"]))
    except (KeyError, TypeError) as e:
        raise CodecError(f"malformed message: {e}") from e
    raise CodecError(f"unknown message type {t!r}")


def encode_record(r: Record) -> bytes:
    """A disk record as compact JSON bytes."""
    if isinstance(r, PromiseRecord):
        obj: Any = ["p", list(r.ballot)]
    else:
        obj = ["a", r.slot, list(r.ballot), list(r.value)]
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_record(data: bytes) -> Record:
    """The inverse of :func:`encode_record`."""
    try:
        obj = json.loads(data)
        if obj[0] == "p":
            return PromiseRecord(_ballot(obj[1]))
        if obj[0] == "a":
            return AcceptRecord(_int(obj[1]), _ballot(obj[2]), _value(obj[3]))
    except (ValueError, IndexError, TypeError, KeyError) as e:
        raise CodecError(f"malformed record: {e}") from e
    raise CodecError(f"unknown record {obj!r}")
