"""Every command: argv → one library call → exit status. Console-script entry points live here.

    lbbench              (python -m lbbench.main)     cli/train.py        train one configuration
    lbbench-sweep        (python -m lbbench.sweep)    cli/sweep.py        run an experiment's grid
    lbbench-report       (python -m lbbench.report)   cli/report.py       report.md, runs.csv, plots
    lbbench-bench        (python -m lbbench.bench)    cli/bench.py        the benchmarks, one flag picks
    lbbench-interpolate                               cli/interpolate.py  Keskar's 1-D interpolation

Entry points are named after their commands (`lbbench_sweep`), never after a submodule, which
would shadow it. Each entry point imports only its own command's module (importlib, by name), so one command's
start-up does not pay for the others' imports.
"""

from __future__ import annotations

import importlib
import sys

SIGNAL_HANDLING = {"train": "lbbench", "sweep": "lbbench.sweep"}  # commands that stop at safe points


def _main(command: str) -> None:
    if command in SIGNAL_HANDLING:  # before the command's imports (jax takes seconds)
        from lbbench.runs import signals

        signals.install(SIGNAL_HANDLING[command])
    sys.exit(importlib.import_module(f"lbbench.cli.{command}").main(sys.argv))


def lbbench() -> None:
    _main("train")


def lbbench_sweep() -> None:
    _main("sweep")


def lbbench_report() -> None:
    _main("report")


def lbbench_bench() -> None:
    _main("bench")


def lbbench_interpolate() -> None:
    _main("interpolate")
