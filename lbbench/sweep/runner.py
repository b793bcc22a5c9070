"""Sweeps: an experiment's grid trained point by point (packed into programs), its follow-ups, its analysis.

The command is `lbbench-sweep critical_batch [--quick] [--workdir sweeps] [--dry_run]`
(lbbench/cli/sweep.py); this module is what it calls: `plan` → `record` → `execute` → `analyze`.

An experiment file is a plain Python module defining

    NAME: str
    base_config(quick: bool) -> Config
    grid(quick: bool) -> list[dict]       # Config overrides per run, each with a unique run_name
    analyze(sweep_dir, results, quick) -> dict   # optional post-processing (e.g. interpolation)
    followup(results, quick) -> list[dict]       # optional: more points derived from finished results

A retired experiment file defines only RETIRED = "<where its question went>"; running it exits 2
with that one line.

Every grid point runs via `training.run_group` into `<workdir>/<NAME>[-quick]/<run_name>`; points that
share `Config.group_key()` are packed into one compiled program, at most --max_trials_per_program
at a time. `--set key=value` (repeatable) overrides a Config field for every point.

Resumable and shareable: each run folder has a lock (locks.py), so several sweep processes on one
sweep folder (a Slurm job array) each take the next free point, and a rerun skips points whose
result.json is completed or diverged *and* was produced by the same config (a fingerprint of
it). A finished point whose config has changed since is never silently skipped: the sweep stops
with exit 2 naming the points, or reruns them with --rerun_changed. A killed point leaves only a
hidden staging folder and a stale lock, which the next attempt removes (runs/folder.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import subprocess
import sys
import time

from lbbench.config import Config
from lbbench.runs import atomic, locks, signals
from lbbench.runs import folder as run_folder
from lbbench.runs.reader import read_json, read_result
from lbbench.study import accounting
from lbbench.sweep import halving
from lbbench.sweep.experiment_file import (
    SweepError,
    build_configs,
    call_experiment,
    configs_for,
    load_experiment,
    normalized_points,
    sweep_dir_for,
)
from lbbench.sweep.progress import SweepProgress
from lbbench.training import checkpoint, loop

FINISHED = run_folder.FINISHED
PAUSED = "paused"  # stopped at a successive-halving rung, its checkpoint kept (sweep/halving.py)
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


@dataclasses.dataclass
class Plan:
    """One sweep: the experiment, where it goes, its grid and the follow-up points added so far."""

    module: object
    spec: str  # the experiment as the user named it (a path, or a shipped experiment's name)
    quick: bool
    sweep_dir: str
    sets: dict
    base: Config
    points: list[dict]
    configs: list[Config]
    added: list[dict] = dataclasses.field(default_factory=list)
    full_search: bool = False  # ignore the experiment's successive halving: every trial's full budget

    def all_configs(self) -> list[Config]:
        return self.configs + configs_for(self.base, self.added, self.sweep_dir, self.sets)


def plan(spec: str, quick: bool, workdir: str, sets: dict | None = None, full_search: bool = False) -> Plan:
    """Load the experiment and build its grid's validated Configs (SweepError / ConfigError: exit 2)."""
    module = load_experiment(spec)
    sweep_dir = sweep_dir_for(workdir, module.NAME, quick)
    points, configs = build_configs(module, quick, sweep_dir, sets)
    base = call_experiment(module, "base_config", quick)
    return Plan(module, spec, quick, sweep_dir, dict(sets or {}), base, points, configs, full_search=full_search)


def halving_spec(p: Plan):
    """The experiment's declared successive halving, or None (none declared, or --full_search)."""
    if p.full_search:
        return None
    try:
        return halving.spec_of(p.module, p.quick)
    except ValueError as e:
        raise SweepError(f"{p.module.NAME}: halving(): {e}") from None


