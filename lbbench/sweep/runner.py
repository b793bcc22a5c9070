"""Sweep runner: `python -m lbbench.sweep experiments/keskar.py [--quick] [--workdir sweeps] [--dry_run]`.

An experiment file is a plain Python module defining

    NAME: str
    base_config(quick: bool) -> Config
    grid(quick: bool) -> list[dict]       # Config overrides per run, each with a unique run_name
    analyze(sweep_dir, results, quick) -> dict   # optional post-processing (e.g. interpolation)
    followup(results, quick) -> list[dict]       # optional: more points derived from finished results

A retired experiment file defines only RETIRED = "<where its question went>"; running it exits 2
with that one line.

Every grid point runs via `train.run_group` into `<workdir>/<NAME>[-quick]/<run_name>`; points that
share `Config.group_key()` are packed into one compiled program, at most --max_trials_per_program
at a time. `--set key=value` (repeatable) overrides a Config field for every point.

Resumable and shareable: each run folder has a lock (locks.py), so several sweep processes on one
sweep folder (a Slurm job array) each take the next free point, and a rerun skips points whose
result.json is completed or diverged *and* was produced by the same config (a fingerprint of
it). A finished point whose config has changed since is never silently skipped: the sweep stops
with exit 2 naming the points, or reruns them with --rerun_changed. A killed point leaves only a
hidden staging folder and a stale lock, which the next attempt removes (run_folder.py).
Exit status: 0 all points completed or diverged, 1 some failed, 2 bad input, 130 interrupted
(SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

from lbbench.runs import locks
from lbbench.runs import folder as run_folder
from lbbench.runs import signals
from lbbench.config import Config, ConfigError
# Experiment files (loading, file:line errors, grid → Configs) live in experiment_file.py; env_dataset
# is re-exported because experiment files import it from here.
from lbbench.sweep.experiment_file import (SweepError, build_configs, call_experiment, configs_for,  # noqa: F401
                                     env_dataset, load_experiment, parse_sets, sweep_dir_for, normalized_points)

FINISHED = run_folder.FINISHED
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_FOLLOWUP_ROUNDS = 20
WAIT_POLL_S = 1.0


# ---------------------------------------------------------------------------- bookkeeping

def _git_commit() -> str | None:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_sweep_json(sweep_dir: str, module, path: str, quick: bool, points: list[dict], argv: list[str],
                     sets: dict | None = None, followup: list[dict] | None = None, base: Config | None = None):
    """Record what was swept and where (atomically), so the report and a rerun can be traced."""
    from lbbench.runs.writer import atomic_write_json

    base = base or module.base_config(quick)
    info = {"experiment": module.NAME, "experiment_file": os.path.abspath(path), "quick": quick,
            "grid": points, "followup": followup or [], "set": {k: list(v) if isinstance(v, tuple) else v
                                                                for k, v in (sets or {}).items()},
            "base_config": base.to_dict(),
            "command": " ".join([sys.executable, "-m", "lbbench.sweep", *argv[1:]]),
            "git_commit": _git_commit(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine": {"hostname": platform.node(), "platform": platform.platform(),
                        "processor": platform.machine(), "cpus": os.cpu_count(),
                        "python": platform.python_version()}}
    atomic_write_json(os.path.join(sweep_dir, "sweep.json"), info)


def load_result(run_dir: str) -> dict | None:
    return run_folder.read_result(run_dir)


def read_status(run_dir: str) -> str | None:
    """The status in run_dir/result.json, or None if there is none (not run, or killed)."""
    r = load_result(run_dir)
    return r.get("status") if r else None


def point_state(cfg: Config) -> tuple[str, dict | None]:
    """("finished" | "changed" | "failed" | "todo", result): what the folder holds for this config."""
    r = load_result(os.path.join(cfg.workdir, cfg.run_name))
    if not r:
        return "todo", None
    same = run_folder.result_fingerprint(r) == run_folder.fingerprint(cfg)
    if r.get("status") in FINISHED:
        return ("finished" if same else "changed"), r
    return ("failed" if same else "todo"), r


def changed_points(configs: list[Config]) -> list[str]:
    """Run names of finished points whose stored config differs from the current one."""
    return [c.run_name for c in configs if point_state(c)[0] == "changed"]


def pack(configs: list[Config], max_trials: int) -> list[list[Config]]:
    """Group configs by group_key() (first-seen order), split into programs of at most max_trials."""
    groups: dict = {}
    for c in configs:
        groups.setdefault(c.group_key(), []).append(c)
    return [g[i:i + max_trials] for g in groups.values() for i in range(0, len(g), max_trials)]


# ---------------------------------------------------------------------------- running

def _eta(seconds_per_run: list[float], remaining: int) -> str:
    if not seconds_per_run or not remaining:
        return "done" if not remaining else "?"
    s = sum(seconds_per_run) / len(seconds_per_run) * remaining
    return f"~{s / 60:.0f} min left" if s >= 90 else f"~{s:.0f} s left"


def run_group_points(cfgs: list[Config]) -> list[tuple[str, dict | None, str | None]]:
    """Train a packed group (locks already held); [(status, result, error)] per config."""
    from lbbench.training import loop as train

    try:
        results = train.run_group([c.replace(overwrite=True) for c in cfgs])
        error = None
    except Exception as e:  # noqa: BLE001 - a failed group is recorded, the sweep goes on
        results, error = None, f"{type(e).__name__}: {e}".splitlines()[0][:300]
    out = []
    for i, cfg in enumerate(cfgs):
        r = results[i] if results else load_result(os.path.join(cfg.workdir, cfg.run_name))
        status = (r or {}).get("status", "failed") if results else "failed"
        if not results and r and r.get("status") in FINISHED and point_state(cfg)[0] == "finished":
            status = r["status"]  # this config finished before another trial of its group failed
        out.append((status, r, (r or {}).get("error") if results else error))
    return out


def _progress(i: int, n: int, cfg: Config, status: str, result: dict | None, error, secs: float, eta: str):
    acc = ((result or {}).get("final") or {}).get("test_accuracy")
    what = f"test_acc {acc:.4f}" if status == "completed" and acc is not None else (error or "")
    return f"[{i}/{n}] {cfg.run_name}: {status} {what} ({secs:.0f} s; {eta})"


def run_sweep(configs: list[Config], log=print, max_trials: int = 8, poll_s: float = WAIT_POLL_S) -> dict:
    """Train every point not finished with its current config; returns {run_name: status}.

    Points are claimed group by group under their run-folder locks, so concurrent sweep processes
    on the same folder share the work; points another live process holds are waited for, and
    taken over if that process dies (its lock goes stale). A point that failed during this sweep
    (here or in another process) is not retried until the next invocation.
    """
    started = time.time()
    statuses: dict = {}
    todo = []
    for cfg in configs:
        state, r = point_state(cfg)
        if state == "finished":
            statuses[cfg.run_name] = r["status"]
        else:
            todo.append(cfg)
    if statuses:
        log(f"lbbench.sweep: {len(statuses)} of {len(configs)} runs already finished; skipping them")
    done_secs, waited = [], False

    def settled(cfg) -> bool:
        state, r = point_state(cfg)
        if state == "finished" or (state == "failed" and _mtime(cfg) >= started):
            statuses[cfg.run_name] = r["status"]
            return True
        return False

    while todo:
        busy, progressed = [], False
        for group in pack(todo, max_trials):
            claimed = []
            try:
                for cfg in group:
                    lock = run_folder.lock_path(os.path.join(cfg.workdir, cfg.run_name))
                    if not locks.try_acquire(lock):
                        busy.append(cfg)
                    elif settled(cfg):
                        locks.release(lock)
                    else:
                        claimed.append(cfg)
                if not claimed:
                    continue
                if len(claimed) > 1:
                    log(f"lbbench.sweep: one program for {len(claimed)} trials: "
                        f"{', '.join(c.run_name for c in claimed)}")
                t0 = time.perf_counter()
                outcomes = run_group_points(claimed)
                secs = (time.perf_counter() - t0) / len(claimed)
                progressed = True
            finally:
                for cfg in claimed:
                    locks.release(run_folder.lock_path(os.path.join(cfg.workdir, cfg.run_name)))
            for cfg, (status, result, error) in zip(claimed, outcomes):
                done_secs.append(secs)
                statuses[cfg.run_name] = status
                left = len([c for c in configs if c.run_name not in statuses])
                log(_progress(len(statuses), len(configs), cfg, status, result, error, secs, _eta(done_secs, left)))
        todo = [c for c in busy if not settled(c)]
        if todo and not progressed:
            if not waited:
                log(f"lbbench.sweep: waiting for {len(todo)} point(s) another process is training: "
                    f"{', '.join(c.run_name for c in todo[:5])}{' ...' if len(todo) > 5 else ''}")
                waited = True
            time.sleep(poll_s)
    return statuses


def _mtime(cfg: Config) -> float:
    try:
        return os.stat(os.path.join(cfg.workdir, cfg.run_name, "result.json")).st_mtime
    except OSError:
        return 0.0


def finished_results(configs: list[Config]) -> dict:
    """{run_name: result} of the points finished with their current config."""
    out = {}
    for c in configs:
        state, r = point_state(c)
        if state == "finished":
            out[c.run_name] = r
    return out


def run_followups(module, path: str, quick: bool, base: Config, sets: dict, sweep_dir: str,
                  configs: list[Config], statuses: dict, log, max_trials: int, on_new=None) -> list[dict]:
    """Call followup(results, quick) and run the new points it returns, until it returns none new."""
    if not hasattr(module, "followup"):
        return []
    added: list[dict] = []
    known = {c.run_name: c for c in configs}
    for _ in range(MAX_FOLLOWUP_ROUNDS):
        proposed = normalized_points(call_experiment(path, module, "followup", finished_results(list(known.values())),
                                                      quick) or [], "followup()")
        new = []
        for p, cfg in zip(proposed, configs_for(base, proposed, sweep_dir, sets)):
            if p["run_name"] in known:
                if run_folder.fingerprint(known[p["run_name"]]) != run_folder.fingerprint(cfg):
                    raise SweepError(f"followup() returned point {p['run_name']} with a different config "
                                     "than the existing point of that name; give it a new run_name")
                continue
            if p["run_name"] not in {q["run_name"] for q in new}:
                new.append(p)
                known[p["run_name"]] = cfg
        if not new:
            return added
        added += new
        if on_new:
            on_new(added)
        new_cfgs = [known[p["run_name"]] for p in new]
        changed = changed_points(new_cfgs)
        if changed:
            raise SweepError(f"followup point(s) {', '.join(changed)} already hold a finished run of a "
                             "different config; rerun with --rerun_changed to replace them")
        log(f"lbbench.sweep: followup() added {len(new)} point(s): {', '.join(p['run_name'] for p in new)}")
        statuses.update(run_sweep(new_cfgs, log=log, max_trials=max_trials))
    log(f"lbbench.sweep: warning: followup() still adds points after {MAX_FOLLOWUP_ROUNDS} rounds; stopping")
    return added


def run_analysis(module, sweep_dir: str, configs: list[Config], quick: bool) -> dict | None:
    """Call the experiment's analyze() on the finished results; saved as analysis.json."""
    if not hasattr(module, "analyze"):
        return None
    from lbbench.runs.writer import atomic_write_json

    results = {c.run_name: load_result(os.path.join(sweep_dir, c.run_name)) for c in configs}
    results = {k: v for k, v in results.items() if v is not None}
    try:
        analysis = module.analyze(sweep_dir, results, quick)
    except Exception as e:  # noqa: BLE001 - the report is still written, with the error in it
        print(f"lbbench.sweep: warning: analyze() failed: {type(e).__name__}: {e}", file=sys.stderr)
        analysis = {"error": f"{type(e).__name__}: {e}"}
    atomic_write_json(os.path.join(sweep_dir, "analysis.json"), analysis)
    return analysis


