"""`lbbench-sweep EXPERIMENT [--quick] [--workdir sweeps] [--dry_run]` (python -m lbbench.sweep).

EXPERIMENT is a shipped study by name (`critical_batch`; `lbbench-sweep --list` names them) or an
experiment file anywhere on disk. The sweep trains every point not already finished with its
current config, runs the follow-ups, analyses, and writes the report (lbbench.sweep, lbbench.report).
Exit status: 0 all points completed or diverged, 1 some failed, 2 bad input, 130 interrupted
(SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from lbbench.config import Config, ConfigError
from lbbench.report.write import write_report
from lbbench.runs import compile_cache, hparams, signals
from lbbench.runs.writer import write_logdir_experiment
from lbbench.study import accounting
from lbbench.sweep import progress as sweep_progress
from lbbench.sweep import runner
from lbbench.sweep.experiment_file import SweepError, parse_sets, shipped

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise SweepError(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="lbbench-sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", nargs="?", help="a shipped experiment's name (e.g. critical_batch) or a file")
    p.add_argument("--list", action="store_true", help="list the shipped experiments and exit")
    p.add_argument("--quick", action="store_true", help="the experiment's fast smoke-test grid")
    p.add_argument("--workdir", default="sweeps", help="sweeps go to <workdir>/<NAME>[-quick]")
    p.add_argument(
        "--dry_run", action="store_true", help="print the grid and its packing into programs, and exit without training"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a Config field for every point (repeatable)",
    )
    p.add_argument(
        "--max_trials_per_program",
        type=int,
        default=8,
        help="at most this many points that share every shape-determining setting train as one compiled program",
    )
    p.add_argument(
        "--rerun_changed",
        action="store_true",
        help="rerun finished points whose config "
        "changed since they ran (otherwise the sweep stops with exit 2 naming them)",
    )
    p.add_argument(
        "--full_search",
        action="store_true",
        help="ignore the experiment's successive halving: every trial runs its full budget "
        "(the search halving is judged against; use another --workdir)",
    )
    args = p.parse_args(argv[1:])
    if args.max_trials_per_program < 1:
        raise SweepError(f"--max_trials_per_program must be at least 1, got {args.max_trials_per_program}")
    if not args.experiment and not args.list:
        raise SweepError("name an experiment (e.g. lbbench-sweep critical_batch --quick); --list names them")
    return args


def _print_grid(configs: list[Config], max_trials: int) -> None:
    states = {c.run_name: runner.point_state(c)[0] for c in configs}
    for i, c in enumerate(configs, 1):
        print(
            f"[{i}/{len(configs)}] {c.run_name}: {c.dataset} {c.model} {c.optimizer} B={c.batch_size} "
            f"lr={c.scaled_learning_rate:.4g} {c.schedule} epochs={c.epochs} seed={c.seed} ({states[c.run_name]})"
        )
    todo = [c for c in configs if states[c.run_name] != "finished"]
    programs = runner.pack(todo, max_trials)
    print(f"packing: {len(todo)} point(s) to train in {len(programs)} program(s) (at most {max_trials} trials each):")
    for k, g in enumerate(programs, 1):
        print(f"  program {k}: {len(g)} trial(s): {', '.join(c.run_name for c in g)}")


def _prepare(args: argparse.Namespace, argv: list[str]) -> runner.Plan | None:
    """The plan, recorded in sweep.json; None when only the grid was to be printed."""
    plan = runner.plan(args.experiment, args.quick, args.workdir, parse_sets(args.set), args.full_search)
    if args.dry_run:
        _print_grid(plan.configs, args.max_trials_per_program)
        return None
    changed = runner.changed_points(plan.configs)
    if changed and not args.rerun_changed:
        raise SweepError(
            f"{len(changed)} finished point(s) were run with a different config than the "
            f"experiment now gives them: {', '.join(changed)}. Rerun with --rerun_changed to "
            "replace them, or use another --workdir"
        )
    try:
        runner.record(plan, argv)
    except OSError as e:
        raise SweepError(f"cannot write the sweep directory: {e}") from None
    return plan


def main(argv: list[str]) -> int:
    signals.install("lbbench.sweep")
    code = _main(argv)
    late = signals.finished()
    if late is None or code in (signals.EXIT_INTERRUPTED, signals.EXIT_TERMINATED):
        return code
    print("lbbench.sweep: interrupted as the sweep ended; everything it reported above is saved", file=sys.stderr)
    return late


def _main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
        if args.list:
            print("\n".join(shipped()))
            return EXIT_OK
        plan = _prepare(args, argv)
        if plan is None:
            return EXIT_OK
        print(f"lbbench.sweep: {plan.module.NAME}: {len(plan.configs)} runs in {plan.sweep_dir}", flush=True)
        compile_cache.enable(plan.base.data_dir)  # sweep processes share every compiled program
        started = time.monotonic()
        statuses = runner.execute(plan, argv, lambda m: print(m, flush=True), args.max_trials_per_program)
    except (SweepError, ConfigError) as e:
        print(f"lbbench.sweep: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        what = "terminated (SIGTERM)" if isinstance(e, signals.Terminated) else "interrupted"
        print(f"lbbench.sweep: {what}; rerun the same command to finish the remaining runs", file=sys.stderr)
        return signals.exit_code(e)
    try:
        with runner.report_turn(plan.sweep_dir):
            analysis = runner.analyze(plan)
            signals.check()  # the last safe point: the report is written whole or not at all
            path = write_report(plan.sweep_dir, analysis=analysis)
            # TensorBoard's HParams columns once more, over the whole grid; this also clears what a
            # killed writer left. Not worth failing a finished sweep for.
            with contextlib.suppress(OSError):
                write_logdir_experiment(plan.sweep_dir, hparams.metric_tags(plan.base.to_dict()))
    except KeyboardInterrupt as e:
        print(
            "lbbench.sweep: interrupted while writing the report; every run is saved, "
            f"`lbbench-report {plan.sweep_dir}` writes it",
            file=sys.stderr,
        )
        return signals.exit_code(e)
    failed = sorted(k for k, s in statuses.items() if s not in (*runner.FINISHED, runner.PAUSED))
    counts = {s: list(statuses.values()).count(s) for s in sorted(set(statuses.values()))}
    for line in accounting.lines(runner.record_time(plan, time.monotonic() - started)):
        print(f"lbbench.sweep: {line}")
    print(f"lbbench.sweep: {', '.join(f'{n} {s}' for s, n in counts.items())}")
    print("\n".join(sweep_progress.answer_lines(plan.sweep_dir, analysis, path)))
    if failed:
        print(f"lbbench.sweep: failed runs (rerun to retry): {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
