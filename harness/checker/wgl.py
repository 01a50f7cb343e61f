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
memoized, so no configuration is searched twice.

Representation, so that a partition of 100,000 ops costs about as much per
step as one of 100: the linearized set is a *window*, ``(lo, Lr)`` with
``lo`` the first op (in invocation order) not linearized and ``Lr`` the
bitset of the linearized ops from ``lo`` on (bit ``i`` is op ``lo + i``).
Every op before ``lo`` is linearized, so that prefix is one int however long
it is, and the memo key (``Lr``, ``lo`` and the state id packed in one int)
is as small as the window of concurrent ops. Linearizing ``lo`` itself shifts
the window past the run of linearized ops after it. Nothing per step is O(ops): no per-op bit masks,
no state ids shifted past the whole partition. The search stack is a chain
of tuples, each pointing at the one below, so the longest prefix reached
(the counterexample) is kept by reference, not copied at every new depth.
The memo and the model-step caches are the only structures that grow with
the search; :meth:`Search.memory_bytes` estimates them, and the caller
bounds that in bytes.

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
* **retired indeterminate ops.** With the model's ``results`` (the states an
  op leads to, whatever the state before: a write's or a cas's new value)
  and ``requires`` (the one state an op is legal in, :data:`ANY_STATE` or
  :data:`FREE`), an indeterminate op ``B`` has *observers*: the other ops,
  neither blind nor free, that may be legal in a state ``B`` leads to. Once
  every observer is linearized, ``B`` is retired as "never took effect", a
  step that leaves the state alone: any linearization that places ``B``
  later has only free ops after it until a blind op or the end (an observer
  would have to come after it), and removing ``B`` from it changes no op's
  legality or result. An op with no observers at all is dropped at once. So
  a long history's timed-out writes that nobody read stop being candidates
  at every later step, which is what kept the candidate list (and the memo)
  growing with the partition. Partitions under ``_RETIRE_MIN_OPS`` skip it:
  there finding the observers costs more than it saves.

Indeterminate ops have no return entry: they may take effect at any point
after their call, or never. The search succeeds when every ``ok`` op is
linearized.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

from harness.checker.models import ANY_STATE, FREE, INCONSISTENT

__all__ = ["ILLEGAL", "OK", "RUNNING", "Entry", "Search"]

RUNNING = 0
OK = 1
ILLEGAL = 2