def record(p: Plan, argv: list[str]) -> None:
    """Record what was swept and where (sweep.json, atomically), so the report and a rerun can be traced."""
    os.makedirs(p.sweep_dir, exist_ok=True)
    spec = halving_spec(p)
    info = {
        "experiment": p.module.NAME,
        "experiment_file": p.spec,
        "quick": p.quick,
        "grid": p.points,
        "followup": p.added,
        "set": p.sets,
        "halving": spec.to_dict() if spec else None,
        "full_search": p.full_search,
        "base_config": p.base.to_dict(),
        "command": " ".join(["lbbench-sweep", *argv[1:]]),
        "git_commit": _git_commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "hostname": platform.node(),
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    path = os.path.join(p.sweep_dir, "sweep.json")
    info["invocations"] = (read_json(path)[0] or {}).get("invocations", [])  # earlier invocations' wall times
    atomic.write_json(path, info)


def record_time(p: Plan, wall_s: float) -> dict:
    """Add where the sweep's time went (study/accounting.py) to sweep.json, atomically; returns it. Each
    invocation's commit, end and wall time are appended to "invocations", so a rerun that only re-analyses
    (and takes seconds) does not erase the wall time of the one that trained."""
    acc = accounting.account(latest_results(p.all_configs()), wall_s)
    path = os.path.join(p.sweep_dir, "sweep.json")
    info = read_json(path)[0] or {}
    ended = {"git_commit": info.get("git_commit"), "ended": time.strftime("%Y-%m-%dT%H:%M:%S"), "wall_s": wall_s}
    atomic.write_json(path, {**info, "time": acc, "invocations": [*info.get("invocations", []), ended]})
    return acc


def execute(p: Plan, argv: list[str], log=print, max_trials: int = 8) -> dict:
    """Train the grid, then the follow-ups; {run_name: status} of every point."""
    spec = halving_spec(p)
    counter = SweepProgress(len(p.configs), log, more_may_come=hasattr(p.module, "followup") or spec is not None)

    def sweep(configs):
        return run_sweep(configs, log=log, max_trials=max_trials, counter=counter)

    if spec is None:
        statuses = sweep(p.configs)
    else:
        statuses = halving.run(p.configs, spec, p.sweep_dir, sweep, counter)
    run_followups(p, statuses, log, max_trials, on_new=lambda: record(p, argv), counter=counter)
    return statuses


@contextlib.contextmanager
def report_turn(sweep_dir: str):
    """Workers finishing together take turns analysing and reporting (a lock in the sweep folder)."""
    lock = os.path.join(sweep_dir, ".report.lock")
    while not locks.try_acquire(lock):
        signals.sleep(WAIT_POLL_S)
    try:
        yield
    finally:
        locks.release(lock)


def read_status(run_dir: str) -> str | None:
    """The status in run_dir/result.json, or None if there is none (not run, or killed)."""
    r = read_result(run_dir)
    return r.get("status") if r else None


def point_state(cfg: Config) -> tuple[str, dict | None]:
    """("finished" | "paused" | "changed" | "failed" | "todo", result): what the folder holds for this
    config. "paused": stopped at the rung this config asks for or later (short of it: "todo", it resumes)."""
    r = read_result(os.path.join(cfg.workdir, cfg.run_name))
    if not r:
        return "todo", None
    same = run_folder.result_fingerprint(r) == run_folder.fingerprint(cfg)
    if r.get("status") in FINISHED:
        return ("finished" if same else "changed"), r
    if r.get("status") == PAUSED and same:
        paused_at = int((r.get("config") or {}).get("pause_at_epoch") or 0)
        reached = 0 < cfg.pause_at_epoch <= paused_at  # stopped at this rung or a later one
        return ("paused" if reached else "todo"), r
    return ("failed" if same else "todo"), r


def changed_points(configs: list[Config]) -> list[str]:
    """Run names of finished points whose stored config differs from the current one."""
    return [c.run_name for c in configs if point_state(c)[0] == "changed"]


def pack(configs: list[Config], max_trials: int) -> list[list[Config]]:
    """Group configs by group_key() (first-seen order), split into programs of at most max_trials."""
    groups: dict = {}
    for c in configs:  # points resumed from checkpoints share a program only with those at the same step
        groups.setdefault((c.group_key(), _checkpoint_step(c)), []).append(c)
    return [g[i : i + max_trials] for g in groups.values() for i in range(0, len(g), max_trials)]


# ---------------------------------------------------------------------------- running


def _checkpoint_step(cfg: Config) -> int | None:
    """The step of a point's last checkpoint (a preempted point resumes from it), or None."""
    have = checkpoint.steps(checkpoint.dir_for(cfg))
    return have[-1] if have else None


def run_group_points(cfgs: list[Config]) -> list[tuple[str, dict | None, str | None]]:
    """Train a packed group (locks already held); [(status, result, error)] per config."""
    try:
        results = loop.run_group([c.replace(overwrite=True, resume=checkpoint.exists(c)) for c in cfgs])
        error = None
    except Exception as e:  # noqa: BLE001 - a failed group is recorded, the sweep goes on
        results, error = None, f"{type(e).__name__}: {e}".splitlines()[0][:300]
    out = []
    for i, cfg in enumerate(cfgs):
        r = results[i] if results else read_result(os.path.join(cfg.workdir, cfg.run_name))
        status = (r or {}).get("status", "failed") if results else "failed"
        if not results and r and r.get("status") in FINISHED and point_state(cfg)[0] == "finished":
            status = r["status"]  # this config finished before another trial of its group failed
        out.append((status, r, (r or {}).get("error") if results else error))
    return out


def run_sweep(
    configs: list[Config],
    log=print,
    max_trials: int = 8,
    poll_s: float = WAIT_POLL_S,
    counter: SweepProgress | None = None,
) -> dict:
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
        if state in ("finished", "paused"):
            statuses[cfg.run_name] = r["status"]
        else:
            todo.append(cfg)
    counter = counter or SweepProgress(len(configs), log)
    counter.skipped(len(statuses))
    waited = False

    def settled(cfg) -> bool:
        state, r = point_state(cfg)
        if state in ("finished", "paused") or (state == "failed" and _mtime(cfg) >= started):
            statuses[cfg.run_name] = r["status"]
            return True
        return False

    while todo:
        busy, progressed = [], False
        for group in pack(todo, max_trials):
            signals.check()  # a safe point between programs: no lock is half-taken here
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
                    log(
                        f"lbbench.sweep: one program for {len(claimed)} trials: "
                        f"{', '.join(c.run_name for c in claimed)}"
                    )
                t0 = time.perf_counter()
                outcomes = run_group_points(claimed)
                secs = (time.perf_counter() - t0) / len(claimed)
                progressed = True
            finally:
                for cfg in claimed:
                    locks.release(run_folder.lock_path(os.path.join(cfg.workdir, cfg.run_name)))
            for cfg, (status, result, error) in zip(claimed, outcomes):
                statuses[cfg.run_name] = status
                counter.finished(cfg, status, result, error, secs)
        todo = [c for c in busy if not settled(c)]
        if todo and not progressed:
            if not waited:
                log(
                    f"lbbench.sweep: waiting for {len(todo)} point(s) another process is training: "
                    f"{', '.join(c.run_name for c in todo[:5])}{' ...' if len(todo) > 5 else ''}"
                )
                waited = True
            signals.sleep(poll_s)
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


def latest_results(configs: list[Config]) -> dict:
    """{run_name: result} of every point that has a result.json of its current config (any status,
    paused rungs included): what the sweep's time accounting charges."""
    out = {}
    for c in configs:
        r = read_result(os.path.join(c.workdir, c.run_name))
        if r and run_folder.result_fingerprint(r) == run_folder.fingerprint(c):
            out[c.run_name] = r
    return out


def run_followups(p: Plan, statuses: dict, log, max_trials: int, on_new=None, counter=None) -> None:
    """Call followup(results, quick) and run the new points it returns, until it returns none new."""
    if not hasattr(p.module, "followup"):
        return
    known = {c.run_name: c for c in p.all_configs()}
    for _ in range(MAX_FOLLOWUP_ROUNDS):
        results = finished_results(list(known.values()))
        proposed = normalized_points(call_experiment(p.module, "followup", results, p.quick) or [], "followup()")
        new = []
        for point, cfg in zip(proposed, configs_for(p.base, proposed, p.sweep_dir, p.sets)):
            if point["run_name"] in known:
                if run_folder.fingerprint(known[point["run_name"]]) != run_folder.fingerprint(cfg):
                    raise SweepError(
                        f"followup() returned point {point['run_name']} with a different config "
                        "than the existing point of that name; give it a new run_name"
                    )
                continue
            new.append(point)
            known[point["run_name"]] = cfg
        if not new:
            return
        p.added += new
        if on_new:
            on_new()
        new_cfgs = [known[q["run_name"]] for q in new]
        changed = changed_points(new_cfgs)
        if changed:
            raise SweepError(
                f"followup point(s) {', '.join(changed)} already hold a finished run of a "
                "different config; rerun with --rerun_changed to replace them"
            )
        log(f"lbbench.sweep: followup() added {len(new)} point(s): {', '.join(q['run_name'] for q in new)}")
        if counter is not None:
            counter.added(len(new))
        statuses.update(run_sweep(new_cfgs, log=log, max_trials=max_trials, counter=counter))
    log(f"lbbench.sweep: warning: followup() still adds points after {MAX_FOLLOWUP_ROUNDS} rounds; stopping")


def analyze(p: Plan) -> dict | None:
    """Call the experiment's analyze() on the finished results; saved as analysis.json."""
    if not hasattr(p.module, "analyze"):
        return None
    results = {c.run_name: read_result(os.path.join(p.sweep_dir, c.run_name)) for c in p.all_configs()}
    results = {k: v for k, v in results.items() if v is not None and v.get("status") != PAUSED}
    try:
        analysis = p.module.analyze(p.sweep_dir, results, p.quick)
    except Exception as e:  # noqa: BLE001 - the report is still written, with the error in it
        print(f"lbbench.sweep: warning: analyze() failed: {type(e).__name__}: {e}", file=sys.stderr)
        analysis = {"error": f"{type(e).__name__}: {e}"}
    atomic.write_json(os.path.join(p.sweep_dir, "analysis.json"), analysis)
    return analysis