# ---------------------------------------------------------------------------- CLI

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise SweepError(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="python -m lbbench.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help="experiment file, e.g. experiments/keskar.py")
    p.add_argument("--quick", action="store_true", help="the experiment's fast smoke-test grid")
    p.add_argument("--workdir", default="sweeps", help="sweeps go to <workdir>/<NAME>[-quick]")
    p.add_argument("--dry_run", action="store_true", help="print the grid and its packing into programs, "
                   "and exit without training")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a Config field for every point (repeatable)")
    p.add_argument("--max_trials_per_program", type=int, default=8,
                   help="at most this many points that share every shape-determining setting train "
                   "as one compiled program")
    p.add_argument("--rerun_changed", action="store_true", help="rerun finished points whose config "
                   "changed since they ran (otherwise the sweep stops with exit 2 naming them)")
    args = p.parse_args(argv[1:])
    if args.max_trials_per_program < 1:
        raise SweepError(f"--max_trials_per_program must be at least 1, got {args.max_trials_per_program}")
    return args


def _print_grid(configs: list[Config], max_trials: int) -> None:
    states = {c.run_name: point_state(c)[0] for c in configs}
    for i, c in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] {c.run_name}: {c.dataset} {c.model} {c.optimizer} B={c.batch_size} "
              f"lr={c.scaled_learning_rate:.4g} {c.schedule} epochs={c.epochs} seed={c.seed} ({states[c.run_name]})")
    todo = [c for c in configs if states[c.run_name] != "finished"]
    programs = pack(todo, max_trials)
    print(f"packing: {len(todo)} point(s) to train in {len(programs)} program(s) "
          f"(at most {max_trials} trials each):")
    for k, g in enumerate(programs, 1):
        print(f"  program {k}: {len(g)} trial(s): {', '.join(c.run_name for c in g)}")


