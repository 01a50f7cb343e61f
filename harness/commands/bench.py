"""``harness bench``: benchmarks that print figures (never timed tests).

The machines are noisy, so every benchmark reports medians of several runs
and, where there is a yardstick, a ratio measured in the same run.
"""

from __future__ import annotations

import argparse

__all__ = ["bench_command"]


def bench_command(args: argparse.Namespace) -> int:
    if args.what == "checker":
        from harness.bench.checker import main as checker_main

        return int(checker_main(corpus=args.corpus, repeats=args.repeats) or 0)
    if args.what == "queue":
        from harness.bench.queue import main as queue_main

        return queue_main(repeats=args.repeats)
    if args.what == "history":
        from harness.bench.history import main as history_main

        return history_main(repeats=args.repeats)
    if args.what == "mutants":
        from harness.bench.mutants import main as mutants_main

        return mutants_main(list(getattr(args, "options", None) or []))
    if args.what == "large":
        from harness.bench.large import main as large_main

        return large_main(list(getattr(args, "options", None) or []))
    if args.what == "driver":
        from harness.bench.driver import main as driver_main

        return driver_main(["--rounds", str(args.repeats)])
    from harness.toxiproxy.bench import main as proxy_main

    return int(proxy_main([]) or 0)
