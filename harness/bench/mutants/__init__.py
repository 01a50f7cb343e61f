"""Mutation score of the campaign battery: how many cosmic-ray mutants of the
reference system a fixed battery of short campaigns kills (issue 11 item 6,
issue 16 item 5).

The seeded bugs (``reference_system.bugs``) are bugs we knew to look for; a
mutation score asks the harder question, how many bugs nobody planned for the
same campaigns catch. ``generate`` makes and samples the mutants (real files
in a copy of the package, never in the working tree), ``battery`` runs each
against the nodes and says what a kill is (safety or progress), ``cli`` prints
one line per mutant, the survivors with their diffs, and the score.
"""

from __future__ import annotations

from harness.bench.mutants.battery import (
    BATTERY,
    Kill,
    MutantSystem,
    Outcome,
    kill_of,
    run_battery,
)
from harness.bench.mutants.cli import QUICK, main, score_lines
from harness.bench.mutants.generate import (
    MODULES,
    Mutant,
    Population,
    enumerate_mutants,
    materialize,
    sample,
)

__all__ = ["BATTERY", "MODULES", "QUICK", "Kill", "Mutant", "MutantSystem", "Outcome",
           "Population", "enumerate_mutants", "kill_of", "main", "materialize", "run_battery",
           "sample", "score_lines"]
