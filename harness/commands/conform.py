"""``harness conform``: run the conformance kit on an adapter.

The kit is a pytest module (:mod:`harness.conformance`); this command only
checks that the system can be loaded (so a typo is one line and exit 2, not a
page of pytest errors) and runs pytest on the kit with the right options.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from harness.systems import get_system

__all__ = ["conform_command"]


def conform_command(args: argparse.Namespace) -> int:
    """Exit 0 when every test of the kit passes, 1 when one fails, 2 when the system
    cannot be loaded or pytest itself fails to run."""
    from harness.conformance import parse_options

    options = list(args.option or [])
    get_system(args.system, **parse_options(options))  # fails early, one line
    argv = [sys.executable, "-m", "pytest", "--pyargs", "harness.conformance",
            "-p", "no:cacheprovider", "--harness-system", args.system,
            "--harness-backend", args.backend, "-v" if args.verbose else "-q"]
    for kv in options:
        argv += ["--harness-system-option", kv]
    if args.keyword:
        argv += ["-k", args.keyword]
    rc = subprocess.call(argv)
    if rc == 0:
        return 0
    return 1 if rc == 1 else 2
