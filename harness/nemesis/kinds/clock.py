"""``clock``: step, skew or strobe nodes' wall clocks (libfaketime), reset when it ends.

Jepsen's clock faults, without privileges in the node: the backend runs each
node under libfaketime and rewrites its offset file (:mod:`harness.clock`).
Three modes, each a fault with a start and an end (the end is Jepsen's
``reset``: every touched node back to offset 0):

* ``bump``: one node (a name or a rule such as ``leader``) steps by
  ``delta_s`` (forward or back) and stays there until the end;
* ``skew``: every node gets its own offset from ``offsets`` (drawn spread
  over ``[-delta_s, +delta_s]``), so no two nodes agree on the time;
* ``strobe``: one node's clock flips between 0 and ``delta_s`` every
  ``period_ms`` until the end.

Only ``CLOCK_REALTIME`` moves; the monotonic clock does not (see
:data:`harness.clock.MOVES`). The reference system's leases assume bounded
drift of the *monotonic* clock's rate across nodes (README), so these faults
leave that assumption standing; each record says which clocks moved
(``moved``), and a record that says ``monotonic`` moved is what the report
flags as breaking it. The records also carry each node's offset, from which
the report draws the clock-offset lane.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from hypothesis import strategies as st

from harness import clock
from harness.nemesis.registry import Ability, FaultContext, FaultKind

__all__ = ["CLOCK", "FORWARD_JUMP_S", "KIND", "MODES", "STEPS_S", "STROBE_PERIODS_MS", "Clock"]

MODES = ("bump", "skew", "strobe")
#: step sizes: past the reference system's 2 s lease (a wall-clock lease notices), and
#: far past it; backward steps too (a lease judged on the wall clock then never ends)
STEPS_S = (5.0, 30.0, 120.0, -5.0, -30.0, -120.0)
STROBE_PERIODS_MS = (100, 250, 1000)
#: a forward step at least this long is past every lease and election timeout we know of
FORWARD_JUMP_S = 30.0


def _steps_clocks(system: Any, backend: Any) -> bool:
    if not (callable(getattr(backend, "set_clock_offset", None)) and clock.supports(system)):
        return False
    # the Docker image carries libfaketime (BASE_PACKAGES); a local node needs the host's
    name = backend.__name__ if isinstance(backend, type) else type(backend).__name__
    return "Docker" in name or clock.available()


#: the backend steps a node's wall clock (libfaketime under the node) and the system's nodes
#: read time through libc
CLOCK = Ability("backend steps a node's wall clock with libfaketime (installed: apt-get "
                "install faketime) and the system declares clock_control = 'faketime'",
                _steps_clocks)

_strobes: dict[int, clock.Strobe] = {}
_ids = itertools.count(1)
_lock = threading.Lock()


def _set(ctx: FaultContext, node: str, seconds: float) -> None:
    ctx.cluster.set_clock_offset(node, seconds)  # type: ignore[attr-defined]


class Clock(FaultKind):
    name = "clock"
    order = 110
    needs = (CLOCK,)
    label = "clock"
    #: the backend starts the nodes under libfaketime only for runs that use this kind
    cluster_options: ClassVar[Mapping[str, Any]] = {"clock_faults": True}
    ended = "reset"

    def draw(self, rng: random.Random, nodes: Sequence[str]) -> dict[str, Any]:
        mode = rng.choice(MODES)
        delta = rng.choice(STEPS_S)
        if mode == "skew":
            spread = sorted(abs(delta) * (2 * i / max(len(nodes) - 1, 1) - 1)
                            for i in range(len(nodes)))
            rng.shuffle(spread)
            return {"mode": mode, "delta_s": abs(delta),
                    "offsets": {n: round(s, 3) for n, s in zip(nodes, spread, strict=True)}}
        # the leader twice as likely as a named node: its clock is the one that decides
        # (lease expiry, command stamps), and a named node is the leader a third of the time
        params: dict[str, Any] = {"mode": mode, "node": rng.choice([*nodes, "leader", "leader"]),
                                  "delta_s": delta}
        if mode == "strobe":
            params["period_ms"] = rng.choice(STROBE_PERIODS_MS)
        return params

    def missing_variants(self, drawn: Sequence[Mapping[str, Any]], rng: random.Random,
                         nodes: Sequence[str]) -> list[dict[str, Any]]:
        # The leader's wall clock jumping ahead past every timeout a system states
        # (leases, elections: seconds): what a leader that ages anything on the
        # wall clock (leases, TTLs, timers) gets wrong at once. A strobe jumps
        # ahead again every other period for the whole fault, so a jump that
        # lands while nothing is held (the cluster still recovering from the
        # previous fault) is not the only one. A skew moves the leader too, but
        # by a random share of the step, possibly backwards.
        if any(p.get("mode") in ("bump", "strobe") and p.get("node") == "leader"
               and float(p.get("delta_s", 0)) >= FORWARD_JUMP_S for p in drawn):
            return []
        return [{"mode": "strobe", "node": "leader",
                 "delta_s": rng.choice([s for s in STEPS_S if s >= FORWARD_JUMP_S]),
                 "period_ms": rng.choice(STROBE_PERIODS_MS)}]

    def strategy(self, nodes: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
        delta = st.sampled_from(STEPS_S)
        node = st.sampled_from(["leader", *nodes])
        bump = st.fixed_dictionaries({"mode": st.just("bump"), "node": node, "delta_s": delta})
        strobe = st.fixed_dictionaries({"mode": st.just("strobe"), "node": node,
                                        "delta_s": delta,
                                        "period_ms": st.sampled_from(STROBE_PERIODS_MS)})
        skew = st.fixed_dictionaries({
            "mode": st.just("skew"), "delta_s": st.just(30.0),
            "offsets": st.fixed_dictionaries({n: st.floats(-120, 120, allow_nan=False)
                                              for n in nodes})})
        return st.one_of(bump, skew, strobe)  # a single step first: the simplest to read

    def start(self, ctx: FaultContext, params: Mapping[str, Any]) -> dict[str, Any]:
        mode = str(params.get("mode", "bump"))
        if mode not in MODES:
            raise ValueError(f"clock mode must be one of {MODES}, not {mode!r}")
        moved = [name for name, moves in clock.MOVES.items() if moves]
        if mode == "skew":
            raw = params.get("offsets")
            if not isinstance(raw, Mapping) or not raw:
                raise ValueError("a clock skew needs offsets: {node: seconds}")
            offsets = {str(n): float(s) for n, s in raw.items()}
            unknown = sorted(set(offsets) - set(ctx.cluster.nodes))
            if unknown:
                raise ValueError(f"a clock skew names nodes the cluster has not: {unknown}")
            for s in offsets.values():
                clock.offset_spec(s)  # refuses NaN and infinities before touching a node
            for n, s in offsets.items():
                _set(ctx, n, s)
            return {"fault": self.name, "mode": mode, "offsets": offsets, "moved": moved}
        delta = float(params.get("delta_s", 30.0))
        clock.offset_spec(delta)
        node = ctx.node(str(params.get("node", "leader")))
        record: dict[str, Any] = {"fault": self.name, "mode": mode, "node": node,
                                  "offsets": {node: delta}, "moved": moved}
        if mode == "bump":
            _set(ctx, node, delta)
            return record
        period_ms = int(params.get("period_ms", 250))
        if period_ms <= 0:
            raise ValueError("a strobe's period_ms must be positive")
        strobe = clock.Strobe(lambda n, s: _set(ctx, n, s), [node], 0.0, delta,
                              period_ms / 1000.0).start()
        with _lock:
            sid = next(_ids)
            _strobes[sid] = strobe
        return {**record, "period_ms": period_ms, "strobe": sid}

    def end(self, ctx: FaultContext, params: Mapping[str, Any],
            started: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"fault": self.name, "mode": started.get("mode")}
        sid = started.get("strobe")
        with _lock:
            strobe = _strobes.pop(sid, None) if isinstance(sid, int) else None
        if strobe is not None:
            out.update(strobe.stop())
        reset = {}
        for node in dict(started.get("offsets") or {}):
            _set(ctx, node, 0.0)
            reset[node] = 0.0
        return {**out, "offsets": reset}

    def heal(self, ctx: FaultContext) -> dict[str, Any] | None:
        """Stop any strobe left running and put every node's clock back to 0."""
        with _lock:
            left = list(_strobes.values())
            _strobes.clear()
        for strobe in left:
            strobe.stop()
        touched = [n for n in ctx.cluster.nodes
                   if ctx.cluster.clock_offset(n) != 0.0]  # type: ignore[attr-defined]
        for n in touched:
            _set(ctx, n, 0.0)
        return {"reset": touched} if touched or left else None

    def describe(self, value: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
        offsets = value.get("offsets")
        if not isinstance(offsets, Mapping) or not offsets:
            return None
        moved = value.get("moved") or []
        which = "wall clock" if list(moved) == ["realtime"] else f"clocks ({', '.join(moved)})"
        shown = ", ".join(f"{n} {float(s):+g} s" for n, s in sorted(offsets.items()))
        mode = value.get("mode")
        if mode == "strobe":
            text = (f"strobed the {which} of {shown} (flipping to and from the offset every "
                    f"{value.get('period_ms')} ms)")
        elif mode == "skew":
            text = f"skewed every node's {which}: {shown}"
        else:
            text = f"stepped the {which} of {shown}"
        if "monotonic" in moved:
            return text + "; the monotonic clock moved: the leases' bounded-drift assumption broke"
        return text + "; monotonic clocks untouched (bounded-drift assumption holds)"


KIND = Clock()
