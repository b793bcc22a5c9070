"""The local critical batch size over training, by branching, beside the gradient noise scale.

    python -m lbbench.sweep local_critical_batch [--quick]

Issue 23 item 3; Merrill et al. 2025 ("Critical batch size revisited"): the critical batch size is
measured where it applies, at points of one training run, by branching from its checkpoints at
larger batch sizes; they find it near 0 at initialisation, rising fast, then flat, and doubt that
the gradient noise scale B_simple (McCandlish et al. 2018) predicts it. The definition computed here
is lbbench.study.local_critical_batch (its docstring: the tolerance is a factor 2 in examples,
McCandlish's own definition of B_crit, not Merrill's fixed 0.01 nats, which is reported beside it).

**The reference** (the grid, one run): MNIST-1D, the default MLP, momentum SGD at B = REF_BATCH with
the critical_batch study's B = 64 winner at 10 epochs (experiments/results/critical_batch: base rate
0.0766 at B = 256 with √ scaling, i.e. 0.0383; momentum 0.926; weight decay 5e-4), a constant rate
from the first step (that study's protocol, warmup 0 steps, which its search covers): every branch
runs at a constant rate too, so the reference's own branch (B = REF_BATCH, multiplier 1) is the
reference continued from every checkpoint, early ones included; REF_EPOCHS epochs, its checkpoints
every CHECKPOINT_EVERY steps all kept (`keep_checkpoints`). All runs train on the same fixed, seeded
SUBSET = 57,344 = 7·2^13 examples, so every B = 2^k ≤ 8192 takes whole steps and sees exactly the
same examples per epoch.

**The branches** (`followup`, once the reference has finished): from each of CHECKPOINTS (reference
steps, geometric: early points matter), at every B in BATCHES, for WINDOW_EPOCHS epochs of the
subset (E = 114,688 examples: 3,584 steps at B = 32, 14 at 8192), each at the √-scaled base rate
times MULTIPLIERS (√ scaling is the conservative rule, linear scaling McCandlish's SGD optimum
below B_crit; ×4 reaches it up to 16× the reference batch). Params, momentum and weight decay from
the checkpoint (`--init_from=reference:STEP`; step 0 is a fresh run of the same seed, the reference's
own initialisation). Validation loss is evaluated at E/4, E/2 and E (`eval_every_steps`: a divisor
of half an epoch, so evaluations land on those exact steps); the best of the grid is selected on it
at each of them.

**B_simple at each checkpoint** (`noise_point`): a dedicated estimate at the checkpoint's parameters,
not the reference's in-training EMA, which is a trajectory average that lags (noise_scale.py): a
run from the checkpoint at a learning rate of 1e-9 (the parameters do not move measurably; the
Config refuses 0) at B = 2048 with 8 sub-batches of 256 measured at every step
(`noise_scale_every=1`), NOISE_EPOCHS epochs = 224 measurements averaged by a per-step EMA of
0.999 (weights 0.80–1 over the run: nearly a plain mean) — many independent sub-batch gradients at
one point, as Merrill et al. (App. B) measured it. The reference's own EMA at epoch ends is shown
beside it.

**Analysis**: per checkpoint, the local critical batch (interpolated in log2 B; censored where no or
every batch recovers), the same with the window halved (a window that decides the answer would move it),
Merrill's literal ε = 0.01 rule, B_simple and the ratio; then, for each of the two tolerances
(report.local_critical_batch.RULES: the answer can depend on it), whether B_simple tracks the local
critical batch (Spearman ρ ≥ 0.8 and the ratio within a factor 4: study.local_critical_batch.tracking)
and whether Merrill's shape reproduces (`merrill_shape`). Writes answer.md, local_critical_batch.json
(every branch outcome) and local_critical_batch.png.

Cost: 8 checkpoints × 9 batch sizes × 4 rates = 288 branch runs in 72 programs, 8 noise runs and
the reference; the measured wall time is in BUILD_NOTES ("Issue 23: the local critical batch size by
branching"). Quick mode: tiny_mlp on 4,096 examples, three checkpoints, two batch sizes, two rates:
ten small programs, mostly compilation.
"""

from __future__ import annotations

import os

from lbbench.config import Config
from lbbench.report import figures, study_figures
from lbbench.report import local_critical_batch as write_up
from lbbench.runs import atomic
from lbbench.study import local_critical_batch as lcb
from lbbench.study.protocol import SEP
from lbbench.sweep import env_dataset
from lbbench.training.trainer import progress_segment

