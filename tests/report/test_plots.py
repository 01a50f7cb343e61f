"""The latency and throughput plots span the run's operations, not the cluster's setup."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_timeline import SETUP_NS, two_workers

from harness.history import History, Op, OpType
from harness.report import data, plots


def cold_start() -> History:
    """A fault starts during setup (it is clipped), the calls come 20 s into the run."""
    return History([
        Op(0, 1_000_000, OpType.INFO, "nemesis", "start-kill", {"fault": "kill", "node": "n1"}),
        *(replace(op, index=op.index + 1) for op in two_workers()),
    ])


def test_throughput_bins_start_at_the_first_operation() -> None:
    h = cold_start()
    thr = data.throughput_series(h, bins_max=10)
    assert thr.t_s[0] == pytest.approx(SETUP_NS / 1e9)
    # the bins cover the calls' span only, and every completion is in one
    span_s = (data.history_end_ns(h) - SETUP_NS) / 1e9
    assert len(thr.t_s) * thr.bin_s < span_s + 2 * thr.bin_s
    completions = sum(1 for op in h.client_ops() if not op.is_invoke)
    assert sum(sum(v) for v in thr.per_outcome.values()) * thr.bin_s == pytest.approx(
        completions)


def test_plots_start_at_the_first_operation() -> None:
    h = cold_start()
    axis = data.time_axis(h)
    intervals = data.fault_intervals(h)
    series = data.latency_series(h)
    lat = plots.latency_figure(series, intervals, axis=axis, total=len(series.t_s))
    thr = plots.throughput_figure(data.throughput_series(h), intervals, axis=axis)
    for fig in (lat, thr):
        (ax,) = fig.axes
        lo, hi = ax.get_xlim()
        assert lo == pytest.approx(SETUP_NS / 1e9) and hi == pytest.approx(axis.hi_s)
        assert "first 20.0 s were cluster setup" in ax.get_xlabel()
        # the kill begun during setup is shaded from the axis's start, not before it
        assert min(p.get_x() for p in ax.patches if p.get_label() == "kill (fault)") \
            == pytest.approx(SETUP_NS / 1e9)
    svg = plots.latency_svg(series, intervals, axis=axis, total=len(series.t_s))
    assert svg.startswith("<svg") and "cluster setup" in svg
