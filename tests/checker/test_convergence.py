"""The convergence checker on hand-built histories: equal replicas pass, a
differing one is named with the key that differs, and a node that could not be
read or never caught up is unknown, never invalid."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis import check_history, plan_checks, summarize
from harness.checker.convergence import (
    CATCH_UP,
    MAX_DIFFERENCES,
    REPLICA_STATE,
    REPLICAS,
    convergence,
)
from harness.history import History, Op
from harness.testing import fail, history, info, invoke, ok

ITEMS = {"a": {"state": "completed", "token": 2048}, "b": {"state": "queued", "token": 0}}


def state(node: str, *, applied: int = 10, kv: dict[str, Any] | None = None,
          items: dict[str, Any] | None = None, digest: str | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"node": node, "applied": applied,
                         "state": {"x": 1} if kv is None else kv,
                         "items": ITEMS if items is None else items}
    if digest is not None:
        s["digest"] = digest
    return s


def reads(*answers: dict[str, Any] | tuple[str, str]) -> list[Op]:
    """One invoke and completion per node: a dict is an ok read, (node, why) a fail."""
    ops: list[Op] = []
    for a in answers:
        node = a["node"] if isinstance(a, dict) else a[0]
        ops.append(invoke(REPLICAS, REPLICA_STATE, {"node": node}))
        if isinstance(a, dict):
            ops.append(ok(REPLICAS, REPLICA_STATE, a))
        else:
            ops.append(fail(REPLICAS, REPLICA_STATE, {"node": node}, error=a[1]))
    return ops


def client_ops() -> list[Op]:
    return [invoke(0, "write", ["x", 1]), ok(0, "write", ["x", 1]),
            invoke(1, "read", ["x", None]), ok(1, "read", ["x", 1])]


def test_equal_states_at_one_position_are_valid() -> None:
    h = history(*client_ops(), *reads(state("n1"), state("n2"), state("n3")))
    r = convergence(h)
    assert r.valid is True
    assert r.details["position"] == 10
    assert {n: d["status"] for n, d in r.details["nodes"].items()} == \
        {"n1": "same", "n2": "same", "n3": "same"}


def test_a_differing_item_is_flagged_with_its_node_and_key() -> None:
    bad = {**ITEMS, "b": {"state": "processing", "token": 3072}}
    h = history(*reads(state("n1"), state("n2", items=bad), state("n3")))
    r = convergence(h)
    assert r.valid is False
    assert r.details["anomalies"] == ["divergent-replicas"]
    assert r.details["nodes"]["n2"]["status"] == "differs"
    assert r.details["nodes"]["n2"]["compared_with"] == "n1"
    assert r.details["difference_count"] == {"n2": 1}
    (d,) = r.details["differences"]
    assert (d["node"], d["kind"], d["key"]) == ("n2", "items", "b")
    assert d["fields"] == {"state": ["queued", "processing"], "token": [0, 3072]}
    assert sorted(r.details["reference"]) == ["n1", "n3"]


def test_a_differing_key_missing_key_and_extra_item_are_each_listed() -> None:
    h = history(*reads(state("n1", kv={"x": 1, "y": 2}),
                       state("n2", kv={"x": 9}, items={**ITEMS, "c": {"state": "queued"}})))
    r = convergence(h)
    assert r.valid is False
    got = {(d["kind"], d["key"]): d for d in r.details["differences"]}
    assert got[("state", "x")]["reference"] == 1 and got[("state", "x")]["value"] == 9
    assert got[("state", "y")]["missing"] is True
    assert got[("items", "c")]["extra"] is True
    # two nodes, no majority: the first named is the reference, the other differs
    assert r.details["nodes"]["n2"]["status"] == "differs"


def test_an_unreadable_node_is_unknown_with_its_reason() -> None:
    h = history(*reads(state("n1"), state("n2"), ("n3", "connection refused")))
    r = convergence(h)
    assert r.valid == "unknown"
    assert r.details["nodes"]["n3"] == {"status": "unreadable", "reason": "connection refused"}
    assert "n3: connection refused" in r.details["reason"]


def test_no_node_readable_is_unknown_naming_each_not_a_crash() -> None:
    ops = reads(("n1", "connection refused"), ("n2", "connection refused"))
    ops.append(invoke(REPLICAS, REPLICA_STATE, {"node": "n3"}))
    r = convergence(history(*ops))
    assert r.valid == "unknown" and "error" not in r.details
    assert r.details["reason"] == ("no replica's state could be read: n1: connection refused; "
                                   "n2: connection refused; n3: never answered")
    assert {d["status"] for d in r.details["nodes"].values()} == {"unreadable"}


def test_a_node_never_read_to_completion_is_unknown() -> None:
    ops = reads(state("n1"), state("n2"))
    ops.append(invoke(REPLICAS, REPLICA_STATE, {"node": "n3"}))
    r = convergence(history(*ops))
    assert r.valid == "unknown"
    assert r.details["nodes"]["n3"]["reason"] == "never answered"


def test_a_node_behind_is_unknown_not_invalid_even_though_its_state_differs() -> None:
    h = history(*reads(state("n1"), state("n2"), state("n3", applied=7, kv={"x": 0})))
    r = convergence(h)
    assert r.valid == "unknown"
    assert r.details["nodes"]["n3"]["status"] == "behind"
    assert "position 7" in r.details["nodes"]["n3"]["reason"]
    assert r.details["differences"] == []


def test_a_single_node_at_the_top_position_is_not_called_converged() -> None:
    r = convergence(history(*reads(state("n1", applied=11), state("n2"), state("n3"))))
    assert r.valid == "unknown"
    assert r.details["nodes"]["n1"]["status"] == "uncompared"
    assert r.details["nodes"]["n2"]["status"] == "behind"


def test_equal_dumps_with_different_digests_differ_in_undumped_state() -> None:
    h = history(*reads(state("n1", digest="aaa"), state("n2", digest="aaa"),
                       state("n3", digest="bbb")))
    r = convergence(h)
    assert r.valid is False
    (d,) = r.details["differences"]
    assert (d["node"], d["kind"], d["reference"], d["value"]) == ("n3", "digest", "aaa", "bbb")


def test_the_listed_differences_are_bounded_but_all_counted() -> None:
    many = {f"k{i}": i for i in range(3 * MAX_DIFFERENCES)}
    h = history(*reads(state("n1", kv=many), state("n2", kv=many), state("n3", kv={})))
    r = convergence(h)
    assert r.valid is False
    assert len(r.details["differences"]) == MAX_DIFFERENCES
    assert r.details["difference_count"] == {"n3": 3 * MAX_DIFFERENCES}


def test_no_replica_reads_is_unknown_when_asked_for() -> None:
    r = convergence(history(*client_ops()))
    assert r.valid == "unknown"
    assert r.details["reason"] == "no replica states were recorded"


def test_planning_adds_convergence_only_when_replicas_were_read() -> None:
    plain = history(*client_ops())
    with_reads = history(*client_ops(), *reads(state("n1"), state("n2", kv={"x": 2})))
    assert "convergence" not in plan_checks(plain).checkers
    assert plan_checks(with_reads).checkers == ("linearizable", "convergence")
    # explicit checkers are taken as given
    assert plan_checks(with_reads, checkers=["stats"]).checkers == ("stats",)
    _, r = check_history(with_reads)
    subs = r.details["results"]
    assert subs["linearizable"].valid is True  # the replica ops are not client ops
    assert subs["convergence"].valid is False and r.valid is False
    assert summarize(subs["convergence"]) == "replicas differ: n2 (1 differences)"


def test_client_checkers_ignore_replica_reads() -> None:
    q = [invoke(0, "enqueue", {"id": "a"}), ok(0, "enqueue", {"id": "a"}),
         invoke(0, "drain", None), ok(0, "drain", [{"id": "a"}])]
    base: History = history(*q)
    mixed: History = history(*q, *reads(state("n1"), ("n2", "timeout")))
    for checkers in (["queue"], ["stats"], ["fencing"], ["lease"]):
        _, a = check_history(base, checkers=checkers)
        _, b = check_history(mixed, checkers=checkers)
        ra, rb = a.details["results"][checkers[0]], b.details["results"][checkers[0]]
        assert ra.valid == rb.valid
        strip = lambda d: {k: v for k, v in d.items() if k != "elapsed_s"}  # noqa: E731
        assert strip(ra.details) == strip(rb.details)


def waited(*answers: dict[str, Any], caught_up: bool, last: dict[str, int]) -> list[Op]:
    """Replica reads whose invocations carry the runner's wait record."""
    w = {"caught_up": caught_up, "waited_s": 10.0, "applied": last}
    ops: list[Op] = []
    for a in answers:
        ops.append(invoke(REPLICAS, REPLICA_STATE, {"node": a["node"], "wait": w}))
        ops.append(ok(REPLICAS, REPLICA_STATE, a))
    return ops