# Bytes per structure, for :meth:`Search.memory_bytes`: measured with tracemalloc on
# register partitions (a memo entry is an int in a set; a cache entry an int key and a
# tuple in a dict; per op, the arrays and flags), rounded up.
_SEEN_BYTES = 80
_CACHE_BYTES = 130
_STATE_BYTES = 150
_STACK_BYTES = 90
_OP_BYTES = 100
_RETIRED = -2
"""The stack's ``alt`` of a retired indeterminate op (an eager step is -1)."""
_RETIRE_MIN_OPS = 500
"""Partitions smaller than this retire nothing: finding the observers costs more than
it saves there (the search of a few hundred ops never grows a long candidate list).
The property tests set it to 0, so the brute-force comparison covers retirement."""
_ARRAY_MIN_OPS = 2048
_CACHE_CAP = 1 << 15
"""Model-step cache entries kept before the caches are emptied: they only save calls of
``step``, so dropping them is always exact, and without a cap a million-op check spent
half its memory remembering steps it would never take again."""


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

    def __init__(self, model: Any, entries: Sequence[Entry]):
        self.model = model
        # The event list is built in call order; the caller's list is kept as it is (not
        # copied: a long partition's list is megabytes) unless it must be sorted.
        ents = entries if isinstance(entries, list) else list(entries)
        if any(a.call > b.call for a, b in itertools.pairwise(ents)):
            ents = sorted(ents, key=lambda e: e.call)
        if len(ents) >= _RETIRE_MIN_OPS:
            ents, obs_of, cnt = _observers(model, ents)
        else:
            obs_of, cnt = {}, {}
        # What the search needs of each entry, without the Entry tuples: the caller may
        # drop those (a million-op check keeps 72 bytes an op less).
        self.ops: list[Any] = [e.op for e in ents]
        self.op_ids = array("q", [e.op_id for e in ents])
        self.dropped_unobserved = len(entries) - len(ents)
        n = len(ents)
        self.n = n
        self.obs_of, self.cnt = obs_of, cnt
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
        ro = bytearray(n)
        resets = bytearray(n)
        blind = bytearray(n)
        has_ret = bytearray(n)
        # Large partitions keep these in arrays (8 bytes a slot, no int object each);
        # small ones in lists, which index faster.
        seq: Any = array if n >= _ARRAY_MIN_OPS else _list
        prereq = seq("q", [-1]) * n
        evpos = seq("q", [big]) * m
        rets: list[tuple[int, int]] = []
        last_in_group: dict[Hashable, int] = {}
        for k, e in enumerate(ents):
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
                        prereq[k] = prev
                    last_in_group[gk] = k
        self.ro, self.resets, self.has_ret, self.prereq, self.evpos = (
            ro, resets, has_ret, prereq, evpos)
        self.blind = blind
        # Memo tables keyed by ``s * n + k`` (state id, op): one dict, not one per op,
        # because building n dicts dominated small searches.
        self.reach: dict[int, bool] = {}
        # The event list: entries arrive in call order, so merge calls with sorted returns.
        rets.sort()
        nxt = seq("q", [-1]) * m
        prv = seq("q", [-1]) * m
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
        self.tables: dict[int, tuple[int, ...]] = {}
        self.s = self._intern(model.init())
        # The linearized set: inL per op, and the window (lo, Lr) the memo keys use.
        self.inL = bytearray(n)
        self.lo = 0
        self.Lr = 0
        self.retire_q: list[int] = []
        self.remaining = sum(has_ret)
        # (op k, previous state, alt or -1 if eager or _RETIRED, the node below): a chain, so the
        # deepest prefix reached is kept by reference.
        self.stack: list[tuple[int, int, int, Any]] = []
        self.seen: set[int] = set()
        self.lo_bits = (n + 1).bit_length()  # memo key: ((Lr << lo_bits | lo) << 40) | state
        self.alt = 0
        self.steps = 0
        self.status = RUNNING
        self.best_len = -1
        self.best: tuple[Any, list[int], int] | None = None
        self.cache_resets = 0
        self.released = False
        self.n_seen = 0
        self.dead_k = -1
        _, dead = self._close()
        self.e = self.nxt[head]
        if dead:
            self._record_best(self.dead_k)
            self.status = ILLEGAL
        elif self.remaining == 0:
            self.status = OK

    # ------------------------------------------------------------------ helpers

    def _intern(self, state: Any) -> int:
        sid = self.state_ids.get(state)
        if sid is None:
            sid = len(self.states)
            if sid >= 1 << 40:  # the memo key holds 40 bits of state id
                raise MemoryError("more than 2**40 distinct states")
            self.states.append(state)
            self.state_ids[state] = sid
        return sid

    def _compute(self, k: int, s: int) -> tuple[int, ...]:
        state = self.states[s]
        op = self.ops[k]
        out: tuple[int, ...]
        if self._successors is not None:
            out = tuple(self._intern(x) for x in self._successors(state, op))
        else:
            r = self._step(state, op)
            out = () if r is INCONSISTENT else (self._intern(r),)
        tables = self.tables
        if len(tables) >= _CACHE_CAP:
            tables.clear()
            self.reach.clear()
            self.cache_resets += 1
        tables[s * self.n + k] = out
        return out

    def _window_with(self, k: int) -> tuple[int, int]:
        """The window ``(lo, Lr)`` once op ``k`` (not linearized yet) is added."""
        lo = self.lo
        if k == lo:
            x = self.Lr | 1
            t = (x ^ (x + 1)).bit_length() - 1  # the run of linearized ops from lo on
            return lo + t, x >> t
        return lo, self.Lr | (1 << (k - lo))

    def _push_eager(self, k: int, s: int, kind: int = -1) -> None:
        """Linearize (or retire) k with no choice: _window_with, _lift and _mark in one
        frame, since small checks spend a good part of their time here."""
        lo = self.lo
        if k == lo:
            x = self.Lr | 1
            t = (x ^ (x + 1)).bit_length() - 1
            self.lo, self.Lr = lo + t, x >> t
        else:
            self.Lr |= 1 << (k - lo)
        self.inL[k] = 1
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
            self.remaining -= 1
        if self.obs_of:
            self._count_down(k)
        stack = self.stack
        stack.append((k, s, kind, stack[-1] if stack else None))

    def _count_down(self, k: int) -> None:
        """Op k is linearized: the indeterminate ops it observes have one observer less
        left; those with none left are queued for retirement."""
        obs = self.obs_of.get(k)
        if obs is not None:
            cnt = self.cnt
            for b in obs:
                cnt[b] -= 1
                if cnt[b] == 0:
                    self.retire_q.append(b)

    def _close(self) -> tuple[int, bool]:
        """Linearize every legal read-only candidate now, retire what nobody can observe,
        and look for a dead end.

        Returns (how many were linearized or retired, dead). *Dead*: some
        remaining read-only op cannot become legal from here through ops that
        do not ``reset`` the state (by the model's ``may_reach``; without one,
        it is illegal now and only resets change the state), and it returned
        before any remaining resetting op was invoked, so it must be
        linearized before every reset. Then no extension of this prefix works.
        """
        nxt, prv, ro, tables, s = self.nxt, self.prv, self.ro, self.tables, self.s
        resets, has_ret, reach = self.resets, self.has_ret, self.reach
        inL, obs_of, stack = self.inL, self.obs_of, self.stack
        sn = s * self.n
        count = 0
        e = nxt[self.head]
        while e >= 0 and not e & 1:
            k = e >> 1
            if ro[k]:
                succ = tables.get(sn + k)
                if succ is None:
                    succ = self._compute(k, s)
                if succ:  # _push_eager, inlined (hot)
                    lo = self.lo
                    if k == lo:
                        x = self.Lr | 1
                        t = (x ^ (x + 1)).bit_length() - 1
                        self.lo, self.Lr = lo + t, x >> t
                    else:
                        self.Lr |= 1 << (k - lo)
                    inL[k] = 1
                    p_, q_ = prv[e], nxt[e]
                    nxt[p_] = q_
                    if q_ >= 0:
                        prv[q_] = p_
                    if has_ret[k]:
                        p_, q_ = prv[e + 1], nxt[e + 1]
                        nxt[p_] = q_
                        if q_ >= 0:
                            prv[q_] = p_
                        self.remaining -= 1
                    if obs_of:
                        self._count_down(k)
                    stack.append((k, s, -1, stack[-1] if stack else None))
                    count += 1
                    e = nxt[prv[e]]  # a lifted entry keeps its links: resume after its predecessor
                    continue
            e = nxt[e]
        q = self.retire_q
        if q:
            inL, cnt = self.inL, self.cnt
            while q:
                b = q.pop()
                if not inL[b] and cnt[b] == 0:
                    self._push_eager(b, s, _RETIRED)
                    count += 1
        # Read-only ops up to the first remaining reset's invocation must all stay reachable.
        evpos = self.evpos
        must_ret = -1
        must_k = -1
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
                                must_k = k
                elif resets[k]:
                    break
            elif must_ret >= 0 and evpos[e] >= must_ret:
                self.dead_k = must_k
                return count, True
            e = nxt[e]
        return count, False

    def _reach(self, k: int, s: int) -> bool:
        mr = self._may_reach
        if mr is not None:
            r = bool(mr(self.states[s], self.ops[k]))
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

    def _record_best(self, dead_k: int = -1) -> None:
        """Keep the deepest prefix reached, with what could not come next (the
        candidates, and ``dead_k``: a read that can no longer become legal)."""
        depth = len(self.stack)
        if depth > self.best_len:
            self.best_len = depth
            top = self.stack[-1] if self.stack else None
            blocked = [ev >> 1 for ev in self._candidates()]
            if dead_k >= 0:
                blocked.append(dead_k)
            self.best = (top, blocked, self.s)

    def _pop_choice(self) -> tuple[int, int, int]:
        """Undo the eager steps on top, then the choice under them; returns that choice."""
        stack = self.stack
        while True:
            k, s, alt, _ = stack.pop()
            self._undo(k)
            if alt >= 0:
                self.s = s
                return k, s, alt

    def _undo_to_choice(self) -> None:
        """Pop the eager steps on top of the stack (they were not choices)."""
        stack = self.stack
        while stack and stack[-1][2] < 0:
            self._undo(stack.pop()[0])

    def _undo(self, k: int) -> None:
        """_unlift and _unmark in one frame (the inverse of :meth:`_push_eager`)."""
        nxt, prv = self.nxt, self.prv
        c = 2 * k
        if self.has_ret[k]:
            r = c + 1
            p, q = prv[r], nxt[r]
            nxt[p] = r
            if q >= 0:
                prv[q] = r
            self.remaining += 1
        p, q = prv[c], nxt[c]
        nxt[p] = c
        if q >= 0:
            prv[q] = c
        self.inL[k] = 0
        lo = self.lo
        if k > lo:
            self.Lr ^= 1 << (k - lo)
        else:  # every op from k to lo was linearized: k becomes the window's start
            d = lo - k
            self.Lr = (self.Lr << d) | ((1 << d) - 2)
            self.lo = k
        if self.obs_of:
            obs = self.obs_of.get(k)
            if obs is not None:
                cnt = self.cnt
                for b in obs:
                    cnt[b] += 1

    # ------------------------------------------------------------------ the search

    def run(self, budget: int) -> int:
        """Search for at most ``budget`` steps; returns RUNNING, OK or ILLEGAL."""
        if self.status != RUNNING:
            return self.status
        nxt, prv, prereq, tables = self.nxt, self.prv, self.prereq, self.tables
        n = self.n
        obs_of = self.obs_of
        seen, stack, has_ret = self.seen, self.stack, self.has_ret
        head = self.head
        inL = self.inL
        lo_bits = self.lo_bits
        e, alt, s = self.e, self.alt, self.s
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
                if (pre >= 0 and not inL[pre]) or (after_pending and blind[k]):
                    e = nxt[e]
                    alt = 0
                    continue
                succ = tables.get(s * n + k)
                if succ is None:
                    succ = self._compute(k, s)
                moved = False
                if succ:  # the window with k added (as _window_with, inlined: hot)
                    lo2 = self.lo
                    if k == lo2:
                        x = self.Lr | 1
                        t = (x ^ (x + 1)).bit_length() - 1
                        lo2 += t
                        lr2 = x >> t
                    else:
                        lr2 = self.Lr | (1 << (k - lo2))
                while alt < len(succ):
                    ns = succ[alt]
                    key = ((lr2 << lo_bits | lo2) << 40) | ns
                    if key in seen:
                        alt += 1
                        continue
                    seen.add(key)
                    stack.append((k, s, alt, stack[-1] if stack else None))
                    # _lift and _mark, inlined (hot)
                    c = 2 * k
                    p_, q_ = prv[c], nxt[c]
                    nxt[p_] = q_
                    if q_ >= 0:
                        prv[q_] = p_
                    if has_ret[k]:
                        p_, q_ = prv[c + 1], nxt[c + 1]
                        nxt[p_] = q_
                        if q_ >= 0:
                            prv[q_] = p_
                        self.remaining -= 1
                    inL[k] = 1
                    self.lo, self.Lr = lo2, lr2
                    if obs_of:
                        self._count_down(k)
                    self.s = ns
                    count, dead = self._close()
                    dead_k = self.dead_k if dead else -1
                    if count and not dead:
                        key2 = ((self.Lr << lo_bits | self.lo) << 40) | ns
                        if key2 in seen:
                            dead = True
                        else:
                            seen.add(key2)
                    if dead:
                        if dead_k >= 0 and len(stack) > self.best_len:
                            self._record_best(dead_k)
                        k, s, alt = self._pop_choice()
                        lo2, lr2 = self._window_with(k)
                        alt += 1
                        continue
                    s = ns
                    after_pending = not count and not has_ret[k]
                    moved = True
                    break
                if moved:
                    if self.remaining == 0:
                        status = OK
                        break
                    e = nxt[head]
                    alt = 0
                else:
                    e = nxt[e]
                    alt = 0
            else:
                # A return whose op is not linearized: the prefix is a dead end.
                self.s = s
                self._record_best()
                self._undo_to_choice()
                if not stack:
                    status = ILLEGAL
                    break
                k, s, alt = self._pop_choice()
                after_pending = self._after_pending()
                e = 2 * k
                alt += 1
        self.e, self.alt, self.s = e, alt, s
        self.steps += steps
        self.status = status
        return status

    def _after_pending(self) -> bool:
        """Was the last step an indeterminate op chosen, with no eager step after it?"""
        stack = self.stack
        return bool(stack) and stack[-1][2] >= 0 and not self.has_ret[stack[-1][0]]

    # ------------------------------------------------------------------ results

    @property
    def states_explored(self) -> int:
        return self.n_seen if self.released else len(self.seen)

    def release(self) -> None:
        """Drop the memo, the caches, the event list and the stack once the search has
        passed (its stats stay readable; :meth:`linearization` is empty after it)."""
        if self.released:
            return
        self.n_seen = len(self.seen)
        self.released = True
        self.seen = set()
        self.tables = {}
        self.reach = {}
        self.nxt = self.prv = self.evpos = array("q")
        self.stack = []  # the linearization is not kept: nothing reads it after a pass

    def memory_bytes(self) -> int:
        """An estimate of what this search holds, in bytes: per op, the memo, the step
        caches, the interned states and the stack (constants measured with tracemalloc).
        """
        if self.released:
            return 0
        return (self.n * _OP_BYTES + len(self.seen) * _SEEN_BYTES
                + (len(self.tables) + len(self.reach)) * _CACHE_BYTES
                + len(self.states) * _STATE_BYTES + len(self.stack) * _STACK_BYTES)

    def _chain(self, node: Any) -> list[int]:
        out = []
        while node is not None:
            out.append(node[0])
            node = node[3]
        out.reverse()
        return out

    def linearization(self) -> list[int]:
        """The op ids in linearization order (after OK; eager and chosen alike).

        Retired indeterminate ops ("never took effect") are left out."""
        return [self.op_ids[k] for k, _, alt, _ in self.stack if alt != _RETIRED]

    def counterexample(self) -> dict[str, Any]:
        """The longest linearizable prefix found and what could not come next."""
        if self.best is None:
            self._record_best()
        assert self.best is not None
        top, blocked, s = self.best
        return {
            "linearized_prefix": [self.op_ids[k] for k in self._chain(top)],
            "could_not_place": sorted({self.op_ids[k] for k in blocked}),
            "state": self.model.describe(self.states[s]),
        }


