"""``flaky``: chosen directed links misbehave: reset, sliced, throttled, cut after N bytes, or
silenced until they time out, on a share of connections (Toxiproxy toxics with toxicity).

A partition is clean: nothing gets through. Real links fail worse: a TCP
connection is reset mid-request (``reset_peer``), a message arrives in
one-byte pieces (``slicer``: exercises the reassembly of partial reads),
a connection closes after N bytes (``limit_data``: a half-sent reply),
bandwidth drops to a trickle (``bandwidth``), or the data stops and the
connection closes later (``timeout``). Each acts on one direction only
(``pairs`` lists ``[src, dst]``: what src sends to dst), so one node may hear
another that cannot hear it back, and ``toxicity`` is the share of connections
it acts on (Toxiproxy draws per connection), so some requests pass and others
do not: the mixed outcomes that retry and de-duplication logic mishandles.

A pair may name nodes by rule (``leader``, ``follower``...), resolved when the
fault starts. The draws go from mild to harsh, so Hypothesis shrinks a
failing schedule towards the mildest toxic that still fails.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from harness.nemesis.faults import FLAKY_TOXICS
from harness.nemesis.registry import BACKEND_PROXIES_LINKS, FaultContext, FaultKind

__all__ = ["ATTRIBUTES", "KIND", "TOXICITIES", "Flaky"]

#: each toxic's attributes, each a choice from mild to harsh (Toxiproxy's units:
#: ms for timeouts, bytes for sizes, µs for the slicer's delay, KB/s for bandwidth)
ATTRIBUTES: Mapping[str, Mapping[str, tuple[int, ...]]] = {
    "slicer": {"average_size": (64, 16, 1), "size_variation": (0, 8), "delay": (0, 100, 1000)},
    "bandwidth": {"rate": (100, 10, 1)},
    "limit_data": {"bytes": (65536, 4096, 256)},
    "reset_peer": {"timeout": (1000, 100, 0)},
    "timeout": {"timeout": (2000, 500, 0)},
}
#: the share of connections a toxic acts on, mild to harsh
TOXICITIES = (0.25, 0.5, 1.0)


def _fit(toxic: str, attributes: dict[str, int]) -> dict[str, int]:
    """A slicer's variation must stay below its average size (Toxiproxy would cut pieces of
    zero or negative length)."""
    if toxic == "slicer":
        attributes["size_variation"] = min(attributes["size_variation"],
                                           max(0, attributes["average_size"] - 1))
    return attributes


class Flaky(FaultKind):
    name = "flaky"
    order = 60
    exclusive = True
    needs = (BACKEND_PROXIES_LINKS,)
    label = "flaky link"
    ended = "removed"

    def draw(self, rng: random.Random, nodes: Sequence[str]) -> dict[str, Any]:
        toxic = rng.choice(FLAKY_TOXICS)
        attributes = _fit(toxic, {k: rng.choice(v) for k, v in ATTRIBUTES[toxic].items()})
        ordered = [[a, b] for a in nodes for b in nodes if a != b]
        pairs = rng.sample(ordered, rng.randint(1, max(1, len(nodes) - 1))) if ordered else []
        return {"toxic": toxic, "toxicity": rng.choice(TOXICITIES), "attributes": attributes,
                "pairs": sorted(pairs)}

    def strategy(self, nodes: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
        ordered = [[a, b] for a in nodes for b in nodes if a != b]
        if not ordered:  # one node has no link to make flaky
            return st.nothing()

        def of(toxic: str) -> st.SearchStrategy[dict[str, Any]]:
            attributes = st.fixed_dictionaries(
                {k: st.sampled_from(v) for k, v in ATTRIBUTES[toxic].items()}
            ).map(lambda a: _fit(toxic, dict(a)))
            return st.fixed_dictionaries({
                "toxic": st.just(toxic),
                "toxicity": st.sampled_from(TOXICITIES),
                "attributes": attributes,
                "pairs": st.lists(st.sampled_from(ordered), min_size=1,
                                  max_size=max(1, len(nodes) - 1),
                                  unique_by=lambda p: (p[0], p[1])).map(sorted),
            })

        return st.one_of(*(of(t) for t in FLAKY_TOXICS))

    def start(self, ctx: FaultContext, params: Mapping[str, Any]) -> dict[str, Any]:
        toxic = str(params.get("toxic", ""))
        if toxic not in ATTRIBUTES:
            raise ValueError(f"unknown flaky toxic {toxic!r}; known: {', '.join(ATTRIBUTES)}")
        raw = params.get("attributes") or {}
        if not isinstance(raw, Mapping):
            raise ValueError(f"a flaky fault's attributes must be an object, not {raw!r}")
        # every attribute the toxic has, given or not (a missing one is Toxiproxy's 0)
        attributes = _fit(toxic, {k: int(raw.get(k, 0)) for k in ATTRIBUTES[toxic]})
        pairs = []
        for pair in params.get("pairs") or ():
            src, dst = pair
            a = ctx.node(str(src))
            pairs.append((a, ctx.node(str(dst), exclude={a})))
        if not pairs:
            raise ValueError("a flaky fault names no link (params 'pairs': [[src, dst], ...])")
        return ctx.nemesis.flaky(pairs, toxic=toxic, attributes=attributes,
                                 toxicity=float(params.get("toxicity", 1.0)))

    def end(self, ctx: FaultContext, params: Mapping[str, Any],
            started: Mapping[str, Any]) -> dict[str, Any]:
        return ctx.nemesis.heal_network(started.get("added", ()))

    def describe(self, value: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
        if "toxic" not in value:
            return None
        attrs = value.get("attributes")
        shown = ", ".join(f"{k} {v}" for k, v in attrs.items()) if isinstance(attrs, Mapping) \
            else ""
        pairs = value.get("pairs")
        links = " ".join(f"{p[0]}→{p[1]}" for p in pairs if isinstance(p, list) and len(p) == 2) \
            if isinstance(pairs, list) else ""
        text = f"flaky {value['toxic']}"
        if shown:
            text += f" ({shown})"
        if "toxicity" in value:
            text += f" on {float(value['toxicity']):.0%} of connections"
        return text + (f" {links}" if links else " on no link")


KIND = Flaky()
