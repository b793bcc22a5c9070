"""`lbbench-report SWEEP_DIR` (python -m lbbench.report): report.md, runs.csv and PNG figures for a
sweep folder, or any folder of run folders (lbbench.report.write).

Every refusal is one line and exit 2, never a traceback: a folder that is not one, a run folder
(a report never lands among a run's files; `--out` reports that one run elsewhere), a folder the
report cannot be written into (read-only: `--out` writes it elsewhere), a `--group_by` the runs
do not allow."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

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
        "--group_by",
        default=None,
        help="the key the figures group runs by: a config key that is not bookkeeping, or 'arm' for a study "
        "(default: the arm of a study whose arms are not just batch sizes, else batch_size)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="write the report into this folder instead of SWEEP_DIR (e.g. when SWEEP_DIR is read-only)",
    )
    p.add_argument(
        "--chance_margin",
        type=float,
        default=CHANCE_MARGIN,
        help="a run never learned if test accuracy ≤ 1/classes + this (default %(default)s)",
    )
    return p.parse_args(argv[1:])


def _error(msg: str) -> int:
    print(f"lbbench.report: error: {msg}", file=sys.stderr)
    return 2


def _writable(folder: str) -> str | None:
    """None if a file can be created in `folder` (made if missing), else why not."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".lbbench-report-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        return e.strerror or str(e)
    return None


def _refusal(args) -> str | None:
    """Why the report cannot be written as asked, or None."""
    if not os.path.isdir(args.sweep_dir):
        return f"{args.sweep_dir!r} is not a directory"
    inside = lambda p: os.path.abspath(p).startswith(os.path.abspath(args.sweep_dir) + os.sep)  # noqa: E731
    if args.tb_logdir and inside(args.tb_logdir):
        return (
            "--tb_logdir is inside the sweep folder, where TensorBoard would show the report as one more run; "
            "choose a folder outside it"
        )
    if os.path.exists(os.path.join(args.sweep_dir, "result.json")):
        if not args.out or os.path.abspath(args.out) == os.path.abspath(args.sweep_dir) or inside(args.out):
            parent = os.path.dirname(os.path.abspath(args.sweep_dir))
            return (
                f"{args.sweep_dir!r} is a run folder (it holds result.json), not a folder of runs: report the "
                f"folder that holds it ({parent}), or pass --out DIR (outside the run) to report this one run"
            )
    out = args.out or args.sweep_dir
    why = _writable(out)
    if why:
        return f"cannot write the report into {out!r} ({why}); pass --out DIR to write it elsewhere"
    return None


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    problem = _refusal(args)
    if problem:
        return _error(problem)
    try:
        path = write_report(
            args.sweep_dir,
            tb_logdir=args.tb_logdir,
            margin=args.chance_margin,
            group_by=args.group_by,
            out_dir=args.out,
        )
    except ValueError as e:  # a --group_by the runs do not allow
        return _error(str(e))
    except OSError as e:  # the folder became unwritable, or the disk filled, while writing
        return _error(f"could not write the report: {e}; pass --out DIR to write it elsewhere")
    print(f"lbbench.report: wrote {path}")
    return 0
