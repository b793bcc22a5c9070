"""Critical batch size, measured directly: tune every batch size, then steps to target vs B.

    python -m lbbench.sweep critical_batch [--quick]

Issues 10 and 17. Shallue et al. 2019 and Nado et al. 2021: at one fixed learning rate, "large
batches fail" is manufactured by the comparison. Here every batch size B = 32 … 16384 gets the same
budget of K = 32 quasi-random trials (scrambled Sobol over base learning rate, log(1 − momentum),
warmup *in steps* (0–500, the same at every B and run length) and weight decay;
lbbench.study.search.default_space("momentum")), momentum SGD with a linear warmup then a constant
rate, so a trial's learning rate at step t does not depend on the run length (Zhang et al. 2024),
and the learning rate searched as a base rate at B = 256 with sqrt scaling so the same space is
centred at every B. Each batch size draws its own K points (issue 22: independent per arm; a
Sobol scramble seeded by the batch size's index).

**Successive halving** (issue 19; lbbench/study/halving.py), declared here before the runs: each
batch size's K trials are ranked on validation accuracy after 1/9 and 1/3 of their epochs, the top
⌊n/3⌋ go on from their own checkpoints, so 32 → 10 → 3 trials run the full budget (about 7.8
full runs' worth of training instead of 32). Only full-budget trials can be winners.
**Range-edge rule** (study.protocol.widening): a batch size whose winner sits in the outer 10 % of a
searched range gets K_WIDEN = 8 more full-budget trials over that range widened on that side before
its winners are re-run.
`lbbench-sweep critical_batch --full_search` trains all K to the end instead.
The tuning trials measure nothing but what selection reads (validation accuracy at the cadence
below; test only at epoch ends; no gradient noise scale, no sharpness): the test set between epochs
and the instruments run in the winners' re-runs, where the analysis reads them.

**Data roles** (STUDY_PROTOCOL.md §2). Targets, crossings and winners are on the validation set
(5,000 MNIST-1D examples generated apart from train and test); test accuracy is reported once, for
the re-runs, at the budget's end. After the grid, `followup` re-runs each batch size's winners —
fewest steps to each target, best validation accuracy at the end of each budget, chosen on seed 0 —
with seeds 1 … 8 (a 1-point non-inferiority claim needs ≈ 8; issue 22) and the gradient noise scale
and sharpness measurement on (λ_max, trace, ε-sharpness, and adaptive sharpness at ρ = 0.5 for the
correlation study, lbbench.report.sharpness_vs_gap).

**Budget rule.** epochs(B) = max(E_MIN, ceil(T_MIN / floor(N / B))), E_MIN = 10 epochs and
T_MIN = 1000 steps (B = 32 … 512: 10 epochs; 1024: 18; 4096: 72; 16384: 334 epochs = 1002 steps).
With a schedule that is constant after warmup, a run's first t steps are the same whatever its
length, so the run length can only decide *whether* a trial crosses inside it, never *when*:
doubling it leaves every crossing, hence B_crit, unchanged as long as each winner crosses inside
the run (`analyze` reports each winner's crossing as a fraction of its run).

**Targets and cadence.** Validation accuracy 0.85, 0.90 and 0.93 on MNIST-1D (the MLP tops out
near 0.93–0.95). Every batch size evaluates the validation set every EVAL_EXAMPLES = 6,000
examples (every ceil(6000/B) steps, at least every step), so the crossing is resolved alike at every
B; the crossing step is interpolated linearly between the two evaluations around it and their
spacing is reported as its quantisation.

**Analysis** (lbbench.study): per target, S(B) = S_min(1 + B_crit/B) fitted in log space to the
geometric mean over re-run seeds of the winner's steps; the headline interval is the residual
bootstrap (the scatter around the fit, tuning granularity included), beside the bootstrap over
tuning trials and the seed-only one (labelled); regimes read from the fitted curve (perfect below
B_crit/4, maximal above 4·B_crit) with the measured local slopes as data; the 20 %-overhead batch
0.2·B_crit relative to the fitted perfect-scaling asymptote; B_simple (McCandlish et al. 2018) read
at the crossing where its per-step EMA has equilibrated (the crossing at least
study.critical_batch.EQUILIBRATED_STEPS steps in), the end-of-run value labelled a trajectory average. Writes answer.md,
critical_batch.json, steps_to_target_<target>.png and accuracy_vs_batch.png.

Quick mode: tiny MLP, B ∈ {256, 1024}, 2 epochs, 3 trials (1 goes on after epoch 1), 2 re-run seeds;
two low targets.
"""