def test_a_replica_stuck_behind_after_the_wait_is_a_lagging_progress_finding() -> None:
    h = history(*waited(state("n1", applied=12), state("n2", applied=11), state("n3", applied=12),
                        caught_up=False, last={"n1": 12, "n2": 11, "n3": 12}))
    r = convergence(h)
    assert r.valid == "unknown"
    assert r.details["progress"] == ["lagging-replica"]
    assert r.details["lagging"] == ["n2"]
    assert "lagging" in r.details["reason"]


def test_a_replica_still_moving_when_the_wait_ended_is_not_lagging() -> None:
    # n2 advanced between the wait's last poll and its read: chasing a busy leader
    h = history(*waited(state("n1", applied=30), state("n2", applied=29), state("n3", applied=30),
                        caught_up=False, last={"n1": 28, "n2": 27, "n3": 28}))
    r = convergence(h)
    assert r.valid == "unknown"
    assert "progress" not in r.details


def test_behind_without_a_finished_wait_is_plain_unknown() -> None:
    h = history(*waited(state("n1", applied=12), state("n2", applied=11), state("n3", applied=12),
                        caught_up=True, last={"n1": 12, "n2": 11, "n3": 12}))
    r = convergence(h)
    assert r.valid == "unknown" and "progress" not in r.details


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                          max_size=3),
                     max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.one_of(_json, st.fixed_dictionaries(
    {"caught_up": st.sampled_from([False, True, None]),
     "applied": st.dictionaries(st.sampled_from(["n1", "n2", "n3"]), _json, max_size=3),
     "behind_s": st.dictionaries(st.sampled_from(["n1", "n2", "n3"]), _json, max_size=3)})))
def test_any_recorded_quiet_wait_is_judged_without_crashing(wait: Any) -> None:
    h = history(info(REPLICAS, CATCH_UP, wait),
                *reads(state("n1"), state("n2"), state("n3")))
    r = convergence(h)
    assert r.valid in (True, "unknown")  # a stalled catch-up is never invalid
