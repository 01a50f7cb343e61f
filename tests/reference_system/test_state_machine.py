"""Property tests of the queue rules (fencing, idempotency, expiry) and the
key-value map, on the state machine alone."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reference_system.leases import LeaseTracker
from reference_system.messages import SLOT_STRIDE
from reference_system.state_machine import WorkQueueMachine

ITEM_IDS = ["a", "b", "c"]


def commands() -> st.SearchStrategy[dict[str, Any]]:
    item = st.sampled_from(ITEM_IDS)
    token = st.integers(0, 40).map(lambda n: n * SLOT_STRIDE)
    rid = st.one_of(st.none(), st.sampled_from([f"r{i}" for i in range(12)]))
    return st.one_of(
        st.builds(lambda i, r: {"op": "enqueue", "id": i, "payload": i, "rid": r}, item, rid),
        st.builds(lambda w, r: {"op": "claim", "worker": w, "rid": r}, st.sampled_from("xy"), rid),
        st.builds(lambda i, t, r: {"op": "renew", "id": i, "token": t, "rid": r}, item, token, rid),
        st.builds(
            lambda i, t, r: {"op": "complete", "id": i, "token": t, "result": t, "rid": r},
            item,
            token,
            rid,
        ),
        st.builds(lambda i, t, r: {"op": "fail", "id": i, "token": t, "rid": r}, item, token, rid),
        st.builds(lambda i, t: {"op": "expire", "id": i, "token": t}, item, token),
        st.builds(
            lambda k, v, r: {"op": "write", "key": k, "value": v, "rid": r},
            st.sampled_from("kl"),
            st.integers(0, 3),
            rid,
        ),
        st.builds(
            lambda k, f, t, r: {"op": "cas", "key": k, "from": f, "to": t, "rid": r},
            st.sampled_from("kl"),
            st.one_of(st.none(), st.integers(0, 3)),
            st.integers(0, 3),
            rid,
        ),
        st.builds(lambda k: {"op": "read", "key": k}, st.sampled_from("kl")),
    )


def run(
    cmds: list[dict[str, Any]], m: WorkQueueMachine | None = None
) -> tuple[WorkQueueMachine, list[Any]]:
    m = m or WorkQueueMachine(max_attempts=3)
    out = []
    for n, c in enumerate(cmds, start=1):
        out.append(m.apply(c, n * SLOT_STRIDE))
    return m, out


@settings(max_examples=300, deadline=None)
@given(st.lists(commands(), max_size=60))
def test_fencing_tokens_increase_and_one_completion_per_item(cmds: list[dict[str, Any]]) -> None:
    m = WorkQueueMachine(max_attempts=3)
    last_token = 0
    completed: dict[str, int] = {}
    seen_rids: set[str] = set()
    for n, c in enumerate(cmds, start=1):
        before = m.item(c.get("id", "")) if c["op"] != "claim" else None
        replay = c.get("rid") in seen_rids
        res = m.apply(c, n * SLOT_STRIDE)
        if c.get("rid") is not None:
            seen_rids.add(c["rid"])
        if replay:
            continue
        if c["op"] == "claim" and res["item"] is not None:
            assert res["item"]["token"] > last_token
            last_token = res["item"]["token"]
            assert (m.item(res["item"]["id"]) or {}).get("state") == "processing"
        if c["op"] in {"complete", "renew", "fail", "expire"} and "ok" in res:
            assert before is not None and before["token"] == c["token"]
        if c["op"] == "complete" and "ok" in res and not res.get("repeat"):
            assert c["id"] not in completed, "an item completed twice"
            completed[c["id"]] = c["token"]
        if c["op"] == "complete" and before is not None and before["token"] != c["token"]:
            assert res.get("error") == "stale"
    for it in m.items.values():
        assert it["state"] in {"queued", "processing", "completed", "dead"}
        assert it["attempts"] <= 3
        assert (it["state"] == "completed") == (it["id"] in completed)


@settings(max_examples=300, deadline=None)
@given(st.lists(commands(), max_size=40), st.data())
def test_a_retried_request_returns_the_first_result_and_changes_nothing(
    cmds: list[dict[str, Any]], data: st.DataObject
) -> None:
    m, results = run(cmds)
    with_rid = [
        (c, r) for c, r in zip(cmds, results, strict=True) if c.get("rid") and c["op"] != "read"
    ]
    if not with_rid:
        return
    c, _ = data.draw(st.sampled_from(with_rid))
    first = next(r for cc, r in zip(cmds, results, strict=True) if cc.get("rid") == c["rid"])
    before = m.snapshot()
    assert m.apply(c, 10_000 * SLOT_STRIDE) == first
    assert m.snapshot() == before


@settings(max_examples=200, deadline=None)
@given(st.lists(commands(), max_size=60), st.integers(0, 60))
def test_deterministic_and_snapshot_restore_is_transparent(
    cmds: list[dict[str, Any]], cut: int
) -> None:
    a, ra = run(cmds)
    b, _ = run(cmds[:cut])
    c = WorkQueueMachine(max_attempts=3)
    c.restore(json.loads(json.dumps(b.snapshot())))
    rc = [c.apply(cmd, n * SLOT_STRIDE) for n, cmd in enumerate(cmds, start=1) if n > cut]
    assert c.snapshot() == a.snapshot()
    assert rc == ra[cut:]


@settings(max_examples=100, deadline=None)
@given(st.lists(commands(), max_size=40), st.integers(0, 40))
def test_contents_digest_is_equal_for_equal_histories_and_survives_a_snapshot(
    cmds: list[dict[str, Any]], cut: int
) -> None:
    a, _ = run(cmds)
    b, _ = run(cmds[:cut])
    c = WorkQueueMachine(max_attempts=3)
    c.restore(b.snapshot())
    for n, cmd in enumerate(cmds, start=1):
        if n > cut:
            c.apply(cmd, n * SLOT_STRIDE)
    assert c.contents() == a.contents()
    assert a.contents()["kv"] == a.kv and a.contents()["items"] == a.items


def test_contents_digest_differs_when_one_item_differs() -> None:
    cmds = [{"op": "enqueue", "id": "a", "payload": 1}, {"op": "write", "key": "k", "value": 1}]
    a, _ = run(cmds)
    b, _ = run(cmds)
    b.items["a"]["payload"] = 2
    assert a.contents()["digest"] != b.contents()["digest"]
    b, _ = run(cmds)
    b.results["only-here"] = {"ok": True}  # not in the dump, but replicated state
    assert a.contents()["digest"] != b.contents()["digest"]
    assert {k: v for k, v in a.contents().items() if k != "digest"} == {
        k: v for k, v in b.contents().items() if k != "digest"
    }


def test_local_clock_bug_makes_replicas_of_one_log_differ(monkeypatch: Any) -> None:
    import reference_system.state_machine as sm

    cmds = [
        {"op": "enqueue", "id": "a", "payload": 1, "ts": 5},
        {"op": "claim", "worker": "w", "ts": 6},
    ]
    correct = [run(cmds)[0] for _ in range(2)]
    assert correct[0].contents() == correct[1].contents()
    assert correct[0].items["a"]["updated_ms"] == 6  # the leader's stamp, on every replica
    buggy = []
    for now_s in (100.0, 100.5):  # two replicas applying the same log half a second apart
        monkeypatch.setattr(sm.time, "time", lambda now_s=now_s: now_s)
        m = WorkQueueMachine(max_attempts=3, bugs=frozenset({"local_clock"}))
        buggy.append(run(cmds, m)[0])
    assert buggy[0].items["a"]["updated_ms"] == 100_000
    assert buggy[0].contents()["digest"] != buggy[1].contents()["digest"]


def test_lifecycle_claim_complete_repeat_and_stale() -> None:
    m = WorkQueueMachine(max_attempts=2)
    assert m.apply({"op": "enqueue", "id": "w", "payload": 1}, 1024) == {"ok": True, "id": "w"}
    r = m.apply({"op": "claim", "worker": "x"}, 2048)
    assert r["item"]["token"] == 2048 and r["item"]["attempts"] == 1
    assert m.apply({"op": "expire", "id": "w", "token": 2048}, 3072) == {
        "ok": True,
        "state": "queued",
    }
    r2 = m.apply({"op": "claim", "worker": "y"}, 4096)
    assert r2["item"]["token"] == 4096
    assert (
        m.apply({"op": "complete", "id": "w", "token": 2048, "result": "late"}, 5120)["error"]
        == "stale"
    )
    assert m.apply({"op": "renew", "id": "w", "token": 2048}, 5121)["error"] == "stale"
    ok = m.apply({"op": "complete", "id": "w", "token": 4096, "result": "R"}, 6144)
    assert ok == {"ok": True, "result": "R"}
    again = m.apply({"op": "complete", "id": "w", "token": 4096, "result": "other"}, 7168)
    assert again == {"ok": True, "result": "R", "repeat": True}
    assert (m.item("w") or {}).get("state") == "completed"


def test_dead_letter_after_max_attempts() -> None:
    m = WorkQueueMachine(max_attempts=2)
    m.apply({"op": "enqueue", "id": "w"}, 1)
    t1 = m.apply({"op": "claim", "worker": "x"}, 2)["item"]["token"]
    assert m.apply({"op": "fail", "id": "w", "token": t1}, 3) == {"ok": True, "state": "queued"}
    t2 = m.apply({"op": "claim", "worker": "x"}, 4)["item"]["token"]
    assert m.apply({"op": "fail", "id": "w", "token": t2}, 5) == {"ok": True, "state": "dead"}
    assert m.apply({"op": "claim", "worker": "x"}, 6) == {"ok": True, "item": None}


def test_enqueue_without_id_assigns_a_unique_one_and_duplicates_are_refused() -> None:
    m = WorkQueueMachine()
    a = m.apply({"op": "enqueue", "payload": 1}, 1024)
    b = m.apply({"op": "enqueue", "payload": 2}, 1025)
    assert a["id"] != b["id"]
    assert m.apply({"op": "enqueue", "id": a["id"]}, 2048) == {"error": "exists", "id": a["id"]}


def test_kv_read_write_cas() -> None:
    m = WorkQueueMachine()
    assert m.apply({"op": "read", "key": "k"}, 1) == {"ok": True, "value": None}
    assert m.apply({"op": "cas", "key": "k", "from": None, "to": 1}, 2) == {"ok": True}
    assert m.apply({"op": "cas", "key": "k", "from": 0, "to": 2}, 3) == {
        "error": "mismatch",
        "value": 1,
    }
    assert m.apply({"op": "write", "key": "k", "value": 5}, 4) == {"ok": True}
    assert m.apply({"op": "read", "key": "k"}, 5) == {"ok": True, "value": 5}


def test_malformed_commands_are_refused_not_raised() -> None:
    m = WorkQueueMachine()
    for bad in [
        None,
        3,
        {},
        {"op": "nope"},
        {"op": "claim"},
        {"op": "renew", "id": 1, "token": "x"},
        {"op": "write", "key": 1, "value": 2},
        {"op": "_current"},
        {"op": "complete", "id": "z"},
    ]:
        assert m.apply(bad, 1)["error"] in {"bad_command", "unknown"}


def test_expire_with_an_outdated_renewal_count_is_refused() -> None:
    m = WorkQueueMachine()
    m.apply({"op": "enqueue", "id": "w"}, 1)
    t = m.apply({"op": "claim", "worker": "x"}, 2)["item"]["token"]
    m.apply({"op": "renew", "id": "w", "token": t}, 3)
    assert m.apply({"op": "expire", "id": "w", "token": t, "renewals": 0}, 4)["error"] == "stale"
    assert m.apply({"op": "expire", "id": "w", "token": t, "renewals": 1}, 5)["ok"]


def test_stale_token_bug_accepts_a_second_completion() -> None:
    m = WorkQueueMachine(bugs=frozenset({"stale_token"}))
    m.apply({"op": "enqueue", "id": "w"}, 1)
    t1 = m.apply({"op": "claim", "worker": "x"}, 2)["item"]["token"]
    m.apply({"op": "expire", "id": "w", "token": t1}, 3)
    t2 = m.apply({"op": "claim", "worker": "y"}, 4)["item"]["token"]
    assert m.apply({"op": "complete", "id": "w", "token": t2, "result": 1}, 5)["ok"]
    assert m.apply({"op": "complete", "id": "w", "token": t1, "result": 2}, 6)["ok"]


# ---------------------------------------------------------------- lease tracker


def test_leases_expire_only_after_lease_time_on_this_clock_and_in_office() -> None:
    t = LeaseTracker(lease_ms=1000)
    t.observe({"a": (5, 0)}, now_ms=100)
    assert t.due(now_ms=1099, leader_since_ms=0) == []
    assert t.due(now_ms=1100, leader_since_ms=0) == [("a", 5, 0)]
    # a leader elected at 900 must wait until it has led for a full lease
    assert t.due(now_ms=1100, leader_since_ms=900) == []
    assert t.due(now_ms=1900, leader_since_ms=900) == [("a", 5, 0)]
    # a renewal restarts the clock
    t.observe({"a": (5, 1)}, now_ms=1900)
    assert t.due(now_ms=2000, leader_since_ms=0) == []
    t.observe({}, now_ms=2000)
    assert t.due(now_ms=9999, leader_since_ms=0) == []


@given(st.lists(st.tuples(st.integers(0, 5000), st.booleans()), max_size=20), st.integers(0, 5000))
def test_never_due_before_the_lease_has_run_since_observed(
    events: list[tuple[int, bool]], leader_since: int
) -> None:
    t = LeaseTracker(lease_ms=1000)
    now = 0
    renewals = 0
    generation_seen: int | None = None
    for dt, renew in events:
        now += dt
        if renew:
            renewals += 1
            generation_seen = None
        if generation_seen is None:
            generation_seen = now
        t.observe({"a": (1, renewals)}, now)
        for _item, _tok, ren in t.due(now, leader_since):
            assert ren == renewals
            assert now - leader_since >= 1000
            assert now - generation_seen >= 1000


def test_expire_early_bug_expires_inherited_leases_at_once() -> None:
    t = LeaseTracker(lease_ms=1000, bugs=frozenset({"expire_early"}))
    t.observe({"a": (5, 0)}, now_ms=100)
    assert t.due(now_ms=200, leader_since_ms=150) == [("a", 5, 0)]


def test_request_id_table_is_bounded_by_entries_and_by_bytes() -> None:
    """A count alone did not bound memory: each claim's result carries its payload."""
    m = WorkQueueMachine(dedup_max=50, dedup_max_bytes=20_000)
    big = "x" * 1000
    position = 0
    for n in range(300):
        position += SLOT_STRIDE
        m.apply({"op": "enqueue", "id": f"i{n}", "payload": big, "rid": f"e{n}"}, position)
        position += SLOT_STRIDE
        m.apply({"op": "claim", "worker": "w", "rid": f"c{n}"}, position)
        assert len(m.results) <= 50 and m.results_bytes <= 20_000
        assert m.results_bytes == sum(
            len(rid) + len(json.dumps(r, separators=(",", ":"))) for rid, r in m.results.items()
        )
    # The newest answers survive; the oldest were dropped by size long before by count.
    assert "c299" in m.results and "e299" in m.results and "e0" not in m.results
    assert len(m.results) < 50
    # A result bigger than the whole budget is still kept for its own retry.
    m.apply({"op": "write", "key": "k", "value": 0, "rid": "w"}, position + SLOT_STRIDE)
    huge = "y" * 30_000
    m.apply({"op": "enqueue", "id": "huge", "payload": huge, "rid": "h"},
            position + 2 * SLOT_STRIDE)
    claimed = m.apply({"op": "claim", "worker": "w", "rid": "hc"}, position + 3 * SLOT_STRIDE)
    assert claimed["item"]["payload"] == huge
    assert list(m.results) == ["hc"] and m.results_bytes > 20_000
    again = m.apply({"op": "claim", "worker": "w", "rid": "hc"}, position + 4 * SLOT_STRIDE)
    assert again == claimed


