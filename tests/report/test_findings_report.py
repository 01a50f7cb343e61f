"""The report's availability, idempotency, robustness and leadership sections: the
unserved requests of a quiet cluster, the resends a system judged anew, the malformed
requests it accepted, and the leaders a rejoining node deposed."""

from __future__ import annotations

from dataclasses import replace

from report_helpers import RunFactory, base_results

from harness.checker.availability import PROMISES, availability
from harness.checker.idempotency import idempotency
from harness.checker.leadership import leadership
from harness.history import NEMESIS, History, Op
from harness.leadership import LEADERSHIP, OBSERVER
from harness.report import write_report
from harness.testing import fail, info, invoke, ok

S = 1_000_000_000
PROMISE = {"availability": {"refusals": {"enqueue": ["exists"]}, "recovery_grace_ms": 1000.0}}


def timed(ops: list) -> History:  # type: ignore[type-arg]
    return History(replace(op, index=i, time=int(i * 0.25 * S)) for i, op in enumerate(ops))


def test_unserved_requests_of_a_quiet_cluster_are_listed(make_run: RunFactory) -> None:
    ops = [info(NEMESIS, PROMISES, PROMISE, error=None)]
    for i in range(16):
        ops += [invoke(i % 3, "enqueue", {"id": f"i{i}"}),
                fail(i % 3, "enqueue", {"id": f"i{i}"}, error="not_leader")]
    h = timed(ops)
    av = availability(h).to_dict()
    assert av["progress"] == ["unavailable"]
    run = make_run(h, base_results(valid="unknown", checkers={"availability": av},
                                   op_count=len(h), workload="queue"))
    page = write_report(run).read_text()
    assert 'id="availability"' in page and "while no fault was in force" in page
    assert page.count("<code>not_leader</code>") == 16


def test_a_resend_judged_anew_is_shown_beside_its_first_attempt(make_run: RunFactory) -> None:
    item = {"id": "i1"}
    resend = replace(invoke(0, "enqueue", item), extra=(("idempotency", "request-id"),
                                                        ("retry_of", 1)))
    h = timed([info(NEMESIS, PROMISES, PROMISE, error=None), invoke(0, "enqueue", item),
               ok(0, "enqueue", item), resend, fail(0, "enqueue", item, error="exists")])
    idm = idempotency(h).to_dict()
    assert idm["valid"] is False and idm["anomalies"] == ["resend-reapplied"]
    run = make_run(h, base_results(valid=False, checkers={"idempotency": idm},
                                   op_count=len(h), workload="queue"))
    page = write_report(run).read_text()
    assert 'id="idempotency"' in page and "resend-reapplied" in page
    assert "<td>op 1</td><td>op 3</td>" in page and 'id="no-anomalies"' not in page


def test_malformed_requests_the_system_accepted_are_listed(make_run: RunFactory) -> None:
    from harness.checker.robustness import robustness
    from harness.history import Op, OpType
    from harness.hostile import HOSTILE

    req = {"why": "payload nested 40 levels", "path": "/enqueue", "target": "n2"}
    ops = [invoke(0, "enqueue", {"id": "i1"}), ok(0, "enqueue", {"id": "i1"}),
           Op(0, 0, OpType.INVOKE, HOSTILE, HOSTILE, req),
           Op(0, 0, OpType.OK, HOSTILE, HOSTILE, req, {"answer": "accepted", "detail": "200"},
              "n2")]
    h = timed(ops)
    rb = robustness(h).to_dict()
    assert rb["valid"] is False and rb["anomalies"] == ["accepted-bad-input"]
    run = make_run(h, base_results(valid=False, checkers={"robustness": rb},
                                   op_count=len(h), workload="queue"))
    page = write_report(run).read_text()
    assert 'id="robustness"' in page and "payload nested 40 levels" in page
    assert 'id="no-anomalies"' not in page


def _view(node: str, leader: str | None, term: int) -> Op:
    """One node's view of who leads, as the leadership observer records it."""
    return info(OBSERVER, LEADERSHIP, {"node": node, "leader": leader, "term": term},
                error=None)


_LEADERSHIP_PROMISE = info(NEMESIS, PROMISES, {"leadership": {"nodes": ["n1", "n2", "n3"]}},
                           error=None)


def test_a_leader_deposed_by_a_rejoining_node_is_shown(make_run: RunFactory) -> None:
    h = timed([_LEADERSHIP_PROMISE,
               _view("n1", "n1", 4), info(NEMESIS, "start-kill", {"faulty": ["n3"]}, error=None),
               info(NEMESIS, "stop-kill", {}, error=None), _view("n3", "n3", 9)])
    ld = leadership(h).to_dict()
    assert ld["progress"] == ["leader-disrupted"]
    run = make_run(h, base_results(valid="unknown", checkers={"leadership": ld},
                                   op_count=len(h), workload="register"))
    page = write_report(run).read_text()
    assert 'id="leadership"' in page and "n3 claimed term 9" in page


def test_a_term_that_went_down_is_shown_as_a_safety_finding(make_run: RunFactory) -> None:
    h = timed([_LEADERSHIP_PROMISE,
               _view("n3", "n3", 3003), _view("n1", "n3", 3003),
               info(NEMESIS, "start-partition", {"faulty": ["n3"]}, error=None),
               _view("n1", "n1", 1), info(NEMESIS, "stop-partition", {}, error=None)])
    ld = leadership(h).to_dict()
    assert ld["valid"] is False and ld["anomalies"] == ["term-regression"]
    run = make_run(h, base_results(valid=False, checkers={"leadership": ld},
                                   op_count=len(h), workload="register"))
    page = write_report(run).read_text()
    assert 'id="leadership"' in page and "election safety broken" in page
    assert 'class="ops term-regressions"' in page and "<td>3003</td>" in page
    assert "deposed by a rejoining node" not in page
