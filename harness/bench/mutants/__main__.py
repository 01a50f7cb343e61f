"""``python -m harness.bench.mutants``."""

from __future__ import annotations

from harness.bench.mutants.cli import main

raise SystemExit(main())