import math
import os
from dataclasses import dataclass

from lbbench.config import Config
from lbbench.models import uses_batch_norm
from lbbench.report import critical_batch as write_up
from lbbench.report import figures, study_figures
from lbbench.runs import atomic
from lbbench.study import answer, bootstrap, compare, critical_batch, protocol, targets
from lbbench.study.halving import Halving
from lbbench.study.search import default_space
from lbbench.sweep import env_dataset
from lbbench.sweep import halving as sweep_halving

NAME = "critical_batch"
TARGETS = {"mnist1d": (0.85, 0.90, 0.93), "mnist": (0.97, 0.98, 0.985), "fashion_mnist": (0.85, 0.88, 0.9)}
QUICK_TARGETS = (0.12, 0.15)
TRAIN_SIZE = {"mnist1d": 60000, "mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "cifar100": 50000}
E_MIN, T_MIN = 10, 1000
EVAL_EXAMPLES = 6000
K, SEEDS, SEARCH_SEED = 32, tuple(range(1, 9)), 0
K_WIDEN, WIDEN_SEED = 8, 1000  # the range-edge rule: 8 more full-budget trials over the widened range
RUNGS, KEEP = (1 / 9, 1 / 3, 1.0), 1 / 3
ADAPTIVE_RHO = 0.5  # the re-runs' adaptive sharpness radius (ASAM's range for SGD; issue 23's correlation)


@dataclass(frozen=True)
class Workload:
    """The model a critical-batch study trains and the batch sizes it tunes (quick mode: the tiny twin)."""

    model: str
    quick_model: str
    batch_sizes: tuple[int, ...]


MLP = Workload("mlp", "tiny_mlp", tuple(2**k for k in range(5, 15)))


def batches(quick: bool, w: Workload = MLP) -> tuple[int, ...]:
    return (256, 1024) if quick else w.batch_sizes


def _steps_per_epoch(b: int) -> int:
    """Steps per epoch: the official training set, less the validation set a real dataset carves from it
    (MNIST-1D generates its validation set apart)."""
    name = env_dataset()
    carved = 0 if name == "mnist1d" else Config().validation_examples
    return (TRAIN_SIZE.get(name, 60000) - carved) // b


def epochs(b: int, quick: bool) -> int:
    if quick:
        return 2
    return max(E_MIN, math.ceil(T_MIN / _steps_per_epoch(b)))


def eval_every(b: int, quick: bool) -> int:
    """Validation evaluations every EVAL_EXAMPLES examples (at least every step; 0 = once an epoch)."""
    every = max(1, math.ceil(EVAL_EXAMPLES / b))
    return 0 if quick or every >= _steps_per_epoch(b) else every


def targets_of(quick: bool) -> tuple[float, ...]:
    return QUICK_TARGETS if quick else TARGETS.get(env_dataset(), TARGETS["mnist1d"])


def base_config(quick: bool, w: Workload = MLP) -> Config:
    return Config(
        dataset=env_dataset(),
        model=w.quick_model if quick else w.model,
        optimizer="momentum",
        lr_scaling="sqrt",
        base_batch_size=256,
        schedule="warmup",
        sharpness=False,
        noise_scale_groups=1,  # off on the tuning path; the winners' re-runs measure it
        eval_test_every_steps=False,  # tuning selects on validation; the re-runs read test
        save_params=False,
        train_eval_examples=2000,
    )


def halving(quick: bool) -> Halving:
    """Successive halving per batch size on validation accuracy (module docstring)."""
    return Halving(rungs=RUNGS, keep=KEEP, metric="val_accuracy", bracket=lambda cfg: cfg.batch_size)


def grid(quick: bool, w: Workload = MLP) -> list[dict]:
    space = default_space("momentum")
    points = []
    for j, b in enumerate(batches(quick, w)):
        e = epochs(b, quick)
        for i, t in enumerate(space.trials(3 if quick else K, seed=SEARCH_SEED + j)):
            points.append(
                {
                    **t,
                    "batch_size": b,
                    "epochs": e,
                    "seed": 0,
                    "eval_every_steps": eval_every(b, quick),
                    "run_name": f"b{b}{protocol.SEP}t{i}",
                }
            )
    return points


def _budgets(quick: bool, w: Workload = MLP) -> dict:
    return {
        "epochs": 2 if quick else E_MIN,
        "steps": min(epochs(b, quick) * _steps_per_epoch(b) for b in batches(quick, w)),
    }


def rerun_extra(quick: bool, w: Workload = MLP) -> dict:
    """What the winners' re-runs switch on that the tuning trials leave off (lbbench-bench --what=study
    reads it too). The noise scale stays off for a BatchNorm model: its sub-batch gradient carries other
    batch statistics than the step's, so B_simple is not that model's noise scale, and study.answer keeps
    the noise-scale fields in a BatchNorm trial's key — switched on here, they would split the winner from
    its seeds."""
    return {
        "sharpness": not quick,
        "adaptive_sharpness_rho": 0.0 if quick else ADAPTIVE_RHO,
        "noise_scale_groups": 1 if uses_batch_norm(w.model) else Config().noise_scale_groups,
        "eval_test_every_steps": True,
    }


def followup(results: dict, quick: bool, w: Workload = MLP) -> list[dict]:
    """Seeds of each batch size's winners (fewest steps to each target; best at the end of each budget)."""
    bud = _budgets(quick, w)
    by_arm: dict = {}
    for i, goal in enumerate(targets_of(quick)):
        win = protocol.winners(
            results,
            answer.by_batch,
            target=goal,
            epoch_budget=bud["epochs"] if i == 0 else None,
            step_budget=bud["steps"] if i == 0 else None,
        )
        for a, ns in win.items():
            by_arm.setdefault(a, set()).update(ns)
    base = base_config(quick, w)
    space = default_space("momentum")
    wide, pending = protocol.widening(results, by_arm, lambda a: space, base, widen_k(quick), WIDEN_SEED)
    names = {n for a, ns in by_arm.items() if a not in pending for n in ns}
    seeds = SEEDS[:2] if quick else SEEDS
    return wide + protocol.rerun_points(results, names, base, seeds, extra=rerun_extra(quick, w))


def widen_k(quick: bool) -> int:
    """Trials added to an arm whose winner sits at a range edge (protocol.widening; quick: 1)."""
    return 1 if quick else K_WIDEN


def analyze(sweep_dir: str, results: dict, quick: bool, w: Workload = MLP) -> dict:
    bud = _budgets(quick, w)
    stopped = {int(b): n for b, n in sweep_halving.stopped_by_bracket(sweep_dir, results).items()}
    rows = answer.answer_rows(results, epoch_budget=bud["epochs"], step_budget=bud["steps"], stopped=stopped)
    per_target = [target_analysis(results, goal) for goal in targets_of(quick)]
    out = {"targets": per_target, "budgets": bud, "answer": rows, "no_effect": answer.no_effect(results)}
    out["degradation"] = degradation(rows)
    atomic.write_json(os.path.join(sweep_dir, "critical_batch.json"), out)
    summary = {
        "targets": [_headline(t) for t in per_target],
        "degradation": out["degradation"],
        "budgets": bud,
        "no_effect_pairs": len(out["no_effect"]),
    }
    summary["conclusions"] = write_up.conclusions(summary)
    atomic.write_text(
        os.path.join(sweep_dir, "answer.md"),
        compare.conclusions_markdown(summary["conclusions"])
        + answer.answer_markdown(rows)
        + "\n"
        + answer.tuning_markdown(rows, results, lambda arm: default_space("momentum"))
        + "\n"
        + _ladder_markdown(sweep_dir)
        + write_up.degradation_markdown(out["degradation"])
        + "\n"
        + "\n".join(write_up.critical_batch_markdown(t) for t in per_target)
        + answer.no_effect_markdown(out["no_effect"], results),
    )
    for t in per_target:
        fig = study_figures.steps_figure(t["steps"], t["fit_residual"], t["target"], t["b_simple_equilibrated"])
        figures.save(fig, os.path.join(sweep_dir, f"steps_to_target_{t['target']:g}.png"))
    figures.save(study_figures.accuracy_figure(rows), os.path.join(sweep_dir, "accuracy_vs_batch.png"))
    return {"summary": summary, "critical_batch": out}


def _ladder_markdown(sweep_dir: str) -> str:
    """Where the ladder is, and that the tuning curve above covers only the trials that ran the full budget."""
    if not os.path.exists(os.path.join(sweep_dir, "halving.md")):
        return ""
    return (
        "Successive halving stopped most trials early (halving.md: which trial stopped at which rung, with its "
        "validation accuracy there); the curve above is over the trials that ran the full budget.\n\n"
    )


def degradation(rows: list[dict]) -> dict:
    """Per budget, every batch size against the smallest one (test accuracy of the re-runs at the budget's
    end), judged as one family by the verdict rule: {"epochs": {B: verdict dict}, "steps": {...}}."""
    out = {}
    for kind in ("epochs", "steps"):
        cells = {r["arm"]: r.get(kind) for r in rows if (r.get(kind) or {}).get("best")}
        if not cells:
            continue
        ref = min(cells)
        diffs = {b: compare.cell_difference(c, cells[ref]) for b, c in cells.items() if b != ref}
        out[kind] = {"reference": ref, "comparisons": compare.judge(diffs)}
    return out


def target_analysis(results: dict, goal: float) -> dict:
    """Steps to one validation target per batch size, the fits with their intervals, regimes, B_simple."""
    summary = answer.steps_summary(results, goal)
    seeds = {r["arm"]: r["seed_steps"] for r in summary if r["best"] is not None}
    point = {b: critical_batch.geomean(v) for b, v in seeds.items()}
    reached = {b: s for b, s in point.items() if s is not None}
    trials = {r["arm"]: list(r["tuning_steps"].values()) for r in summary}
    out = {"target": goal, "steps": summary, "crossings": _crossings(results, summary, goal)}
    out["fit_residual"] = bootstrap.residual_fit_ci(reached)
    out["fit_seeds"] = bootstrap.fit_ci(seeds, reduce="geomean") if len(reached) >= 2 else None
    reachable = {b: v for b, v in trials.items() if any(x is not None for x in v)}
    out["fit_trials"] = bootstrap.fit_ci(reachable, reduce="min") if len(reachable) >= 2 else None
    fit = (out["fit_residual"] or {}).get("fit")
    out["regimes"] = {
        "fitted": critical_batch.fitted_regimes(fit["b_crit"]) if fit and fit["identified"] else None,
        "by_batch": {b: critical_batch.regime_of(b, fit["b_crit"]) for b in reached}
        if fit and fit["identified"]
        else {},
        "local_slopes": critical_batch.regimes(list(reached), list(reached.values())) if len(reached) >= 2 else [],
    }
    out["b_simple_equilibrated"] = _mean([c["b_simple"] for c in out["crossings"].values() if c["equilibrated"]])
    out["b_simple_final_trajectory_average"] = {r["arm"]: r["b_simple_final"] for r in summary}
    return out


def _crossings(results: dict, summary: list[dict], goal: float) -> dict:
    """Per batch size, the winner's re-runs: crossing step, its quantisation, the fraction of the run it
    used, and B_simple at the crossing with whether the estimator had equilibrated there."""
    out = {}
    for r in summary:
        if r["best"] is None:
            continue
        runs = [v for k, v in results.items() if k.startswith(r["best"] + protocol.SEP) and v and "config" in v]
        hits = [(x, targets.first_crossing(x, goal)) for x in runs]
        hits = [(x, h) for x, h in hits if h]
        if not hits:
            continue
        length = max(x["history"]["step"][-1] for x, _ in hits)
        steps = [h["step"] for _, h in hits]
        b_simple = _mean([targets.b_simple_at(x, h["index"]) for x, h in hits])
        out[r["arm"]] = {
            "steps": steps,
            "quantisation": max(h["quantisation"] for _, h in hits),
            "fraction_of_run": max(steps) / length,
            "b_simple": b_simple,
            "equilibrated": b_simple is not None and min(steps) >= critical_batch.EQUILIBRATED_STEPS,
            "noise_scale_measured": all(x["config"].get("noise_scale_groups", 1) > 1 for x, _ in hits),
        }
    return out


def _headline(t: dict) -> dict:
    fit = t["fit_residual"] or {}
    identified = bool(fit and fit["fit"]["identified"])
    bc = fit.get("b_crit") or {}
    trial_ci = ((t["fit_trials"] or {}).get("b_crit")) or {}
    return {
        "target": t["target"],
        "b_crit": bc.get("estimate") if identified else None,
        "b_crit_identified": identified,
        "b_crit_ci_residual": [bc.get("low"), bc.get("high")],
        "b_crit_ci_trials": [trial_ci.get("low"), trial_ci.get("high")],
        "b_overhead_20": ((fit.get("b_overhead_fit") or {}).get("estimate")) if identified else None,
        "b_simple_equilibrated": t["b_simple_equilibrated"],
    }


def _mean(vals):
    v = [x for x in vals if x is not None]
    return sum(v) / len(v) if v else None


def conclusions(summary: dict) -> list[str]:
    """The study's sentences (lbbench.report.critical_batch: each computed from the summary)."""
    return write_up.conclusions(summary)