NAME = "local_critical_batch"
REFERENCE = "reference"
REF_BATCH = 64
REF_HPARAMS = {"learning_rate": 0.0766, "momentum": 0.926, "weight_decay": 5e-4}  # critical_batch's B = 64 winner
FULL = {
    "subset": 7 * 2**13,
    "ref_epochs": 8,
    "checkpoint_every": 112,
    "checkpoints": (0, 112, 224, 448, 896, 1792, 3584, 7168),
    "batches": tuple(2**k for k in range(5, 14)),
    "multipliers": (0.5, 1.0, 2.0, 4.0),
    "window_epochs": 2,
    "noise_batch": 2048,
    "noise_groups": 8,
    "noise_epochs": 8,
}
QUICK = {
    "subset": 4096,
    "ref_epochs": 2,
    "checkpoint_every": 32,
    "checkpoints": (0, 32, 128),
    "batches": (64, 512),
    "multipliers": (1.0, 2.0),
    "window_epochs": 2,
    "noise_batch": 512,
    "noise_groups": 4,
    "noise_epochs": 2,
}
FROZEN_LR = 1e-9  # the noise estimate's rate: the parameters stay put (Config refuses 0)
NOISE_EMA = 0.999


def plan(quick: bool) -> dict:
    return QUICK if quick else FULL


def window(quick: bool) -> int:
    """E: the examples every branch trains for."""
    p = plan(quick)
    return p["window_epochs"] * p["subset"]


def aligned_every(period: int, steps_per_epoch: int) -> int:
    """The largest divisor of `period` no longer than the trainer's progress segment: as
    `eval_every_steps` it becomes the compiled segment, so evaluations and checkpoints (taken at
    segment ends) land exactly on every multiple of `period`."""
    return max(d for d in range(1, period + 1) if period % d == 0 and d <= progress_segment(steps_per_epoch))


