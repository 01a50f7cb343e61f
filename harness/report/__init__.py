"""HTML reports: one self-contained page per run, and an index of all runs.

:func:`write_report` turns a run folder into ``report.html``;
:func:`write_index` lists every run under a reports folder in
``index.html``. The data the pages show is computed by the pure functions of
:mod:`harness.report.data`, :mod:`~harness.report.timeline` and
:mod:`~harness.report.logs`; the pages are Jinja2 templates with inline CSS,
script and SVG, so they open with no network.
"""

from __future__ import annotations

from harness.report.index import write_index
from harness.report.render import write_report

__all__ = ["write_index", "write_report"]