def main(argv: list[str]) -> int:
    signals.install()
    try:
        args = parse_args(argv)
        module = load_experiment(args.experiment)
        sets = parse_sets(args.set)
        sweep_dir = sweep_dir_for(args.workdir, module.NAME, args.quick)
        points, configs = build_configs(module, args.quick, sweep_dir, sets, args.experiment)
        base = call_experiment(args.experiment, module, "base_config", args.quick)
        if args.dry_run:
            _print_grid(configs, args.max_trials_per_program)
            return EXIT_OK
        changed = changed_points(configs)
        if changed and not args.rerun_changed:
            raise SweepError(f"{len(changed)} finished point(s) were run with a different config than the "
                             f"experiment now gives them: {', '.join(changed)}. Rerun with --rerun_changed to "
                             "replace them, or use another --workdir")
        os.makedirs(sweep_dir, exist_ok=True)
        write_sweep_json(sweep_dir, module, args.experiment, args.quick, points, argv, sets, base=base)
    except (SweepError, ConfigError) as e:
        print(f"lbbench.sweep: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        print(f"lbbench.sweep: error: cannot write the sweep directory: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"lbbench.sweep: {module.NAME}: {len(configs)} runs in {sweep_dir}", flush=True)
    log = lambda m: print(m, flush=True)  # noqa: E731
    try:
        statuses = run_sweep(configs, log=log, max_trials=args.max_trials_per_program)
        added = run_followups(module, args.experiment, args.quick, base, sets, sweep_dir, configs, statuses, log,
                              args.max_trials_per_program,
                              on_new=lambda extra: write_sweep_json(sweep_dir, module, args.experiment, args.quick,
                                                                    points, argv, sets, extra, base))
    except KeyboardInterrupt as e:
        what = "terminated (SIGTERM)" if isinstance(e, signals.Terminated) else "interrupted"
        print(f"lbbench.sweep: {what}; rerun the same command to finish the remaining runs", file=sys.stderr)
        return signals.exit_code(e)
    except (SweepError, ConfigError) as e:
        print(f"lbbench.sweep: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from lbbench.report import markdown as report

    all_configs = configs + configs_for(base, added, sweep_dir, sets)
    report_lock = os.path.join(sweep_dir, ".report.lock")
    try:
        while not locks.try_acquire(report_lock):  # workers finishing together take turns writing the report
            time.sleep(WAIT_POLL_S)
        try:
            analysis = run_analysis(module, sweep_dir, all_configs, args.quick)
            path = report.write_report(sweep_dir, analysis=analysis)
        finally:
            locks.release(report_lock)
    except KeyboardInterrupt as e:
        print("lbbench.sweep: interrupted while writing the report; every run is saved, "
              f"`python -m lbbench.report {sweep_dir}` writes it", file=sys.stderr)
        return signals.exit_code(e)
    failed = sorted(k for k, s in statuses.items() if s not in FINISHED)
    counts = {s: list(statuses.values()).count(s) for s in sorted(set(statuses.values()))}
    print(f"lbbench.sweep: {counts}; report {path}")
    if failed:
        print(f"lbbench.sweep: failed runs (rerun to retry): {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv))
