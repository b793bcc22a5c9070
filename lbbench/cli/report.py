"""`lbbench-report SWEEP_DIR` (python -m lbbench.report): report.md, runs.csv and PNG figures for a
sweep folder, or any folder of run folders (lbbench.report.write)."""

from __future__ import annotations

import argparse
import os
import sys

from lbbench.report.write import write_report
from lbbench.runs.reader import CHANCE_MARGIN


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="lbbench-report",
        description="Write report.md, runs.csv and PNG plots for a sweep folder.",
        epilog="example: lbbench-report sweeps/keskar-quick",
    )
    p.add_argument("sweep_dir", help="a folder written by lbbench-sweep (or any folder of run folders)")
    p.add_argument(
        "--tb_logdir",
        default=None,
        help="also write the figures to TensorBoard here (keep it outside the sweep folder)",
    )
    p.add_argument(
        "--chance_margin",
        type=float,
        default=CHANCE_MARGIN,
        help="a run never learned if test accuracy ≤ 1/classes + this (default %(default)s)",
    )
    return p.parse_args(argv[1:])


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if not os.path.isdir(args.sweep_dir):
        print(f"lbbench.report: error: {args.sweep_dir!r} is not a directory", file=sys.stderr)
        return 2
    if args.tb_logdir and os.path.abspath(args.tb_logdir).startswith(os.path.abspath(args.sweep_dir) + os.sep):
        print(
            "lbbench.report: error: --tb_logdir is inside the sweep folder, where TensorBoard would show the "
            "report as one more run; choose a folder outside it",
            file=sys.stderr,
        )
        return 2
    print(f"lbbench.report: wrote {write_report(args.sweep_dir, tb_logdir=args.tb_logdir, margin=args.chance_margin)}")
    return 0
