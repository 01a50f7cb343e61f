"""Applying planned faults to a running cluster, and healing them.

Network faults are toxics on the proxies of exactly the links a plan names:

* a cut link gets a ``timeout`` toxic with timeout 0 (data is held and dropped,
  like packets into a black hole) on the stream that carries the cut
  direction; removing it closes the connections it held (as a real Toxiproxy
  does), so healed nodes must reconnect, which is part of what is tested;
* latency is a ``latency`` toxic (with jitter) on both streams;
* a stall is a ``bandwidth`` toxic with rate 0;
* a flaky link gets one of the other toxics (reset_peer, slicer, limit_data,
  bandwidth, timeout) with a toxicity (the share of connections it acts on)
  on the stream that carries the chosen direction, as a cut does.

Process faults (kill, restart, pause, resume) go to the cluster backend.
Every method returns a JSON-ready description of exactly what it did, which
the runner records as the nemesis operation in the history, so a report can
shade it and a replay can repeat it.

Faults may overlap (a partition while nodes are killed and restarted), so a
network fault's description names the toxics it added (``added``) and
:meth:`Nemesis.heal_network` can remove exactly those: ending one fault must
not lift another that is still in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.cluster.backend import Cluster, Link
from harness.errors import HarnessError
from harness.nemesis.grudge import Grudge, cut_links

__all__ = ["FLAKY_TOXICS", "Nemesis", "NemesisError"]

CUT = "harness-cut"
SLOW = "harness-latency"
STALL = "harness-stall"
FLAKY = "harness-flaky"
#: the Toxiproxy toxics a flaky link may get
FLAKY_TOXICS = ("slicer", "bandwidth", "limit_data", "reset_peer", "timeout")


class NemesisError(HarnessError):
    """A fault could not be applied or healed."""


class Nemesis:
    """Applies faults to one cluster through its Toxiproxy and its backend."""

    def __init__(self, cluster: Cluster, *, timeout_s: float = 5.0) -> None:
        from harness.toxiproxy import ToxiproxyClient

        self.cluster = cluster
        self.tp = ToxiproxyClient(cluster.toxiproxy_url(), timeout_s=timeout_s)
        self._links: dict[tuple[str, str], list[Link]] = {}
        for link in cluster.links:
            self._links.setdefault((link.src, link.dst), []).append(link)
        self._toxics: set[tuple[str, str]] = set()  # (proxy, toxic name) we added
        self.paused: set[str] = set()
        self.killed: set[str] = set()

    def close(self) -> None:
        self.tp.close()

    # --- network -------------------------------------------------------------------

    def _add(self, proxy: str, name: str, kind: str, stream: str,
             attributes: Mapping[str, Any], added: list[str], *, toxicity: float = 1.0) -> None:
        self.tp.add_toxic(proxy, type=kind, name=name, stream=stream,
                          attributes=dict(attributes), toxicity=toxicity)
        self._toxics.add((proxy, name))
        added.append(f"{proxy}/{name}")

    def partition(self, grudge: Grudge) -> dict[str, Any]:
        """Cut every directed link the grudge names (dst drops what src sends)."""
        cuts = cut_links(grudge)
        applied: list[str] = []
        added: list[str] = []
        for src, dst in sorted(cuts):
            # src's traffic to dst flows upstream on src's proxy to dst, and
            # downstream (as replies) on dst's proxy to src
            for link in self._links.get((src, dst), []):
                self._add(link.name, f"{CUT}-up", "timeout", "upstream", {"timeout": 0}, added)
                applied.append(f"{link.name}/upstream")
            for link in self._links.get((dst, src), []):
                self._add(link.name, f"{CUT}-down", "timeout", "downstream", {"timeout": 0},
                          added)
                applied.append(f"{link.name}/downstream")
        return {"fault": "partition", "grudge": {k: sorted(v) for k, v in grudge.items()},
                "toxics": applied, "added": added}

    def directed(self, src: str, dst: str) -> list[tuple[Link, str]]:
        """The (proxy, stream) pairs that carry what ``src`` sends to ``dst``: upstream on
        src's proxies to dst, downstream (as replies) on dst's proxies to src."""
        return ([(lk, "upstream") for lk in self._links.get((src, dst), [])]
                + [(lk, "downstream") for lk in self._links.get((dst, src), [])])

    def flaky(self, pairs: Iterable[tuple[str, str]], *, toxic: str,
              attributes: Mapping[str, Any], toxicity: float = 1.0) -> dict[str, Any]:
        """Make each directed link ``(src, dst)`` flaky: what src sends to dst goes through
        one Toxiproxy ``toxic`` acting on a ``toxicity`` share of connections."""
        if toxic not in FLAKY_TOXICS:
            raise NemesisError(f"unknown flaky toxic {toxic!r}; known: {', '.join(FLAKY_TOXICS)}")
        if not 0.0 <= toxicity <= 1.0:
            raise NemesisError(f"toxicity {toxicity!r} is not between 0 and 1")
        applied: list[str] = []
        added: list[str] = []
        done: list[list[str]] = []
        for src, dst in pairs:
            for link, stream in self.directed(src, dst):
                self._add(link.name, f"{FLAKY}-{stream}", toxic, stream, attributes, added,
                          toxicity=toxicity)
                applied.append(f"{link.name}/{stream}")
            done.append([src, dst])
        return {"fault": "flaky", "toxic": toxic, "toxicity": toxicity,
                "attributes": dict(attributes), "pairs": done, "toxics": applied,
                "added": added}

    def latency(self, links: Iterable[Link], *, latency_ms: int, jitter_ms: int = 0
                ) -> dict[str, Any]:
        names = []
        added: list[str] = []
        for link in links:
            for stream in ("upstream", "downstream"):
                self._add(link.name, f"{SLOW}-{stream}", "latency", stream,
                          {"latency": latency_ms, "jitter": jitter_ms}, added)
            names.append(link.name)
        return {"fault": "latency", "latency_ms": latency_ms, "jitter_ms": jitter_ms,
                "links": names, "added": added}

    def stall(self, links: Iterable[Link]) -> dict[str, Any]:
        names = []
        added: list[str] = []
        for link in links:
            for stream in ("upstream", "downstream"):
                self._add(link.name, f"{STALL}-{stream}", "bandwidth", stream, {"rate": 0},
                          added)
            names.append(link.name)
        return {"fault": "stall", "links": names, "added": added}

    def links_of(self, node: str | None = None) -> list[Link]:
        """Every link touching ``node`` (all links when None)."""
        return [lk for lk in self.cluster.links
                if node is None or node in (lk.src, lk.dst)]

    def heal_network(self, only: Iterable[str] | None = None) -> dict[str, Any]:
        """Remove every toxic this nemesis added, or ``only`` those named (``proxy/name``,
        as a network fault's ``added`` lists them), so one fault ends while another
        that overlaps it stays in force."""
        removed = []
        errors = []
        wanted = None if only is None else set(only)
        for proxy, name in sorted(self._toxics):
            if wanted is not None and f"{proxy}/{name}" not in wanted:
                continue
            try:
                self.tp.remove_toxic(proxy, name)
                removed.append(f"{proxy}/{name}")
            except Exception as e:
                errors.append(f"{proxy}/{name}: {e}")
            self._toxics.discard((proxy, name))
        if errors:
            raise NemesisError("could not remove toxics: " + "; ".join(errors))
        return {"fault": "heal-network", "removed": removed}

    # --- processes -----------------------------------------------------------------

    def kill(self, node: str) -> dict[str, Any]:
        self.cluster.kill(node)
        self.killed.add(node)
        return {"fault": "kill", "node": node}

    def restart(self, node: str) -> dict[str, Any]:
        self.cluster.restart(node)
        self.killed.discard(node)
        return {"fault": "restart", "node": node}

    def pause(self, node: str) -> dict[str, Any]:
        self.cluster.pause(node)
        self.paused.add(node)
        return {"fault": "pause", "node": node}

    def resume(self, node: str) -> dict[str, Any]:
        self.cluster.resume(node)
        self.paused.discard(node)
        return {"fault": "resume", "node": node}

    def heal_all(self) -> dict[str, Any]:
        """Undo everything: remove toxics, resume paused nodes, restart killed ones."""
        done: dict[str, Any] = {"fault": "heal-all", "resumed": [], "restarted": []}
        first_error: Exception | None = None
        try:
            done["removed"] = self.heal_network()["removed"]
        except Exception as e:
            first_error = e
        for node in sorted(self.paused):
            self.cluster.resume(node)
            done["resumed"].append(node)
        self.paused.clear()
        for node in sorted(self.killed):
            self.cluster.restart(node)
            done["restarted"].append(node)
        self.killed.clear()
        if first_error is not None:
            raise NemesisError(f"heal-all incomplete: {first_error}")
        return done
