"""Registers: read, write and compare-and-set on a few keys, checked per key.

Values are ``[key, v]`` (Jepsen's "independent" convention), so the
linearizability checker partitions by key. Values are drawn from a small range
so that compare-and-set sometimes succeeds, as in Jepsen's register tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.client import Client
from harness.generator import Mix, Phase
from harness.workloads.base import FinalContext

__all__ = ["RegisterWorkload"]


@dataclass
class RegisterWorkload:
    keys: tuple[str, ...] = ("k0", "k1", "k2", "k3", "k4")
    value_range: int = 5
    weights: dict[str, float] = field(default_factory=lambda: {"read": 2, "write": 1, "cas": 1})
    name: str = "register"
    checkers: tuple[str, ...] = ("linearizable", "stats")
    #: operations that must succeed at least once, or the other checks pass vacuously
    required_fs: tuple[str, ...] = ("read", "write")
    #: a read of None is "no value yet" (checked), not Knossos's wildcard: our clients
    #: answer None only for a key that holds nothing
    model: str | None = "strict-cas-register-per-key"

    def mix(self) -> Mix:
        def key(rng: random.Random) -> str:
            return rng.choice(self.keys)

        def read(rng: random.Random, n: int) -> Any:
            return [key(rng), None]

        def write(rng: random.Random, n: int) -> Any:
            return [key(rng), rng.randrange(self.value_range)]

        def cas(rng: random.Random, n: int) -> Any:
            return [key(rng), [rng.randrange(self.value_range), rng.randrange(self.value_range)]]

        return Mix(self.weights, {"read": read, "write": write, "cas": cas})

    def phases(self, *, time_limit_s: float, rate_hz: float) -> list[Phase]:
        return [Phase(time_limit_s, self.mix(), rate_hz)]

    def final(self, ctx: FinalContext, new_client: Callable[[], Client]) -> None:
        """A final read of every key, after recovery: a lost write shows up here."""
        client = new_client()
        try:
            for k in self.keys:
                ctx.call(client, "read", [k, None])
        finally:
            client.close()
