"""How fast the linearizability checker is on the shared corpus, next to Porcupine.

Per suite (Porcupine's etcd logs, its kv histories, Knossos' 122 histories,
and ``c50-bad.txt`` alone): the median over ``repeats`` runs of the total
check time, parsing excluded; the Porcupine v1.3.0 time for the same files,
read from the corpus MANIFEST (its ``porc ms`` column, summed); their ratio;
and peak memory, traced in a separate run so tracing does not slow the timed
ones. Every verdict is compared with the MANIFEST's: a benchmark of wrong
answers would be worthless.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from harness.checker import native
from harness.checker.linearizable import linearizable
from harness.checker.models import get_model
from harness.corpus import CorpusEntry, default_corpus_dir, read_manifest
from harness.formats import read_history
from harness.history import History

__all__ = ["bench_checker", "main"]

SUITES = ("porcupine-etcd", "porcupine-kv", "knossos", "c50-bad")


def _suite_entries(entries: list[CorpusEntry], suite: str) -> list[CorpusEntry]:
    if suite == "c50-bad":
        return [e for e in entries if e.relpath.endswith("kv/c50-bad.txt")]
    return [e for e in entries if e.suite == suite]


def bench_checker(corpus_dir: str | Path | None = None, repeats: int = 5) -> dict[str, Any]:
    """Time the checker per suite; returns ``{suite: {...figures...}}``.

    Figures per suite: ``files``, ``ours_ms`` (median of ``repeats`` totals),
    ``runs_ms`` (each total), ``porcupine_ms`` (MANIFEST, summed per file),
    ``ratio`` (ours / Porcupine), ``median_file_ratio`` (the median over
    files of each file's median time over Porcupine's), ``peak_traced_mb`` (tracemalloc peak of one
    run), ``wrong`` (files whose verdict differs from the MANIFEST) and
    ``unknown``, and ``native_files`` (files the C search checked; see
    :mod:`harness.checker.native`).
    """
    root = Path(corpus_dir) if corpus_dir is not None else default_corpus_dir()
    entries = read_manifest(root)
    out: dict[str, Any] = {}
    for suite in SUITES:
        chosen = _suite_entries(entries, suite)
        loaded: list[tuple[CorpusEntry, History, Any]] = [
            (e, read_history(e.path, e.fmt), get_model(e.model, **e.model_args)) for e in chosen
        ]
        runs: list[float] = []
        wrong: list[str] = []
        unknown: list[str] = []
        per_file: list[list[float]] = [[] for _ in loaded]
        native_files = 0
        for i in range(repeats):
            total = 0.0
            for j, (e, h, m) in enumerate(loaded):
                t0 = time.perf_counter()
                r = linearizable(h, model=m, time_limit_s=60)
                dt = time.perf_counter() - t0
                total += dt
                per_file[j].append(dt * 1000)
                if i == 0:
                    native_files += r.details.get("engine") == "native"
                    if r.valid == "unknown":
                        unknown.append(e.relpath)
                    elif r.valid is not e.expected:
                        wrong.append(e.relpath)
            runs.append(total * 1000)
        # Per file: our median time over Porcupine's; the median of those ratios says
        # what a fixed cost per check does to small files, which the totals hide.
        file_ratios = [statistics.median(ts) / e.porcupine_ms
                       for (e, _, _), ts in zip(loaded, per_file, strict=True)
                       if e.porcupine_ms]
        tracemalloc.start()
        for _, h, m in loaded:
            linearizable(h, model=m, time_limit_s=60)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        porc = sum(e.porcupine_ms or 0.0 for e in chosen)
        ours = statistics.median(runs)
        out[suite] = {
            "files": len(chosen),
            "ours_ms": round(ours, 3),
            "runs_ms": [round(x, 3) for x in runs],
            "porcupine_ms": round(porc, 3),
            "ratio": round(ours / porc, 3) if porc else None,
            "median_file_ratio": round(statistics.median(file_ratios), 3) if file_ratios else None,
            "peak_traced_mb": round(peak / 2**20, 2),
            "wrong": wrong,
            "unknown": unknown,
            "native_files": native_files,
        }
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["process_max_rss_mb"] = round(rss / 1024, 1)  # Linux reports KiB
    return out


def _engine() -> str:
    if not native.AVAILABLE:
        return "not built (Python search only)"
    if not native.enabled():
        return "off (HARNESS_CHECKER=python)"
    return "on, for register histories (HARNESS_CHECKER=python turns it off)"


def main(corpus: str | Path | None = None, repeats: int = 5) -> int:
    """Print the figures; exit code 1 if any verdict was wrong or unknown."""
    root = Path(corpus) if corpus is not None else default_corpus_dir()
    if not (root / "MANIFEST.md").exists():
        print(f"no corpus at {root}", file=sys.stderr)
        return 2
    res = bench_checker(root, repeats=repeats)
    print(f"linearizability checker on {root} (median of {repeats}, parsing excluded); "
          f"C search: {_engine()}")
    print(f"{'suite':16} {'files':>5} {'ours ms':>10} {'porc ms':>10} {'ratio':>7} "
          f"{'median':>7} {'peak MB':>8} {'in C':>5}  verdicts   (median: of per-file ratios)")
    bad = 0
    for suite in SUITES:
        s = res[suite]
        verdicts = "all as expected"
        if s["wrong"] or s["unknown"]:
            bad += 1
            verdicts = f"WRONG {s['wrong']} UNKNOWN {s['unknown']}"
        ratio = "-" if s["ratio"] is None else f"{s['ratio']:.2f}"
        med = "-" if s["median_file_ratio"] is None else f"{s['median_file_ratio']:.2f}"
        print(f"{suite:16} {s['files']:>5} {s['ours_ms']:>10.2f} {s['porcupine_ms']:>10.2f} "
              f"{ratio:>7} {med:>7} {s['peak_traced_mb']:>8.1f} {s['native_files']:>5}  "
              f"{verdicts}")
    print(f"process max RSS: {res['process_max_rss_mb']} MB")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else None))
