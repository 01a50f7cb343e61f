"""The leadership checker: a leader deposed right after a fault that spared it ended is a
progress finding (unknown, never invalid); a change a fault on the leader, a fault of
unknown reach or a lost majority explains, or one far from any heal, is not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis import plan_checks, summarize, with_recorded_checks
from harness.checker.leadership import leadership, tenures
from harness.history import NEMESIS, History, Op
from harness.leadership import LEADERSHIP, OBSERVER
from harness.testing import info

S = 1_000_000_000
NODES = ["n1", "n2", "n3"]


def at(t_s: float, op: Op) -> Op:
    return replace(op, time=int(t_s * S))


def build(*timed: Op) -> History:
    ops = sorted(timed, key=lambda o: o.time)
    return History(replace(op, index=i) for i, op in enumerate(ops))


def promise(nodes: list[str] = NODES) -> Op:
    return at(0.0, info(NEMESIS, "promises", {"leadership": {"nodes": nodes}}, error=None))


def view(t_s: float, node: str, leader: str | None, term: int | None) -> Op:
    return at(t_s, info(OBSERVER, LEADERSHIP, {"node": node, "leader": leader, "term": term},
                        error=None))


def unreachable(t_s: float, node: str) -> Op:
    return at(t_s, info(OBSERVER, LEADERSHIP, {"node": node, "unreachable": True}, error=None))


def start(t_s: float, kind: str, faulty: list[str] | None) -> Op:
    value: dict[str, Any] = {} if faulty is None else {"faulty": faulty}
    return at(t_s, info(NEMESIS, f"start-{kind}", value, error=None))


def stop(t_s: float, kind: str) -> Op:
    return at(t_s, info(NEMESIS, f"stop-{kind}", {}, error=None))


def follower_cut_off(kind: str = "partition", faulty: list[str] | None = None) -> list[Op]:
    """n1 leads at term 5; a fault hits n3 from 1 s to 3 s."""
    return [promise(), view(0.5, "n1", "n1", 5), view(0.5, "n2", "n1", 5),
            start(1.0, kind, ["n3"] if faulty is None else faulty), stop(3.0, kind)]


def test_a_leader_deposed_when_a_spared_follower_rejoins_is_a_progress_finding() -> None:
    h = build(*follower_cut_off(), view(3.4, "n3", "n3", 9), view(3.5, "n1", "n3", 9))
    r = leadership(h)
    assert r.valid == "unknown"
    assert list(r.details["progress"]) == ["leader-disrupted"]
    d = r.details["disrupted"][0]
    assert (d["leader"], d["term"], d["after"]) == ("n1", 5, "stop-partition")
    assert "n3 claimed term 9" in d["ended_by"]
    assert "deposed" in summarize(r)


def test_a_leader_stepping_down_by_itself_after_the_heal_counts_too() -> None:
    h = build(*follower_cut_off(), view(3.3, "n1", None, 8))
    r = leadership(h)
    assert r.valid == "unknown" and r.details["disrupted"][0]["ended_by"].startswith(
        "n1 knows no leader")


def test_changes_a_fault_explains_are_excused() -> None:
    ends = [view(3.4, "n2", "n2", 6)]
    on_leader = build(*follower_cut_off(faulty=["n1"]), *ends)
    unnamed = build(*follower_cut_off(kind="latency", faulty=None)[:-2],
                    start(1.0, "latency", None), stop(3.0, "latency"), *ends)
    no_majority = build(*follower_cut_off(faulty=["n2", "n3"]), *ends)
    for h in (on_leader, unnamed, no_majority):
        r = leadership(h)
        assert r.valid is True, r.details
        assert r.details["excused"] == 1


def test_a_fault_on_the_leader_just_before_the_stop_still_excuses() -> None:
    """A pause of the leader that ended 1 s before the follower's fault stopped may have
    set off the election that ends after it."""
    h = build(*follower_cut_off(), start(1.2, "pause", ["n1"]), stop(2.0, "pause"),
              view(3.4, "n2", "n2", 6))
    assert leadership(h).valid is True


def test_changes_far_from_any_heal_are_only_counted() -> None:
    h = build(*follower_cut_off(), view(7.0, "n2", "n2", 6), view(7.1, "n1", "n2", 6))
    r = leadership(h)
    assert r.valid is True
    assert (r.details["elsewhere"], r.details["tenures"]) == (1, 2)


def test_an_unreachable_leader_keeps_its_tenure_and_stale_claims_start_none() -> None:
    h = build(*follower_cut_off(), unreachable(3.2, "n1"), view(3.6, "n1", "n1", 5),
              view(3.7, "n3", "n3", 4))
    r = leadership(h)
    assert r.valid is True and r.details["changes"] == 0
    assert [(t.leader, t.term) for t in tenures(h)] == [("n1", 5)]


def test_a_tenure_begun_after_the_stop_is_not_the_rejoins_doing() -> None:
    h = build(*follower_cut_off(), view(3.2, "n2", "n2", 6), view(3.9, "n3", "n3", 7))
    r = leadership(h)
    # n1's end at 3.2 s is a disruption; n2's at 3.9 s began after the stop
    assert r.details["disrupted_count"] == 1
    assert r.details["disrupted"][0]["leader"] == "n1"


def test_the_checker_is_planned_only_with_the_promise() -> None:
    with_promise = build(*follower_cut_off())
    assert "leadership" in with_recorded_checks((), with_promise)
    assert "leadership" in plan_checks(with_promise).checkers
    assert "leadership" not in with_recorded_checks((), build(view(1.0, "n1", "n1", 1)))
    assert leadership(build(view(1.0, "n1", "n1", 1))).valid == "unknown"
    assert leadership(build(promise())).valid == "unknown"


events = st.lists(st.tuples(
    st.floats(0, 20, allow_nan=False),
    st.one_of(
        st.tuples(st.just("view"), st.sampled_from(NODES), st.sampled_from([*NODES, None]),
                  st.one_of(st.none(), st.integers(-2, 12), st.booleans())),
        st.tuples(st.just("unreachable"), st.sampled_from(NODES)),
        st.tuples(st.just("start"), st.sampled_from(["kill", "partition", "latency"]),
                  st.one_of(st.none(), st.lists(st.sampled_from(NODES), max_size=3))),
        st.tuples(st.just("stop"), st.sampled_from(["kill", "partition", "latency"])),
    )), max_size=40)


def _ops(drawn: list[tuple[float, tuple[Any, ...]]]) -> list[Op]:
    out = [promise()]
    for t, e in drawn:
        if e[0] == "view":
            out.append(view(t, e[1], e[2], e[3]))
        elif e[0] == "unreachable":
            out.append(unreachable(t, e[1]))
        elif e[0] == "start":
            out.append(start(t, e[1], e[2]))
        else:
            out.append(stop(t, e[1]))
    return out


@settings(max_examples=300, deadline=None)
@given(events)
def test_any_history_is_judged_and_without_a_stop_nothing_is_disrupted(
        drawn: list[tuple[float, tuple[Any, ...]]]) -> None:
    ops = _ops(drawn)
    r = leadership(build(*ops))
    assert r.valid in (True, "unknown", False)
    if r.valid is False:
        assert set(r.details["anomalies"]) <= {"term-regression", "two-leaders-one-term"}
    seen: dict[str, list[int]] = {}
    leaders: dict[int, set[str]] = {}
    for op in build(*ops).nemesis_ops():
        v = op.value
        if op.f == LEADERSHIP and isinstance(v.get("term"), int) \
                and not isinstance(v["term"], bool):
            seen.setdefault(v["node"], []).append(v["term"])
            if v["leader"] == v["node"]:
                leaders.setdefault(v["term"], set()).add(v["node"])
    if all(ts == sorted(ts) for ts in seen.values()) \
            and all(len(n) == 1 for n in leaders.values()):
        assert r.valid is not False  # no term went down, none was led twice
    if not any(op.f.startswith("stop-") for op in ops):
        assert not r.details.get("disrupted")
    ts = tenures(build(*ops))
    assert [t.term for t in ts] == sorted({t.term for t in ts})  # terms only grow


class FakeViews:
    """Each node's view, changed by the test; n2 raises while ``n2_down``."""

    def __init__(self) -> None:
        self.views = {"n1": ("n1", 3), "n2": ("n1", 3)}
        self.n2_down = False
        self.asked = 0

    def leadership(self, node: str, addresses: Any, *,
                   timeout_s: float) -> tuple[str | None, int | None]:
        self.asked += 1
        if node == "n2" and self.n2_down:
            raise OSError("connection refused")
        return self.views[node]


