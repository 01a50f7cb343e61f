"""The search engine of the linearizability checker: Wing & Gong with Lowe's improvements.

One :class:`Search` checks one partition. It is *resumable*: ``run(budget)``
takes at most ``budget`` steps and returns, so the caller can run many
partitions round-robin and stop all of them as soon as one is illegal, the
way Porcupine cancels its other goroutines.

The algorithm (Lowe, "Testing for linearizability", 2017; Porcupine): the
history is a doubly linked list of call and return entries in real-time
order. An op whose call comes before the first remaining return may be
linearized next; doing so "lifts" its entries out of the list. Reaching a
return whose call is still in the list means the current prefix is a dead
end: backtrack. ``(linearized set, state)`` pairs already explored are
memoized (the linearized set is an int bitset), so no configuration is
searched twice.

Reductions on top, each exact; ``tests/checker/test_linearizable_properties.py``
checks them against a brute-force checker on random histories:

* **eager read-only steps.** An op that is legal now and, by the model's
  ``read_only``, can never change the state, is linearized at once with no
  backtracking point. Any linearization from here that places it later can
  move it to the front: it is a candidate, so nothing pending must precede
  it; it is legal now; and removing it from its old slot changes no state.
  (Only "read-only whenever legal" counts: a write that happens to rewrite
  the current value must not be moved, and a test shows why.)
* **indeterminate read-only ops are dropped** (done by the caller): "never
  took effect" is always allowed and such an op could not change anything.
* **interchangeable indeterminate ops.** Indeterminate ops with the same
  ``f`` and value never return, so once both are invoked they are
  interchangeable; only the earliest-invoked unlinearized one of such a
  group is tried, which keeps the search from exploring each permutation.
* **no unseen indeterminate effects.** Right after an indeterminate op that
  no read-only op observed, a *blind* op (model ``blind``: a write, a put;
  legal anywhere, same result anywhere) is not tried: it would erase the
  indeterminate op's effect unseen, and leaving that op out ("never")
  reaches the same configuration from the one before it. This is what makes
  the Jepsen etcd logs, full of timed-out writes, cheap.
* **dead prefixes.** A remaining read-only op that cannot become legal from
  the current state without a *resetting* op (model ``resets`` and
  ``may_reach``; by default every op that is not read-only resets, and
  "reachable" means "legal now"), and that returned before any remaining
  resetting op was invoked, must be linearized before every reset: so the
  prefix is dead now, not only once that op's return is reached. For a KV
  store only puts reset and a get stays reachable while the value is a
  prefix of what it read, which cuts the append orders that no read saw.

Indeterminate ops have no return entry: they may take effect at any point
after their call, or never. The search succeeds when every ``ok`` op is
linearized.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

from harness.checker.models import INCONSISTENT

__all__ = ["ILLEGAL", "OK", "RUNNING", "Entry", "Search"]

RUNNING = 0
OK = 1
ILLEGAL = 2


class Entry(NamedTuple):
    """One op of a partition as the search sees it.

    ``ret`` is ``None`` for an indeterminate op. ``call``/``ret`` are
    positions in the history (its real-time order). ``op_id`` names the op
    in reports (the invocation's index).
    """

    op_id: int
    call: int
    ret: int | None
    op: Any


class Search:
    """A resumable search for a linearization of ``entries`` against ``model``."""

    def __init__(self, model: Any, entries: Sequence[Entry], *, max_states: int | None = None):
        self.model = model
        self.entries = list(entries)
        if any(a.call > b.call for a, b in zip(self.entries, self.entries[1:], strict=False)):
            self.entries.sort(key=lambda e: e.call)  # the event list is built in call order
        n = len(self.entries)
        self.n = n
        self.max_states = max_states
        self._step = model.step
        self._successors = getattr(model, "successors", None)
        ro_fn = getattr(model, "read_only", None)
        resets_fn = getattr(model, "resets", None)
        blind_fn = getattr(model, "blind", None)
        self._may_reach = getattr(model, "may_reach", None)
        big = 1 << 62
        m = 2 * n + 1
        head = 2 * n
        self.head = head
        ro = [False] * n
        resets = [False] * n
        blind = [False] * n
        has_ret = [False] * n
        prereq = [0] * n
        evpos = [big] * m
        self.bit = [1 << k for k in range(n)]
        rets: list[tuple[int, int]] = []
        last_in_group: dict[Hashable, int] = {}
        for k, e in enumerate(self.entries):
            op = e.op
            r = bool(ro_fn(op)) if ro_fn is not None else False
            ro[k] = r
            resets[k] = bool(resets_fn(op)) if resets_fn is not None else not r
            blind[k] = bool(blind_fn(op)) if blind_fn is not None else False
            evpos[2 * k] = e.call
            if e.ret is not None:
                has_ret[k] = True
                evpos[2 * k + 1] = e.ret
                rets.append((e.ret, 2 * k + 1))
            else:
                # Interchangeable indeterminate ops: op k may be tried only after
                # the previous member of its group is linearized.
                gk = _group_key(op)
                if gk is not None:
                    prev = last_in_group.get(gk)
                    if prev is not None:
                        prereq[k] = 1 << prev
                    last_in_group[gk] = k
        self.ro, self.resets, self.has_ret, self.prereq, self.evpos = (
            ro, resets, has_ret, prereq, evpos)
        self.blind = blind
        # Memo tables keyed by ``s * n + k`` (state id, op): one dict, not one per op,
        # because building n dicts dominated small searches.
        self.reach: dict[int, bool] = {}
        # The event list: entries arrive in call order, so merge calls with sorted returns.
        rets.sort()
        nxt = [-1] * m
        prv = [-1] * m
        prev_ev = head
        ri = 0
        nr = len(rets)
        for k in range(n):
            c = evpos[2 * k]
            while ri < nr and rets[ri][0] < c:
                ev = rets[ri][1]
                nxt[prev_ev] = ev
                prv[ev] = prev_ev
                prev_ev = ev
                ri += 1
            ev = 2 * k
            nxt[prev_ev] = ev
            prv[ev] = prev_ev
            prev_ev = ev
        while ri < nr:
            ev = rets[ri][1]
            nxt[prev_ev] = ev
            prv[ev] = prev_ev
            prev_ev = ev
            ri += 1
        self.nxt, self.prv = nxt, prv
        # State interning: states are hashable values; the search uses ints.
        self.states: list[Any] = []
        self.state_ids: dict[Any, int] = {}
        self.shifted: list[int] = []
        self.tables: dict[int, tuple[int, ...]] = {}
        self.s = self._intern(model.init())
        self.L = 0
        self.remaining = sum(self.has_ret)
        self.stack: list[tuple[int, int, int]] = []  # (op k, previous state, alt or -1 if eager)
        self.seen: set[int] = set()
        self.alt = 0
        self.steps = 0
        self.status = RUNNING
        self.best_len = -1
        self.best: tuple[list[int], list[int], int] | None = None
        self.out_of_states = False
        _, dead = self._close()
        self.e = self.nxt[head]
        if dead:
            self._record_best()
            self.status = ILLEGAL
        elif self.remaining == 0:
            self.status = OK

    # ------------------------------------------------------------------ helpers

    def _intern(self, state: Any) -> int:
        sid = self.state_ids.get(state)
        if sid is None:
            sid = len(self.states)
            self.states.append(state)
            self.state_ids[state] = sid
            self.shifted.append(sid << self.n)
        return sid

    def _compute(self, k: int, s: int) -> tuple[int, ...]:
        state = self.states[s]
        op = self.entries[k].op
        out: tuple[int, ...]
        if self._successors is not None:
            out = tuple(self._intern(x) for x in self._successors(state, op))
        else:
            r = self._step(state, op)
            out = () if r is INCONSISTENT else (self._intern(r),)
        self.tables[s * self.n + k] = out
        return out

    def _lift(self, k: int) -> None:
        nxt, prv = self.nxt, self.prv
        c = 2 * k
        p, q = prv[c], nxt[c]
        nxt[p] = q
        if q >= 0:
            prv[q] = p
        if self.has_ret[k]:
            r = c + 1
            p, q = prv[r], nxt[r]
            nxt[p] = q
            if q >= 0:
                prv[q] = p

    def _unlift(self, k: int) -> None:
        nxt, prv = self.nxt, self.prv
        c = 2 * k
        if self.has_ret[k]:
            r = c + 1
            p, q = prv[r], nxt[r]
            nxt[p] = r
            if q >= 0:
                prv[q] = r
        p, q = prv[c], nxt[c]
        nxt[p] = c
        if q >= 0:
            prv[q] = c

    def _close(self) -> tuple[int, bool]:
        """Linearize every legal read-only candidate now, and look for a dead end.

        Returns (how many were linearized, dead). *Dead*: some remaining
        read-only op cannot become legal from here through ops that do not
        ``reset`` the state (by the model's ``may_reach``; without one, it is
        illegal now and only resets change the state), and it returned before
        any remaining resetting op was invoked, so it must be linearized
        before every reset. Then no extension of this prefix works.
        """
        nxt, prv, ro, tables, s = self.nxt, self.prv, self.ro, self.tables, self.s
        resets, has_ret, reach = self.resets, self.has_ret, self.reach
        sn = s * self.n
        count = 0
        e = nxt[self.head]
        while e >= 0 and not e & 1:
            k = e >> 1
            if ro[k]:
                succ = tables.get(sn + k)
                if succ is None:
                    succ = self._compute(k, s)
                if succ:
                    self._lift(k)
                    self.L |= self.bit[k]
                    self.remaining -= has_ret[k]
                    self.stack.append((k, s, -1))
                    count += 1
                    e = nxt[prv[e]]  # a lifted entry keeps its links: resume after its predecessor
                    continue
            e = nxt[e]
        # Read-only ops up to the first remaining reset's invocation must all stay reachable.
        evpos = self.evpos
        must_ret = -1
        e = nxt[self.head]
        while e >= 0:
            if not e & 1:
                k = e >> 1
                if ro[k]:
                    if has_ret[k]:
                        r = reach.get(sn + k)
                        if r is None:
                            r = self._reach(k, s)
                        if not r:
                            pos = evpos[e + 1]
                            if must_ret < 0 or pos < must_ret:
                                must_ret = pos
                elif resets[k]:
                    break
            elif must_ret >= 0 and evpos[e] >= must_ret:
                return count, True
            e = nxt[e]
        return count, False

    def _reach(self, k: int, s: int) -> bool:
        mr = self._may_reach
        if mr is not None:
            r = bool(mr(self.states[s], self.entries[k].op))
        else:
            succ = self.tables.get(s * self.n + k)
            r = bool(succ if succ is not None else self._compute(k, s))
        self.reach[s * self.n + k] = r
        return r

    def _candidates(self) -> list[int]:
        out = []
        e = self.nxt[self.head]
        while e >= 0:
            out.append(e)
            if e & 1:
                break
            e = self.nxt[e]
        return out

    def _record_best(self) -> None:
        depth = len(self.stack)
        if depth > self.best_len:
            self.best_len = depth
            prefix = [k for k, _, _ in self.stack]
            blocked = [ev >> 1 for ev in self._candidates()]
            self.best = (prefix, blocked, self.s)

    # ------------------------------------------------------------------ the search

    def run(self, budget: int) -> int:
        """Search for at most ``budget`` steps; returns RUNNING, OK or ILLEGAL."""
        if self.status != RUNNING:
            return self.status
        nxt, bit, prereq, tables = self.nxt, self.bit, self.prereq, self.tables
        n = self.n
        seen, stack, has_ret = self.seen, self.stack, self.has_ret
        head = self.head
        max_states = self.max_states
        e, alt, s, L = self.e, self.alt, self.s, self.L
        shifted = self.shifted
        blind = self.blind
        # Just after an indeterminate op that no read-only op observed, a blind op
        # (one that ignores the state) would erase its effect unseen: skipping the
        # indeterminate op ("never") reaches the same state, and that branch is
        # explored from the configuration before it. So blind ops are not tried here.
        after_pending = self._after_pending()
        steps = 0
        status = RUNNING
        while steps < budget:
            steps += 1
            if not e & 1:
                k = e >> 1
                pre = prereq[k]
                if (pre and not L & pre) or (after_pending and blind[k]):
                    e = nxt[e]
                    alt = 0
                    continue
                succ = tables.get(s * n + k)
                if succ is None:
                    succ = self._compute(k, s)
                    shifted = self.shifted
                nL = L | bit[k]
                moved = False
                while alt < len(succ):
                    ns = succ[alt]
                    key = nL | shifted[ns]
                    if key in seen:
                        alt += 1
                        continue
                    seen.add(key)
                    stack.append((k, s, alt))
                    self._lift(k)
                    self.remaining -= has_ret[k]
                    self.s, self.L = ns, nL
                    count, dead = self._close()
                    shifted = self.shifted
                    if count and not dead:
                        key2 = self.L | shifted[ns]
                        if key2 in seen:
                            dead = True
                        else:
                            seen.add(key2)
                    if dead:
                        self._undo_to_choice()
                        k, s, alt = stack.pop()
                        self._unlift(k)
                        L = self.L = self.L ^ bit[k]
                        self.s = s
                        self.remaining += has_ret[k]
                        alt += 1
                        continue
                    s, L = ns, self.L
                    after_pending = not count and not has_ret[k]
                    moved = True
                    break
                if moved:
                    if self.remaining == 0:
                        status = OK
                        break
                    if max_states is not None and len(seen) > max_states:
                        self.out_of_states = True
                        break
                    e = nxt[head]
                    alt = 0
                else:
                    e = nxt[e]
                    alt = 0
            else:
                # A return whose op is not linearized: the prefix is a dead end.
                self.s, self.L = s, L
                self._record_best()
                self._undo_to_choice()
                if not stack:
                    status = ILLEGAL
                    break
                k, s, alt = stack.pop()
                self._unlift(k)
                L = self.L = self.L ^ bit[k]
                self.s = s
                self.remaining += has_ret[k]
                after_pending = self._after_pending()
                e = 2 * k
                alt += 1
        self.e, self.alt, self.s, self.L = e, alt, s, L
        self.steps += steps
        self.status = status
        return status

    def _after_pending(self) -> bool:
        """Was the last step an indeterminate op chosen, with no eager step after it?"""
        stack = self.stack
        return bool(stack) and stack[-1][2] >= 0 and not self.has_ret[stack[-1][0]]

    def _undo_to_choice(self) -> None:
        """Pop the eager steps on top of the stack (they were not choices)."""
        stack, bit, has_ret = self.stack, self.bit, self.has_ret
        L = self.L
        while stack and stack[-1][2] < 0:
            k, _, _ = stack.pop()
            self._unlift(k)
            L ^= bit[k]
            self.remaining += has_ret[k]
        self.L = L

    # ------------------------------------------------------------------ results

    @property
    def states_explored(self) -> int:
        return len(self.seen)

    def linearization(self) -> list[int]:
        """The op ids in linearization order (after OK; eager and chosen alike)."""
        return [self.entries[k].op_id for k, _, _ in self.stack]

    def counterexample(self) -> dict[str, Any]:
        """The longest linearizable prefix found and what could not come next."""
        if self.best is None:
            self._record_best()
        assert self.best is not None
        prefix, blocked, s = self.best
        return {
            "linearized_prefix": [self.entries[k].op_id for k in prefix],
            "could_not_place": sorted({self.entries[k].op_id for k in blocked}),
            "state": self.model.describe(self.states[s]),
        }


def _group_key(op: Any) -> Hashable | None:
    try:
        key = (op.f, _hashable(op.value))
        hash(key)
    except TypeError:
        return None
    return key


def _hashable(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted(((repr(k), _hashable(x)) for k, x in v.items())))
    return v
