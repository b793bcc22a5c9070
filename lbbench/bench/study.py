"""Benchmark (a script, not a test): what a study costs, projected from measured programs, beside what
a finished run of it measured.

    lbbench-bench --what=study [--experiment=critical_batch] [--sweep=DIR] [--trials=8] [--json=out.json]

Per batch size of the experiment's grid, two short programs of the study's own configs (evaluation
cadence, instruments and all), each at least `min_steps` steps in whole epochs:
- `trials` packed tuning trials: trial-examples/s of the training steps, and evaluation as a fraction
  of them (the stated cadence's real cost);
- two packed re-runs of one trial with different seeds (the experiment's `rerun_extra`: each its own
  data order, noise scale and end-of-run instruments on): seconds per trial-epoch, and the end-of-run
  instruments' seconds as a fraction of a tuning trial's training.
The projection multiplies these by the study's plan: the halving ladder (trials per rung, epochs
between rungs, programs of at most `trials`) and `winners` × seeds re-runs per batch size (how many
distinct winners a batch size has is only known afterwards: an assumption, printed). Compilation is
charged once per program (the persistent cache makes repeats cheaper: the projection is an upper
bound there). With --sweep, the finished sweep's measured seconds per batch size (sweep.json `time`)
are printed beside the projection.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile

from lbbench.data import load_for
from lbbench.runs.reader import read_json
from lbbench.study import accounting
from lbbench.sweep import halving as sweep_halving
from lbbench.sweep import runner
from lbbench.training import loop


def seeds_of(module) -> int:
    """How many seeds re-run each winner: the experiment's SEEDS (0 where it re-runs none), never a guess."""
    return len(getattr(module, "SEEDS", ()))


def _short(cfg, min_steps: int, steps_per_epoch: int, name: str, workdir: str):
    epochs = max(1, math.ceil(min_steps / steps_per_epoch))
    return cfg.replace(epochs=epochs, run_name=name, workdir=workdir, pause_at_epoch=0, save_params=False)


def _program(cfgs) -> dict:
    """Seconds of one packed program (from its first trial's result.json timing)."""
    t = loop.run_group(cfgs)[0]["timing"]
    n = t["trials_in_program"]
    return {
        "trials": n,
        "epochs": cfgs[0].epochs,
        "compile_s": t["compile_s"],
        "steps_s": t["steps_s"],
        "eval_s": t["eval_s"],
        "other_s": max(t["total_s"] - t["compile_s"] - t["train_s"], 0.0),
        "instruments_s": sum(float(v.get("seconds") or 0.0) for v in (t.get("instruments") or {}).values()),
        "trial_examples_per_s": t["steps"] * cfgs[0].batch_size * n / t["steps_s"],
    }


def measure_batch(cfgs, extra: dict, trials: int, min_steps: int, workdir: str, num_train: int) -> dict:
    """The tuning program and one re-run at one batch size (module docstring)."""
    b = cfgs[0].batch_size
    spe = num_train // b
    tune = _program([_short(c, min_steps, spe, f"b{b}-t{i}", workdir) for i, c in enumerate(cfgs[:trials])])
    reruns = [cfgs[0].replace(**extra, seed=s) for s in (1, 2)]
    rerun = _program([_short(c, min_steps, spe, f"b{b}-rerun{c.seed}", workdir) for c in reruns])
    per_trial_epoch = (tune["steps_s"] + tune["eval_s"]) / tune["trials"] / tune["epochs"]
    return {
        "batch_size": b,
        "tuning": tune,
        "rerun": rerun,
        "trial_epoch_s": per_trial_epoch,
        "eval_fraction": tune["eval_s"] / tune["steps_s"],
        "rerun_epoch_s": (rerun["steps_s"] + rerun["eval_s"]) / rerun["trials"] / rerun["epochs"],
        "instruments_fraction": rerun["instruments_s"] / (per_trial_epoch * rerun["epochs"]),
    }


def ladder(k: int, rung_epochs: list[int], keep: float | None) -> list[tuple[int, int]]:
    """[(trials, epochs trained in this rung)] of one bracket of k trials (no halving: one rung)."""
    out, n, done = [], k, 0
    for e in rung_epochs:
        out.append((n, e - done))
        done, n = e, max(1, math.floor(n * keep + 1e-9)) if keep else n
    return out