def eval_every(batch: int, subset: int) -> int:
    """A branch's evaluation interval: every half epoch exactly (E/4 and E/2 of the window); 0 (epoch
    ends only) when an epoch has an odd number of steps."""
    steps = subset // batch
    return 0 if steps % 2 else aligned_every(steps // 2, steps)


def base_config(quick: bool) -> Config:
    p = plan(quick)
    return Config(
        dataset=env_dataset(),
        model="tiny_mlp" if quick else "mlp",
        optimizer="momentum",
        lr_scaling="sqrt",
        base_batch_size=256,
        schedule="constant",
        train_subset=p["subset"],
        sharpness=False,
        save_params=False,
        train_eval_examples=1000 if quick else 2000,
        noise_scale_groups=1,
        **REF_HPARAMS,
    )


def grid(quick: bool) -> list[dict]:
    """The reference run, keeping every checkpoint (its noise scale on: its own trajectory EMA)."""
    p = plan(quick)
    return [
        {
            "run_name": REFERENCE,
            "batch_size": REF_BATCH,
            "epochs": p["ref_epochs"],
            "noise_scale_groups": 4,
            "checkpoint_every_steps": p["checkpoint_every"],
            "keep_checkpoints": True,
            "eval_every_steps": aligned_every(p["checkpoint_every"], p["subset"] // REF_BATCH),
        }
    ]


def _tag(m: float) -> str:
    return f"x{m:g}".replace(".", "p")


def branch_name(step: int, batch: int, multiplier: float) -> str:
    return f"c{step}{SEP}b{batch}{SEP}{_tag(multiplier)}"


def noise_name(step: int) -> str:
    return f"c{step}{SEP}noise"


def _start(step: int) -> dict:
    return {"init_from": f"{REFERENCE}:{step}"} if step else {}


def branch_point(step: int, batch: int, multiplier: float, quick: bool) -> dict:
    p = plan(quick)
    return {
        "run_name": branch_name(step, batch, multiplier),
        "batch_size": batch,
        "epochs": p["window_epochs"],
        "learning_rate": REF_HPARAMS["learning_rate"] * multiplier,
        "eval_every_steps": eval_every(batch, p["subset"]),
        **_start(step),
    }


def noise_point(step: int, quick: bool) -> dict:
    """B_simple at the checkpoint's parameters: many sub-batch gradients at a rate that moves nothing."""
    p = plan(quick)
    return {
        "run_name": noise_name(step),
        "batch_size": p["noise_batch"],
        "epochs": p["noise_epochs"],
        "optimizer": "sgd",
        "learning_rate": FROZEN_LR,
        "lr_scaling": "none",
        "weight_decay": 0.0,
        "noise_scale_groups": p["noise_groups"],
        "noise_scale_every": 1,
        "noise_scale_ema": NOISE_EMA,
        **_start(step),
    }


def followup(results: dict, quick: bool) -> list[dict]:
    """Once the reference has completed: every branch and every noise estimate, from each checkpoint."""
    if (results.get(REFERENCE) or {}).get("status") != "completed":
        return []
    p = plan(quick)
    points = []
    for step in p["checkpoints"]:
        points += [branch_point(step, b, m, quick) for b in p["batches"] for m in p["multipliers"]]
        points.append(noise_point(step, quick))
    return points


# ---------------------------------------------------------------------------------- analysis


def val_curve(result: dict | None) -> dict:
    """{examples: validation loss} of one run, from its evaluations and epoch ends (None where missing
    or not finite; a run that is not completed has no curve: a diverged branch never recovers)."""
    if not result or result.get("status") != "completed":
        return {}
    batch = result["config"]["batch_size"]
    out = {}
    for rows in (result.get("evals") or {}, result.get("history") or {}):
        for step, loss in zip(rows.get("step") or (), rows.get("val_loss") or ()):
            if step is not None:
                out[int(step) * batch] = loss
    return out


def checkpoint_analysis(results: dict, step: int, quick: bool) -> dict:
    """The branches from one checkpoint: the best of the rate grid per B, the local critical batch at
    the window and at half of it, Merrill's literal rule, and B_simple there."""
    p, e = plan(quick), window(quick)
    curves, winners = {}, {}
    for b in p["batches"]:
        trials = [val_curve(results.get(branch_name(step, b, m))) for m in p["multipliers"]]
        best, won = lcb.best_over_grid(trials)
        if best:
            curves[b] = best
            winners[b] = p["multipliers"][won[e]] if e in won else None
    noise = (results.get(noise_name(step)) or {}).get("noise_scale") or {}
    return {
        "step": step,
        "examples_seen": step * REF_BATCH,
        "fraction": step / (p["ref_epochs"] * (p["subset"] // REF_BATCH)),
        "reference_val_loss": val_curve(results.get(REFERENCE)).get(step * REF_BATCH),
        "window": lcb.local_critical_batch(curves, e) if curves else None,
        "half_window": lcb.local_critical_batch(curves, e // 2) if curves else None,
        "merrill_eps": lcb.fixed_tolerance(curves, e) if curves else None,
        "winning_multiplier": winners,
        "b_simple": noise.get("b_simple"),
        "b_simple_reference_ema": _reference_ema(results.get(REFERENCE), step),
    }


def _reference_ema(ref: dict | None, step: int) -> float | None:
    """The reference's own in-training B_simple (its per-step EMA, a trajectory average) at an epoch end
    that is exactly this step, else None."""
    h = (ref or {}).get("history") or {}
    for s, v in zip(h.get("step") or (), h.get("noise_b_simple") or ()):
        if s == step:
            return v
    return None


def _estimate(w: dict | None) -> tuple[float | None, str | None]:
    if not w or not w.get("defined"):
        return None, None
    return w["interpolated"], w["censored"]


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    p = plan(quick)
    rows = [checkpoint_analysis(results, s, quick) for s in p["checkpoints"]]
    b_simple = [r["b_simple"] for r in rows]
    estimates = {
        "examples": [_estimate(r["window"]) for r in rows],
        "merrill_eps": [_censor(r["merrill_eps"], p["batches"]) for r in rows],
    }
    summary = {
        "window_examples": window(quick),
        "reference_batch": REF_BATCH,
        "smallest_batch": min(p["batches"]),
        "checkpoints": [_headline(r) for r in rows],
        "rules": {
            rule: {
                "tracking": lcb.tracking([v for v, _ in values], b_simple),
                "shape": lcb.merrill_shape(values, min(p["batches"])),
            }
            for rule, values in estimates.items()
        },
        "half_window_ratio": _window_ratios(rows),
    }
    summary["conclusions"] = write_up.conclusions(summary)
    atomic.write_json(os.path.join(sweep_dir, "local_critical_batch.json"), {**summary, "branches": rows})
    text = write_up.answer_markdown(summary, rows, plan(quick), window(quick), REF_BATCH)
    atomic.write_text(os.path.join(sweep_dir, "answer.md"), text)
    figures.save(study_figures.local_critical_batch_figure(rows), os.path.join(sweep_dir, "local_critical_batch.png"))
    return {"summary": summary}


def _censor(value, batches) -> tuple:
    """(value, censoring) of a discrete answer on the grid: at its smallest batch "below", largest "above"."""
    if value is None:
        return None, None
    return value, "below" if value == min(batches) else "above" if value == max(batches) else None


def _headline(r: dict) -> dict:
    value, censored = _estimate(r["window"])
    half, half_censored = _estimate(r["half_window"])
    return {
        "step": r["step"],
        "fraction": r["fraction"],
        "local_critical_batch": value,
        "censored": censored,
        "discrete": (r["window"] or {}).get("discrete"),
        "half_window": half,
        "half_window_censored": half_censored,
        "merrill_eps": r["merrill_eps"],
        "b_simple": r["b_simple"],
    }


def _window_ratios(rows: list[dict]) -> dict | None:
    """local critical batch at E over the same at E/2, where both are uncensored: a window-set answer
    doubles with the window, a property of the checkpoint stays put."""
    ratios = []
    for r in rows:
        (a, ca), (b, cb) = _estimate(r["window"]), _estimate(r["half_window"])
        if a and b and ca is None and cb is None:
            ratios.append(a / b)
    if not ratios:
        return None
    return {"n": len(ratios), "low": min(ratios), "high": max(ratios), "median": sorted(ratios)[len(ratios) // 2]}


conclusions = write_up.conclusions  # the study's sentences (tests check the committed prose with it)
