"""A cluster of real node processes under crashes: leader failover, catch-up
of a restarted node (from a snapshot), a minority that refuses to serve,
takeover of a crashed worker's item, and a seeded bug visible end to end."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from refsys_helpers import NODE_ARGS, until, write

from reference_system.local import LocalCluster, free_base_port, http_json

FAST = NODE_ARGS


def test_killing_the_leader_keeps_the_cluster_serving(cluster: LocalCluster) -> None:
    old = cluster.wait_for_leader()
    for k in range(20):
        write(cluster, f"k{k}", k)
    cluster.kill(old)
    t0 = time.monotonic()
    new = cluster.wait_for_leader(exclude=old, timeout_s=10)
    assert new != old
    until(
        lambda: http_json(cluster.http_port(new), "POST", "/kv/after", {"value": 1})[0] == 200,
        10,
        "a write after failover",
    )
    failover_s = time.monotonic() - t0
    assert failover_s < 5, failover_s
    for k in range(20):  # nothing acknowledged was lost
        assert http_json(cluster.http_port(new), "GET", f"/kv/k{k}")[1]["value"] == k


def test_restarted_node_catches_up_from_a_snapshot(tmp_path: Path) -> None:
    args = (*FAST, "--snapshot-every-slots", "50")
    with LocalCluster(
        3, base_port=free_base_port(), data_dir=tmp_path, node_args=args, haproxy=False
    ) as c:
        leader = c.wait_for_leader()
        lagger = next(i for i in c.ids if i != leader)
        c.kill(lagger)
        for k in range(150):
            write(c, f"s{k % 7}", k)
        c.start_node(lagger)

        def caught_up() -> bool:
            s, ls = c.status(lagger), c.status(leader)
            return bool(s and ls and s["applied"] >= ls["applied"] - 2 and s["healthy"])

        until(caught_up, 15, "the restarted node to catch up")
        s = c.status(lagger)
        assert s is not None and s["snapshot"] >= 50
        assert (c.dir / f"node{lagger}" / "snapshot.json").exists()
        # its log was compacted: not 150 accept records
        assert (c.dir / f"node{leader}" / "wal.log").stat().st_size < 20_000


def test_a_minority_node_is_unhealthy_and_refuses_definitely(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader()
    alone = next(i for i in cluster.ids if i != leader)
    for i in cluster.ids:
        if i != alone:
            cluster.kill(i)
    until(
        lambda: http_json(cluster.http_port(alone), "GET", "/health")[0] == 503,
        5,
        "the lone node to report unhealthy",
    )
    code, r = http_json(cluster.http_port(alone), "POST", "/kv/x", {"value": 1})
    assert code in (503, 504)
    if code == 503:
        assert r["definite"] is True
    else:
        assert r["definite"] is False


def test_a_crashed_workers_item_is_taken_over_and_completed_once(tmp_path: Path) -> None:
    args = (*FAST, "--work-ms", "100")
    with LocalCluster(
        3, base_port=free_base_port(), data_dir=tmp_path, node_args=args, worker=True, haproxy=False
    ) as c:
        leader = c.wait_for_leader()
        port = c.http_port(leader)
        assert (
            http_json(port, "POST", "/enqueue", {"id": "slow", "payload": {"work_ms": 60_000}})[0]
            == 200
        )

        def holder() -> str | None:
            for i in c.ids:
                code, it = http_json(c.http_port(i), "GET", "/items/slow")
                if code == 200 and it["state"] == "processing":
                    return str(it["holder"])
            return None

        h = until(holder, 10, "a worker to claim the item")
        victim = int(h.removeprefix("node"))
        # crash the holder mid-item
        c.kill(victim)
        survivor = next(i for i in c.ids if i != victim)

        def item() -> dict | None:  # type: ignore[type-arg]
            code, it = http_json(c.http_port(survivor), "GET", "/items/slow", timeout_s=3)
            return it if code == 200 else None

        taken = until(lambda: (it := item()) and it["attempts"] == 2 and it, 20, "a takeover")
        assert taken["holder"] != h
        # the second attempt also sleeps 60 s: complete it through the API instead
        code, _r = http_json(
            c.http_port(survivor),
            "POST",
            "/complete",
            {"id": "slow", "token": taken["token"], "result": "ok"},
        )
        assert code == 200
        final = item()
        assert final is not None and final["state"] == "completed" and final["attempts"] == 2


def test_workers_complete_enqueued_items(tmp_path: Path) -> None:
    with LocalCluster(
        3,
        base_port=free_base_port(),
        data_dir=tmp_path,
        node_args=(*FAST, "--work-ms", "20"),
        worker=True,
        haproxy=False,
    ) as c:
        leader = c.wait_for_leader()
        ids = [
            http_json(c.http_port(leader), "POST", "/enqueue", {"payload": k})[1]["id"]
            for k in range(30)
        ]
        until(
            lambda: (s := c.status(leader)) and s["items"]["completed"] == 30,
            20,
            "all items completed",
        )
        done_by = {
            http_json(c.http_port(leader), "GET", f"/items/{i}")[1]["result"]["by"] for i in ids
        }
        assert done_by <= {"node1", "node2", "node3"}


def test_seeded_bug_ack_before_quorum_acknowledges_without_a_quorum(tmp_path: Path) -> None:
    with LocalCluster(
        3,
        base_port=free_base_port(),
        data_dir=tmp_path,
        node_args=FAST,
        env={"REFSYS_BUG": "ack_before_quorum"},
        haproxy=False,
    ) as c:
        leader = c.wait_for_leader()
        for i in c.ids:
            if i != leader:
                c.kill(i)
        # the leader has not yet noticed it lost its quorum: it acknowledges anyway
        code, _ = http_json(c.http_port(leader), "POST", "/kv/x", {"value": 1})
        assert code == 200


def test_without_the_bug_a_leader_without_quorum_does_not_acknowledge(
    cluster: LocalCluster,
) -> None:
    leader = cluster.wait_for_leader()
    for i in cluster.ids:
        if i != leader:
            cluster.kill(i)
    code, _r = http_json(cluster.http_port(leader), "POST", "/kv/x", {"value": 1})
    assert code in (503, 504)


def test_an_unknown_seeded_bug_refuses_to_start(tmp_path: Path) -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "reference_system.node",
            "--id",
            "1",
            "--peer-listen",
            "127.0.0.1:1",
            "--peers",
            "2=127.0.0.1:2,3=127.0.0.1:3",
            "--http",
            "127.0.0.1:3",
            "--data-dir",
            str(tmp_path),
        ],
        env={
            "REFSYS_BUG": "no_such_bug",
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        },
        capture_output=True,
        timeout=30,
    )
    assert p.returncode != 0 and b"no_such_bug" in p.stderr


@pytest.mark.parametrize("n", [5])
def test_five_nodes_survive_two_crashes(tmp_path: Path, n: int) -> None:
    with LocalCluster(
        n, base_port=free_base_port(n), data_dir=tmp_path, node_args=FAST, haproxy=False
    ) as c:
        leader = c.wait_for_leader()
        victims = [leader, next(i for i in c.ids if i != leader)]
        for v in victims:
            c.kill(v)
        new = c.wait_for_leader(exclude=leader, timeout_s=10)
        assert new not in victims
        assert http_json(c.http_port(new), "POST", "/kv/five", {"value": 5})[0] == 200


def test_a_paused_follower_that_resumes_does_not_depose_the_leader(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader()
    ballot = cluster.status(leader)["ballot"]  # type: ignore[index]
    victim = next(i for i in cluster.ids if i != leader)
    cluster.pause(victim)
    time.sleep(1.5)  # many election timeouts
    cluster.resume(victim)
    until(lambda: (s := cluster.status(victim)) and s["leader"] == leader, 5, "rejoin")
    time.sleep(0.5)
    assert cluster.leader() == leader
    assert cluster.status(leader)["ballot"] == ballot  # type: ignore[index]


def test_a_worker_renews_its_lease_through_long_work(tmp_path: Path) -> None:
    with LocalCluster(
        3,
        base_port=free_base_port(),
        data_dir=tmp_path,
        node_args=(*FAST, "--work-ms", "10"),
        worker=True,
        haproxy=False,
    ) as c:
        leader = c.wait_for_leader()
        body = {"id": "long", "payload": {"work_ms": 2500}}  # longer than the 1.5 s lease
        assert http_json(c.http_port(leader), "POST", "/enqueue", body)[0] == 200

        def done() -> dict | None:  # type: ignore[type-arg]
            it = http_json(c.http_port(leader), "GET", "/items/long")[1]
            return it if it["state"] == "completed" else None

        it = until(done, 10, "the long item to complete")
        assert it["attempts"] == 1 and it["renewals"] >= 2


def _enqueue(c: LocalCluster, item_id: str) -> None:
    """Enqueue through any node, retrying with one request id until acknowledged."""

    def attempt() -> bool:
        for i in c.ids:
            try:
                code, _ = http_json(
                    c.http_port(i),
                    "POST",
                    "/enqueue",
                    {"id": item_id, "request_id": f"enq-{item_id}"},
                    timeout_s=5,
                )
            except OSError:
                continue
            if code == 200:
                return True
        return False

    until(attempt, 20, f"enqueue of {item_id}")


def _all_completed(c: LocalCluster, ids: list[str]) -> bool:
    leader = c.leader()
    if leader is None:
        return False
    for item_id in ids:
        try:
            code, it = http_json(c.http_port(leader), "GET", f"/items/{item_id}", timeout_s=5)
        except OSError:
            return False
        if code != 200 or it["state"] != "completed":
            return False
    return True


@pytest.mark.parametrize("kills", [2, pytest.param(8, marks=pytest.mark.slow)])
def test_every_acknowledged_item_is_completed_across_leader_crashes(
    tmp_path: Path, kills: int
) -> None:
    with LocalCluster(
        3,
        base_port=free_base_port(),
        data_dir=tmp_path,
        node_args=(*FAST, "--work-ms", "50"),
        worker=True,
        haproxy=False,
    ) as c:
        ids = []
        for k in range(kills):
            for j in range(15):
                item_id = f"it-{k}-{j}"
                _enqueue(c, item_id)
                ids.append(item_id)
            victim = c.wait_for_leader(timeout_s=20)
            c.kill(victim)
            time.sleep(0.3)
            c.start_node(victim)
        until(lambda: _all_completed(c, ids), 60, "every item to be completed")
        leader = c.wait_for_leader()
        for item_id in ids:
            it = http_json(c.http_port(leader), "GET", f"/items/{item_id}")[1]
            assert it["result"]["token"] == it["token"]  # completed by its current holder
