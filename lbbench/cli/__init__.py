"""Console-script entry points (pyproject.toml `[project.scripts]`): each calls a module's `main(argv)`.

Kept here, not in the modules, so `python -m lbbench.X` and the installed `lbbench-X` commands run
exactly the same code and exit with the same status.
"""

from __future__ import annotations

import sys


def lbbench() -> None:
    """`lbbench`: train one configuration (lbbench.main)."""
    from lbbench.cli import train as main

    sys.exit(main.main(sys.argv))


def sweep() -> None:
    """`lbbench-sweep`: run an experiment file's grid (lbbench.sweep)."""
    from lbbench.sweep import runner as sweep_mod

    sys.exit(sweep_mod.main(sys.argv))


def report() -> None:
    """`lbbench-report`: report.md, runs.csv and plots for a sweep folder (lbbench.report)."""
    from lbbench.report import markdown as report_mod

    sys.exit(report_mod.main(sys.argv))


def bench() -> None:
    """`lbbench-bench`: throughput benchmark (lbbench.bench)."""
    from lbbench.bench import throughput as bench_mod

    sys.exit(bench_mod.main(sys.argv))
