"""Final reads of items through every node: sampled, recorded, a down node given up."""

from __future__ import annotations

from typing import Any

from harness.client import Outcome, fail, ok
from harness.errors import HarnessError
from harness.history import Op, OpType
from harness.workloads.base import even_sample, read_items_through_nodes


class Node:
    def __init__(self, name: str, down: bool = False) -> None:
        self.name = name
        self.down = down
        self.closed = False

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        return f, value

    def invoke(self, f: str, value: Any) -> Outcome:
        return fail("refused") if self.down else ok({"id": value["id"], "state": "completed"})

    def close(self) -> None:
        self.closed = True


class Ctx:
    def __init__(self, nodes: dict[str, Node] | None) -> None:
        self._nodes = nodes or {}
        self.nodes = list(self._nodes) if nodes is not None else ["n1"]
        self.calls: list[tuple[str, str, Any]] = []
        self.stuck_after_ms = None

    def pinned_client(self, node: str) -> Node:
        if not self._nodes:
            raise HarnessError("no pinned clients")
        return self._nodes[node]

    def call(self, client: Node, f: str, value: Any) -> tuple[Op, Outcome]:
        self.calls.append((client.name, f, value["id"]))
        out = client.invoke(f, value)
        return Op(0, 0, OpType.INVOKE, 0, f, value), out

    def history_so_far(self) -> list[Op]:
        return []

    def deadline_passed(self) -> bool:
        return False

    def note(self, f: str, value: Any) -> None:
        pass


def test_even_sample_keeps_ends_and_bound() -> None:
    ids = [f"t{i}" for i in range(1000)]
    s = even_sample(ids, 10)
    assert len(s) == 10 and s[0] == "t0" and s[-1] == "t999" and len(set(s)) == 10
    assert even_sample(ids[:5], 10) == ids[:5] and even_sample(ids, 1) == ["t999"]
    assert even_sample(ids, 0) == []


def test_every_node_reads_the_sample_and_a_down_node_is_given_up() -> None:
    nodes = {"n1": Node("n1"), "n2": Node("n2", down=True), "n3": Node("n3")}
    ctx = Ctx(nodes)
    ids = [f"t{i}" for i in range(50)]
    read_items_through_nodes(ctx, ids, max_items=20)  # type: ignore[arg-type]
    by_node: dict[str, int] = {}
    for node, f, _ in ctx.calls:
        assert f == "read-item"
        by_node[node] = by_node.get(node, 0) + 1
    assert by_node == {"n1": 20, "n2": 3, "n3": 20}
    assert all(n.closed for n in nodes.values())


def test_no_pinned_clients_no_reads() -> None:
    ctx = Ctx(None)
    read_items_through_nodes(ctx, ["t1"], max_items=5)  # type: ignore[arg-type]
    assert ctx.calls == []
