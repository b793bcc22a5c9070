"""Sweep runner: `python -m lbbench.sweep experiments/keskar.py [--quick] [--workdir sweeps] [--dry_run]`.

An experiment file is a plain Python module defining

    NAME: str
    base_config(quick: bool) -> Config
    grid(quick: bool) -> list[dict]       # Config overrides per run, each with a unique run_name
    analyze(sweep_dir, results, quick) -> dict   # optional post-processing (e.g. interpolation)

Every grid point runs in this process via `train.run` into `<workdir>/<NAME>[-quick]/<run_name>`.
The sweep is resumable: a point whose result.json says completed or diverged is skipped; anything
else (failed, or killed half-way, which leaves no result.json because train.run writes it
atomically at the end) has its run directory cleared and is run again, so partially written
TensorBoard files never mix with the rerun's. Ctrl-C or SIGKILL at any time is therefore safe.
Exit status: 0 all points completed or diverged, 1 some failed, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time

from lbbench.config import Config, ConfigError

FINISHED = ("completed", "diverged")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class SweepError(ValueError):
    """The experiment file or the command line is unusable; the message is one line."""


def env_dataset(default: str = "mnist1d") -> str:
    """Dataset for an experiment: $LBBENCH_DATASET (e.g. mnist, cifar10) if set, else `default`."""
    return os.environ.get("LBBENCH_DATASET") or default


# ---------------------------------------------------------------------------- experiment files

def load_experiment(path: str):
    """Import an experiment file as a module and check it defines NAME, base_config and grid."""
    if not os.path.isfile(path):
        raise SweepError(f"experiment file {path!r} does not exist")
    name = "lbbench_experiment_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - reported as one line
        raise SweepError(f"cannot import {path}: {type(e).__name__}: {e}") from e
    for attr in ("NAME", "base_config", "grid"):
        if not hasattr(module, attr):
            raise SweepError(f"{path} does not define {attr}")
    return module


def build_configs(module, quick: bool, sweep_dir: str) -> tuple[list[dict], list[Config]]:
    """The grid's override dicts and their validated Configs (workdir = the sweep directory)."""
    base = module.base_config(quick)
    points = module.grid(quick)
    if not points:
        raise SweepError(f"experiment {module.NAME} has an empty grid")
    names = [p.get("run_name") for p in points]
    if not all(names):
        raise SweepError("every grid point needs a run_name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SweepError(f"duplicate run_name(s) in grid: {', '.join(dupes)}")
    configs = []
    for p in points:
        try:
            configs.append(base.replace(**{**p, "workdir": sweep_dir}).validate())
        except ConfigError as e:
            raise SweepError(f"grid point {p['run_name']}: {e}") from e
        except TypeError as e:  # unknown Config field
            raise SweepError(f"grid point {p['run_name']}: {e}") from e
    return points, configs


def sweep_dir_for(workdir: str, name: str, quick: bool) -> str:
    return os.path.join(workdir, name + ("-quick" if quick else ""))


# ---------------------------------------------------------------------------- bookkeeping

def _git_commit() -> str | None:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_sweep_json(sweep_dir: str, module, path: str, quick: bool, points: list[dict], argv: list[str]):
    """Record what was swept and where (atomically), so the report and a rerun can be traced."""
    from lbbench.writer import atomic_write_json

    info = {"experiment": module.NAME, "experiment_file": os.path.abspath(path), "quick": quick,
            "grid": points, "base_config": module.base_config(quick).to_dict(),
            "command": " ".join([sys.executable, "-m", "lbbench.sweep", *argv[1:]]),
            "git_commit": _git_commit(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine": {"hostname": platform.node(), "platform": platform.platform(),
                        "processor": platform.machine(), "cpus": os.cpu_count(),
                        "python": platform.python_version()}}
    atomic_write_json(os.path.join(sweep_dir, "sweep.json"), info)


def read_status(run_dir: str) -> str | None:
    """The status in run_dir/result.json, or None if there is none (not run, or killed)."""
    try:
        with open(os.path.join(run_dir, "result.json")) as f:
            return json.load(f).get("status")
    except (OSError, ValueError):
        return None


def load_result(run_dir: str) -> dict | None:
    try:
        with open(os.path.join(run_dir, "result.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------- running

def _eta(seconds_per_run: list[float], remaining: int) -> str:
    if not seconds_per_run or not remaining:
        return "done" if not remaining else "?"
    s = sum(seconds_per_run) / len(seconds_per_run) * remaining
    return f"~{s / 60:.0f} min left" if s >= 90 else f"~{s:.0f} s left"


def run_point(cfg: Config) -> tuple[str, dict | None, str | None]:
    """Train one grid point from a clean run directory; (status, result, error summary)."""
    from lbbench import train

    run_dir = os.path.join(cfg.workdir, cfg.run_name)
    if os.path.isdir(run_dir):  # a killed or failed earlier attempt: start from scratch
        shutil.rmtree(run_dir)
    try:
        result = train.run(cfg)
    except Exception as e:  # noqa: BLE001 - a failed point is recorded, the sweep goes on
        return "failed", load_result(run_dir), f"{type(e).__name__}: {e}".splitlines()[0][:300]
    return result["status"], result, result.get("error")


def _progress(i: int, n: int, cfg: Config, status: str, result: dict | None, error, secs: float, eta: str):
    acc = ((result or {}).get("final") or {}).get("test_accuracy")
    what = f"test_acc {acc:.4f}" if status == "completed" and acc is not None else (error or "")
    return f"[{i}/{n}] {cfg.run_name}: {status} {what} ({secs:.0f} s; {eta})"


def run_sweep(configs: list[Config], log=print) -> dict:
    """Run every config not already finished; returns {run_name: status} for all of them."""
    statuses, todo = {}, []
    for cfg in configs:
        s = read_status(os.path.join(cfg.workdir, cfg.run_name))
        if s in FINISHED:
            statuses[cfg.run_name] = s
        else:
            todo.append(cfg)
    if statuses:
        log(f"lbbench.sweep: {len(statuses)} of {len(configs)} runs already finished; skipping them")
    done_secs = []
    for j, cfg in enumerate(todo):
        t0 = time.perf_counter()
        status, result, error = run_point(cfg)
        done_secs.append(time.perf_counter() - t0)
        statuses[cfg.run_name] = status
        i = len(configs) - len(todo) + j + 1
        log(_progress(i, len(configs), cfg, status, result, error, done_secs[-1],
                      _eta(done_secs, len(todo) - j - 1)))
    return statuses


def run_analysis(module, sweep_dir: str, configs: list[Config], quick: bool) -> dict | None:
    """Call the experiment's analyze() on the finished results; saved as analysis.json."""
    if not hasattr(module, "analyze"):
        return None
    from lbbench.writer import atomic_write_json

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
    p.add_argument("--dry_run", action="store_true", help="print the grid and exit without training")
    return p.parse_args(argv[1:])


def _print_grid(configs: list[Config], sweep_dir: str) -> None:
    for i, c in enumerate(configs, 1):
        state = read_status(os.path.join(sweep_dir, c.run_name)) or "todo"
        print(f"[{i}/{len(configs)}] {c.run_name}: {c.dataset} {c.model} {c.optimizer} B={c.batch_size} "
              f"lr={c.scaled_learning_rate:.4g} {c.schedule} epochs={c.epochs} seed={c.seed} ({state})")


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
        module = load_experiment(args.experiment)
        sweep_dir = sweep_dir_for(args.workdir, module.NAME, args.quick)
        points, configs = build_configs(module, args.quick, sweep_dir)
        if args.dry_run:
            _print_grid(configs, sweep_dir)
            return EXIT_OK
        os.makedirs(sweep_dir, exist_ok=True)
        write_sweep_json(sweep_dir, module, args.experiment, args.quick, points, argv)
    except (SweepError, ConfigError) as e:
        print(f"lbbench.sweep: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        print(f"lbbench.sweep: error: cannot write the sweep directory: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"lbbench.sweep: {module.NAME}: {len(configs)} runs in {sweep_dir}", flush=True)
    try:
        statuses = run_sweep(configs, log=lambda m: print(m, flush=True))
    except KeyboardInterrupt:
        print("lbbench.sweep: interrupted; rerun the same command to finish the remaining runs",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    from lbbench import report

    analysis = run_analysis(module, sweep_dir, configs, args.quick)
    path = report.write_report(sweep_dir, analysis=analysis)
    failed = sorted(k for k, s in statuses.items() if s not in FINISHED)
    counts = {s: list(statuses.values()).count(s) for s in sorted(set(statuses.values()))}
    print(f"lbbench.sweep: {counts}; report {path}")
    if failed:
        print(f"lbbench.sweep: failed runs (rerun to retry): {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv))