def project(m: dict, k: int, epochs: int, spec, seeds: int, winners: int, trials: int) -> dict:
    """Projected seconds of one batch size's tuning and re-runs from its measurements `m`."""
    rungs = ladder(k, spec.rung_epochs(epochs), spec.keep) if spec else [(k, epochs)]
    fixed = m["tuning"]["compile_s"] + m["tuning"]["other_s"]
    tuning = sum(math.ceil(n / trials) * fixed + n * de * m["trial_epoch_s"] for n, de in rungs)
    runs = winners * seeds
    rerun_fixed = m["rerun"]["compile_s"] + m["rerun"]["other_s"]
    per_rerun = epochs * m["rerun_epoch_s"] + m["rerun"]["instruments_s"]
    reruns = math.ceil(runs / trials) * rerun_fixed + runs * per_rerun
    return {"tuning_s": tuning, "reruns_s": reruns, "rungs": rungs, "reruns": runs}


def run(
    experiment: str = "critical_batch",
    sweep: str = "",
    trials: int = 8,
    min_steps: int = 50,
    winners: int = 2,
    log=print,
    quick: bool = False,
) -> dict:
    plan = runner.plan(experiment, quick, tempfile.gettempdir())
    spec = sweep_halving.spec_of(plan.module, quick)
    extra = plan.module.rerun_extra(quick) if hasattr(plan.module, "rerun_extra") else {}
    seeds = seeds_of(plan.module)
    by_batch: dict = {}
    for c in plan.configs:
        by_batch.setdefault(c.batch_size, []).append(c)
    workdir = tempfile.mkdtemp(prefix="lbbench-bench-study-")
    rows = []
    try:
        for _, cfgs in sorted(by_batch.items()):
            num_train = _num_train(cfgs[0])
            m = measure_batch(cfgs, extra, trials, min_steps, workdir, num_train)
            m.update(project(m, len(cfgs), cfgs[0].epochs, spec, seeds, winners, trials))
            rows.append(m)
            log(_line(m))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = {"experiment": experiment, "trials_per_program": trials, "winners_assumed": winners, "seeds": seeds}
    out["rows"] = rows
    out["projected_s"] = sum(r["tuning_s"] + r["reruns_s"] for r in rows)
    out["measured"] = _measured(sweep) if sweep else None
    for line in summary_lines(out):
        log(line)
    return out


def _num_train(cfg) -> int:
    return load_for(cfg).num_train


def _line(m: dict) -> str:
    return (
        f"B={m['batch_size']:>6}: {m['tuning']['trial_examples_per_s']:,.0f} trial-examples/s "
        f"({m['tuning']['trials']} packed), evaluation {100 * m['eval_fraction']:.0f} % of the steps, "
        f"a re-run's instruments {100 * m['instruments_fraction']:.0f} % of its training; projected "
        f"tuning {m['tuning_s']:.0f} s, re-runs {m['reruns_s']:.0f} s"
    )


def _measured(sweep: str) -> dict | None:
    """sweep.json's time record, its wall time summed over every invocation (a re-analysing rerun takes
    seconds; the wall time is the trainings')."""
    info = read_json(os.path.join(sweep, "sweep.json"))[0] or {}
    acc, walls = info.get("time"), [i.get("wall_s") or 0.0 for i in info.get("invocations", [])]
    return {**acc, "wall_s": sum(walls)} if acc and walls else acc


def summary_lines(out: dict) -> list[str]:
    lines = [
        f"projected: {out['projected_s'] / 60:.1f} min ({out['winners_assumed']} winners × {out['seeds']} seeds "
        f"re-run per batch size, programs of at most {out['trials_per_program']} trials)"
    ]
    acc = out.get("measured")
    if acc:
        lines.append(f"measured (sweep.json): {acc['wall_s'] / 60:.1f} min wall")
        for b, parts in acc["by_batch_size"].items():
            row = next((r for r in out["rows"] if str(r["batch_size"]) == b), None)
            proj = f"{row['tuning_s'] + row['reruns_s']:.0f}" if row else "—"
            measured = sum(v for k, v in parts.items() if k in accounting.PARTS)
            lines.append(f"  B={b:>6}: measured {measured:.0f} s, projected {proj} s")
    return lines
