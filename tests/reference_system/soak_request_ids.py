"""Soak: the request-id table keeps a node's memory flat (issue 14).

Every mutation with a fresh ``request_id`` adds an entry to the replicated
table of results; before the table was bounded by bytes as well as entries,
nothing but a count limited it. This script sends many writes, each with a
fresh request id, to a few keys (so the key-value map stays small and only
the table can grow) and prints the resident memory at checkpoints::

    .venv/bin/python tests/reference_system/soak_request_ids.py --mode node --ops 300000
    .venv/bin/python tests/reference_system/soak_request_ids.py --mode machine --ops 1000000

``node``: a one-node cluster (a real ``reference_system.node`` process, its
write-ahead log, group commit and snapshots), driven over keep-alive HTTP by
``--connections`` threads; the RSS is the node process's. ``machine``: the
state machine alone in this process, for the issue's 1,000,000 at a speed a
shared 2-core machine allows. Memory must level off once the table is full
(100,000 entries by default): compare the checkpoints after that point.
``--op enqueue`` sends enqueues instead; their items are kept forever by
design (the final reads need them), so that memory grows with the items.
Not a pytest module (no ``test_`` prefix): it takes minutes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from reference_system.local import LocalCluster, free_base_port
from reference_system.state_machine import WorkQueueMachine


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _body(op: str, n: int) -> tuple[str, bytes]:
    rid = uuid.uuid4().hex
    if op == "enqueue":
        return "/enqueue", json.dumps({"payload": n, "request_id": rid}).encode()
    return f"/kv/k{n % 8}", json.dumps({"value": n, "request_id": rid}).encode()


def soak_node(ops: int, connections: int, checkpoints: int, op: str) -> None:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, LocalCluster(
        1, base_port=free_base_port(1), data_dir=Path(tmp), haproxy=False,
        node_args=("--log-level", "WARNING"),
    ) as cluster:
        cluster.wait_for_leader()
        pid = cluster.procs[1].pid
        port = cluster.http_port(1)
        sent = 0
        errors = 0
        lock = threading.Lock()
        step = ops // checkpoints

        def worker(count: int) -> None:
            nonlocal sent, errors
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for n in range(count):
                path, body = _body(op, n)
                try:
                    conn.request("POST", path, body=body,
                                 headers={"Content-Type": "application/json"})
                    response = conn.getresponse()
                    response.read()
                    failed = response.status != 200
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    failed = True
                with lock:
                    sent += 1
                    errors += failed
            conn.close()

        print(f"node pid {pid}: RSS {rss_mib(pid):.1f} MiB before any {op}", flush=True)
        t0 = time.monotonic()
        share = [ops // connections + (i < ops % connections) for i in range(connections)]
        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in share]
        for thread in threads:
            thread.start()
        mark = step
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
            with lock:
                done = sent
            if done >= mark:
                elapsed = time.monotonic() - t0
                print(f"{done:>9} {op}s  RSS {rss_mib(pid):7.1f} MiB  "
                      f"{done / elapsed:7.0f}/s  errors {errors}", flush=True)
                mark += step
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - t0
        print(f"{sent:>9} {op}s  RSS {rss_mib(pid):7.1f} MiB  {elapsed:.0f} s  "
              f"errors {errors}", flush=True)


def soak_machine(ops: int, checkpoints: int, op: str) -> None:
    machine = WorkQueueMachine()
    pid = os.getpid()
    step = ops // checkpoints
    print(f"this process: RSS {rss_mib(pid):.1f} MiB before any {op}", flush=True)
    t0 = time.monotonic()
    for n in range(1, ops + 1):
        rid = uuid.uuid4().hex
        if op == "enqueue":
            machine.apply({"op": "enqueue", "payload": n, "rid": rid, "ts": n}, n * 1024)
        else:
            machine.apply({"op": "write", "key": f"k{n % 8}", "value": n, "rid": rid}, n * 1024)
        if n % step == 0:
            print(f"{n:>9} {op}s  RSS {rss_mib(pid):7.1f} MiB  table {len(machine.results)} "
                  f"entries {machine.results_bytes / 2**20:.1f} MiB  "
                  f"{time.monotonic() - t0:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["node", "machine"], default="node")
    parser.add_argument("--ops", type=int, default=300_000)
    parser.add_argument("--op", choices=["write", "enqueue"], default="write")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--checkpoints", type=int, default=10)
    args = parser.parse_args(argv)
    if args.mode == "node":
        soak_node(args.ops, args.connections, args.checkpoints, args.op)
    else:
        soak_machine(args.ops, args.checkpoints, args.op)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