def test_the_observer_records_each_change_once_until_stopped() -> None:
    import threading
    import time

    from harness.history import OpType
    from harness.leadership import observe_leadership
    from harness.system import PromisesStableLeader

    system = FakeViews()
    assert isinstance(system, PromisesStableLeader)
    recorded: list[dict[str, Any]] = []

    def record(type_: OpType, process: Any, f: str, value: Any) -> Any:
        assert (type_, process, f) == (OpType.INFO, OBSERVER, LEADERSHIP)
        recorded.append(value)

    stop = threading.Event()
    t = threading.Thread(target=observe_leadership, args=(system, record, {"n1": {}, "n2": {}}),
                         kwargs={"stop": stop, "interval_s": 0.01})
    t.start()
    time.sleep(0.1)
    system.n2_down = True
    time.sleep(0.1)
    system.views = {"n1": ("n2", 4), "n2": ("n2", 4)}  # one assignment: no torn view
    system.n2_down = False
    time.sleep(0.1)
    stop.set()
    t.join(timeout=2)
    assert not t.is_alive() and system.asked > 10
    assert recorded == [
        {"node": "n1", "leader": "n1", "term": 3}, {"node": "n2", "leader": "n1", "term": 3},
        {"node": "n2", "unreachable": True},
        {"node": "n1", "leader": "n2", "term": 4}, {"node": "n2", "leader": "n2", "term": 4}]


