"""The report's convergence section: which node differs, on which key or item."""

from __future__ import annotations

from report_helpers import RunFactory, base_results

from harness.checker.convergence import REPLICA_STATE, REPLICAS, convergence
from harness.history import History
from harness.report import write_report
from harness.report.data import convergence_view
from harness.testing import fail, history, invoke, ok


def replica_history(n3_items: dict[str, object], *, n2_readable: bool = True) -> History:
    items = {"it-1": {"state": "completed", "token": 1024}}
    ops = [invoke(0, "enqueue", {"id": "it-1"}), ok(0, "enqueue", {"id": "it-1"})]
    for node, its in (("n1", items), ("n2", items), ("n3", n3_items)):
        ops.append(invoke(REPLICAS, REPLICA_STATE, {"node": node}))
        if node == "n2" and not n2_readable:
            ops.append(fail(REPLICAS, REPLICA_STATE, {"node": node}, error="timed out"))
        else:
            ops.append(ok(REPLICAS, REPLICA_STATE,
                          {"node": node, "applied": 5, "state": {"k": 1}, "items": its}))
    return history(*ops)


def test_a_divergent_item_is_shown_with_its_node_and_fields(make_run: RunFactory) -> None:
    h = replica_history({"it-1": {"state": "processing", "token": 1024}})
    conv = convergence(h).to_dict()
    run = make_run(h, base_results(valid=False, checkers={"convergence": conv}, op_count=len(h),
                                   workload="queue"))
    page = write_report(run).read_text()
    assert 'id="convergence"' in page and "replicas differ at position 5" in page
    assert 'id="no-anomalies"' not in page
    view = convergence_view(conv)
    assert view is not None
    (row,) = view["differences"]
    assert (row["node"], row["what"]) == ("n3", "items it-1")
    assert (row["reference"], row["value"]) == ('{"state":"completed"}', '{"state":"processing"}')
    assert "<code>items it-1</code>" in page and "n3" in page


def test_an_unreadable_node_is_shown_as_unknown_and_a_pass_is_not_drawn(
        make_run: RunFactory) -> None:
    h = replica_history({"it-1": {"state": "completed", "token": 1024}}, n2_readable=False)
    conv = convergence(h).to_dict()
    view = convergence_view(conv)
    assert view is not None and view["valid"] == "unknown"
    assert {"node": "n2", "status": "unreadable", "applied": "", "digest": "",
            "note": "timed out"} in view["nodes"]
    run = make_run(h, base_results(valid="unknown", checkers={"convergence": conv},
                                   op_count=len(h), workload="queue"))
    page = write_report(run).read_text()
    assert "not established" in page and "timed out" in page
    assert convergence_view(convergence(replica_history(
        {"it-1": {"state": "completed", "token": 1024}})).to_dict()) is None