@settings(max_examples=200, deadline=None)
@given(
    st.lists(commands(), max_size=60),
    st.integers(0, 60),
    st.integers(1, 6),
    st.integers(1, 400),
)
def test_bounded_table_evicts_alike_on_every_replica_and_through_snapshots(
    cmds: list[dict[str, Any]], cut: int, dedup_max: int, dedup_max_bytes: int
) -> None:
    """Eviction depends on the commands alone, so replicas (and a restored one) agree."""

    def machine() -> WorkQueueMachine:
        return WorkQueueMachine(max_attempts=3, dedup_max=dedup_max,
                                dedup_max_bytes=dedup_max_bytes)

    a, b = machine(), machine()
    for n, cmd in enumerate(cmds, start=1):
        assert a.apply(cmd, n * SLOT_STRIDE) == b.apply(cmd, n * SLOT_STRIDE)
        assert len(a.results) <= dedup_max
        assert a.results_bytes <= dedup_max_bytes or len(a.results) == 1
    c = machine()
    for n, cmd in enumerate(cmds[:cut], start=1):
        c.apply(cmd, n * SLOT_STRIDE)
    d = machine()
    d.restore(c.snapshot())
    for n, cmd in enumerate(cmds, start=1):
        if n > cut:
            d.apply(cmd, n * SLOT_STRIDE)
    assert a.snapshot() == b.snapshot() == d.snapshot()
    assert d.results_bytes == a.results_bytes