def test_a_term_that_goes_down_on_a_running_node_is_invalid() -> None:
    # n2 promised n3's ballot, then campaigned below it (its own promise went down)
    h = build(promise(), view(0.5, "n1", "n3", 3003), view(0.5, "n2", "n3", 3003),
              view(0.5, "n3", "n3", 3003), start(1.0, "partition", ["n3"]),
              view(1.6, "n2", "n2", 2), stop(3.0, "partition"))
    r = leadership(h)
    assert r.valid is False
    assert list(r.details["anomalies"]) == ["term-regression"]
    reg = r.details["regressions"][0]
    assert (reg["node"], reg["from"], reg["to"], reg["at_s"]) == ("n2", 3003, 2, 1.6)
    assert "went down on a running node" in r.details["reason"]
    assert "went down on a running node" in summarize(r)


def test_a_restart_or_an_unreachable_node_starts_its_terms_afresh() -> None:
    base = [promise(), view(0.5, "n1", "n1", 5), view(0.5, "n2", "n1", 5)]
    killed = build(*base, start(1.0, "kill", ["n2"]), stop(2.0, "kill"),
                   view(2.5, "n2", None, 0))
    assert leadership(killed).valid is not False
    unknown_reach = build(*base, start(1.0, "lose-unsynced", None), stop(2.0, "lose-unsynced"),
                          view(2.5, "n2", None, 0))
    assert leadership(unknown_reach).valid is not False
    gone = build(*base, unreachable(1.0, "n2"), view(2.5, "n2", None, 0))
    assert leadership(gone).valid is not False
    # a kill of another node, a pause or a partition of this one restarts nothing
    for kind, faulty in (("kill", ["n3"]), ("pause", ["n2"]), ("partition", ["n2"])):
        h = build(*base, start(1.0, kind, faulty), stop(2.0, kind), view(2.5, "n2", None, 4))
        r = leadership(h)
        assert r.valid is False and list(r.details["anomalies"]) == ["term-regression"], kind


def test_two_nodes_leading_at_one_term_is_invalid() -> None:
    h = build(promise(), view(0.5, "n1", "n1", 7), start(1.0, "partition", ["n1"]),
              view(1.5, "n2", "n2", 7), stop(3.0, "partition"))
    r = leadership(h)
    assert r.valid is False and list(r.details["anomalies"]) == ["two-leaders-one-term"]
    assert r.details["shared_terms"][0]["leaders"] == ["n1", "n2"]
    # one leader seen again at its term, and followers naming it, are fine
    ok = build(promise(), view(0.5, "n1", "n1", 7), view(0.6, "n2", "n1", 7),
               view(0.7, "n1", None, 7), view(0.8, "n1", "n1", 7))
    assert leadership(ok).valid is not False


def test_refsys_reports_its_ballot_as_one_term_per_proposer() -> None:
    from harness.systems.refsys import BALLOT_NODES, ballot_term

    assert ballot_term([0, -1]) == -1
    assert ballot_term([3, 2]) == 3 * BALLOT_NODES + 2
    # ordered as ballots are: a higher round wins, then a higher node id
    assert ballot_term([3, 2]) < ballot_term([3, 3]) < ballot_term([4, 1])
    for bad in (None, [], [1], [1, 2, 3], ["1", 2], [True, 1], [-1, 1], [1, BALLOT_NODES]):
        assert ballot_term(bad) is None