def _observers(
    model: Any, ents: list[Entry]
) -> tuple[list[Entry], dict[int, list[int]], dict[int, int]]:
    """Which indeterminate ops each op observes, and how many observers each has.

    Returns the entries without the indeterminate ops nobody can observe (they
    are "never took effect" for free: see the module docstring), ``obs_of``
    (op -> indeterminate ops it observes, new positions) and ``cnt``
    (indeterminate op -> observers not yet linearized). Models without
    ``results`` and ``requires`` get empty maps: nothing is ever retired.
    """
    results_fn = getattr(model, "results", None)
    requires_fn = getattr(model, "requires", None)
    blind_fn = getattr(model, "blind", None)
    if results_fn is None or requires_fn is None:
        return ents, {}, {}
    by_state: dict[Hashable, list[int]] = {}
    targets: list[int] = []
    for k, e in enumerate(ents):
        if e.ret is None:
            res = results_fn(e.op)
            if res is None:
                continue
            try:
                for st in res:
                    by_state.setdefault(st, []).append(k)
            except TypeError:
                continue
            targets.append(k)
    if not targets:
        return ents, {}, {}
    target_set = set(targets)
    observes: dict[int, set[int]] = {}
    n_any = 0
    for k, e in enumerate(ents):
        op = e.op
        if blind_fn is not None and blind_fn(op):
            continue
        req = requires_fn(op)
        if req is FREE:
            continue
        if req is ANY_STATE:
            got = target_set
            n_any += 1
            if n_any * len(targets) > 1_000_000:
                return ents, {}, {}  # too many to track: retire nothing, exactly as before
        else:
            try:
                got = set(by_state.get(req, ()))
            except TypeError:
                got = target_set
        got = got - {k}
        if got:
            observes[k] = got
    counts = dict.fromkeys(targets, 0)
    for got in observes.values():
        for b in got:
            counts[b] += 1
    # Dropping an op also drops it as an observer, which may free another: to a fixpoint.
    drop: set[int] = set()
    fresh = [b for b, c in counts.items() if c == 0]
    while fresh:
        drop.update(fresh)
        nxt_fresh = []
        for b in fresh:
            for b2 in observes.get(b, ()):
                counts[b2] -= 1
                if counts[b2] == 0 and b2 not in drop:
                    nxt_fresh.append(b2)
        fresh = nxt_fresh
    if drop:
        ents = [e for k, e in enumerate(ents) if k not in drop]
    new_pos: dict[int, int] = {}
    j = 0
    for k in range(len(ents) + len(drop)):
        if k in drop:
            continue
        new_pos[k] = j
        j += 1
    obs_of = {new_pos[k]: [new_pos[b] for b in sorted(got) if b not in drop]
              for k, got in observes.items() if k not in drop}
    obs_of = {k: v for k, v in obs_of.items() if v}
    cnt = {new_pos[b]: c for b, c in counts.items() if b not in drop}
    return ents, obs_of, cnt


def _list(_typecode: str, items: list[int]) -> list[int]:
    """``array(typecode, items)``'s stand-in for small partitions: a plain list."""
    return items


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
