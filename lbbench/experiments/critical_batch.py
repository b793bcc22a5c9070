"""Critical batch size, measured directly: tune every batch size, then steps to target vs B.

    python -m lbbench.sweep experiments/critical_batch.py [--quick]

Issue 10. Shallue et al. 2019 and Nado et al. 2021: at one fixed learning rate, "large batches
fail" is manufactured by the comparison. Here every batch size B = 32 … 16384 gets the same budget
of K = 8 quasi-random trials (scrambled Sobol over base learning rate, log(1 − momentum), warmup
fraction and weight decay; lbbench.study.search.default_space("momentum")), momentum SGD with a
linear warmup then a constant rate (so steps-to-target does not depend on the run length, as with
Zhang et al. 2024's constant schedule), and the learning rate searched as a base rate at B = 256
with sqrt scaling so the same space is centred at every B. The K trial points are the same unit
Sobol points at every B (paired comparison). After the grid, `followup` re-runs each batch
size's winners — fewest steps to TARGET, best accuracy within the epoch budget and within the step
budget, chosen on seed 0 — with seeds 1, 2, 3 and sharpness measurement on.

**Budget rule.** epochs(B) = max(E_MIN, ceil(T_MIN / floor(N / B))) with E_MIN = 10 epochs and
T_MIN = 1000 steps (N = training set size): small batches get at least 10 epochs, large ones at
least 1000 steps, so a large batch is never judged "unable to reach the target" for lack of
updates. (B = 32 … 512: 10 epochs; 1024: 18; 4096: 72; 16384: 334 epochs = 1002 steps.) The
answer table's budgets are the ones every run covers: 10 epochs and ~1000 steps. (T_MIN was
2000 in the first design; halved so the full study fits the 2-core CPU in about half an hour.)

**Target.** Test accuracy TARGET = 0.85 on MNIST-1D (the MLP tops out near 0.93–0.95). It is high
enough that the smallest batches need several epochs: evaluation is once per epoch, so a target
reached in the first epoch would give "one epoch" at every small B and fake perfect scaling. Batch
sizes with ≥ 32 steps an epoch also evaluate the test set 8 times an epoch (`--eval_every_steps`),
so their crossing is resolved to 1/8 epoch. `analyze` flags batch sizes whose crossing is at
epoch ≤ 2.

**Analysis** (lbbench.study): S(B) = S_min(1 + B_crit/B) fitted in log space to the geometric
mean over re-run seeds of the best trial's steps; stratified bootstrap CI over seeds, and a second
one over trials (resampling each B's K tuning trials and taking the best, i.e. tuning
uncertainty); Zhang et al.'s 20 %-overhead critical batch; regimes per interval; B_simple
(McCandlish et al. 2018) at the end of training and at the epoch the target is reached, beside
the measured B_crit. Writes answer.md, critical_batch.json, steps_to_target.png,
accuracy_vs_batch.png into the sweep directory.

**Time on the 2-core CPU** (MLP: ~110k examples/s at B = 32, ~400k at B ≥ 4096 per trial, run one
at a time): one trial at every B is ~67M examples ≈ 3.5 min with evaluation overhead; K = 8
trials ≈ 28 min; re-runs: 1–3 winners per B (the steps, epoch-budget and step-budget winners
often coincide) × 3 seeds, ≈ 10–30 min plus sharpness (≈ 8 s a run): **≈ 45–65 min** sequential,
less when the runner packs the trials of one B into one vmapped program.
Quick mode: tiny MLP, B ∈ {256, 1024}, 2 epochs, 2 trials, 2 re-run seeds (8 runs): ≈ 50 s on
this CPU, most of it compiles (measured with other jobs running).
"""

import math
import os

from lbbench.config import Config
from lbbench.report import figures
from lbbench.runs import atomic
from lbbench.study import answer, bootstrap, critical_batch, protocol
from lbbench.study.search import default_space
from lbbench.study.targets import first_crossing
from lbbench.sweep import env_dataset

NAME = "critical_batch"
TARGET = {"mnist1d": 0.85, "mnist": 0.98, "fashion_mnist": 0.88, "cifar10": 0.75}
QUICK_TARGET = 0.15
TRAIN_SIZE = {"mnist1d": 60000, "mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "cifar100": 50000}
E_MIN, T_MIN = 10, 1000
EVALS_PER_EPOCH = 8
K, SEEDS, SEARCH_SEED = 8, (1, 2, 3), 0


def batches(quick: bool) -> tuple[int, ...]:
    return (256, 1024) if quick else tuple(2**k for k in range(5, 15))


def epochs(b: int, quick: bool) -> int:
    if quick:
        return 2
    steps_per_epoch = TRAIN_SIZE.get(env_dataset(), 60000) // b
    return max(E_MIN, math.ceil(T_MIN / steps_per_epoch))


def eval_every(b: int, quick: bool) -> int:
    """Test evaluations between epochs for small batches (EVALS_PER_EPOCH an epoch), so steps to
    target are resolved to 1/EVALS_PER_EPOCH of an epoch, not a whole one (0 = once an epoch)."""
    steps_per_epoch = TRAIN_SIZE.get(env_dataset(), 60000) // b
    return 0 if quick or steps_per_epoch < 4 * EVALS_PER_EPOCH else steps_per_epoch // EVALS_PER_EPOCH


def target(quick: bool) -> float:
    return QUICK_TARGET if quick else TARGET.get(env_dataset(), 0.85)


def base_config(quick: bool) -> Config:
    return Config(
        dataset=env_dataset(),
        model="tiny_mlp" if quick else "mlp",
        optimizer="momentum",
        lr_scaling="sqrt",
        base_batch_size=256,
        schedule="warmup",
        sharpness=False,
        save_params=False,
        train_eval_examples=2000,
    )


def grid(quick: bool) -> list[dict]:
    space = default_space("momentum")
    points = []
    for b in batches(quick):
        e = epochs(b, quick)
        for i, t in enumerate(space.trials(2 if quick else K, seed=SEARCH_SEED, epochs=e)):
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


def _budgets(quick: bool) -> dict:
    return {
        "epochs": 2 if quick else E_MIN,
        "steps": min(epochs(b, quick) * (TRAIN_SIZE.get(env_dataset(), 60000) // b) for b in batches(quick)),
    }


def followup(results: dict, quick: bool) -> list[dict]:
    """Seeds of each batch size's winners (fewest steps to target; best within each budget)."""
    bud = _budgets(quick)
    win = protocol.winners(
        results, answer.by_batch, target=target(quick), epoch_budget=bud["epochs"], step_budget=bud["steps"]
    )
    names = set().union(*win.values()) if win else set()
    return protocol.rerun_points(
        results, names, base_config(quick), SEEDS[:2] if quick else SEEDS, extra={"sharpness": not quick}
    )


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    goal, bud = target(quick), _budgets(quick)
    summary = answer.steps_summary(results, goal)
    rows = answer.answer_rows(results, epoch_budget=bud["epochs"], step_budget=bud["steps"])
    out = {"target": goal, "budgets": bud, "steps": summary, "answer": rows}
    seeds = {r["arm"]: r["seed_steps"] for r in summary if r["best"] is not None}
    trials = {r["arm"]: list(r["tuning_steps"].values()) for r in summary}
    point = {b: _geo(v) for b, v in seeds.items()}
    reached = {b: s for b, s in point.items() if s is not None}
    ci_seeds = ci_trials = None
    if len(reached) >= 2:
        ci_seeds = bootstrap.fit_ci(seeds, reduce="geomean")
        ci_trials = bootstrap.fit_ci({b: v for b, v in trials.items() if any(x is not None for x in v)}, reduce="min")
        out["regimes"] = critical_batch.regimes(list(reached), list(reached.values()))
    out["critical_batch_over_seeds"], out["critical_batch_over_trials"] = ci_seeds, ci_trials
    out["coarse_crossings"] = [r["arm"] for r in summary if r["best"] and _first_epoch(results, r, goal) <= 2]
    out["no_effect"] = answer.no_effect(results)
    out["b_simple"] = {r["arm"]: {"final": r["b_simple_final"], "at_target": r["b_simple_at_target"]} for r in summary}
    atomic.write_json(os.path.join(sweep_dir, "critical_batch.json"), out)
    atomic.write_text(
        os.path.join(sweep_dir, "answer.md"),
        answer.answer_markdown(rows)
        + "\n"
        + critical_batch_markdown(out)
        + answer.no_effect_markdown(out["no_effect"], results),
    )
    figures.save(
        figures.steps_figure(summary, ci_seeds, ci_seeds, goal), os.path.join(sweep_dir, "steps_to_target.png")
    )
    figures.save(figures.accuracy_figure(rows), os.path.join(sweep_dir, "accuracy_vs_batch.png"))
    cb = (ci_seeds or {}).get("b_crit") or {}
    identified = bool(ci_seeds and ci_seeds["fit"]["identified"])
    return {
        "summary": {
            "target": goal,
            "b_crit": cb.get("estimate") if identified else None,
            "b_crit_identified": identified,
            "b_crit_ci": [cb.get("low"), cb.get("high")],
            "b_overhead_20": ((ci_seeds or {}).get("b_overhead_measured") or {}).get("estimate"),
            "b_simple_at_target": _mean([v["at_target"] for v in out["b_simple"].values()]),
            "no_effect_pairs": len(out["no_effect"]),
        },
        "critical_batch": out,
    }


def critical_batch_markdown(out: dict) -> str:
    lines = [
        f"### Steps to test accuracy ≥ {out['target']:g} and the critical batch size",
        "",
        "| B | steps, best trial (seeds) | tuning trials reaching target | B_simple at target | B_simple final |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in out["steps"]:
        reach = sum(s is not None for s in r["tuning_steps"].values())
        bs = out["b_simple"][r["arm"]]
        lines.append(
            f"| {r['arm']} | {_fmt(_geo(r['seed_steps']))} ({', '.join(_fmt(s) for s in r['seed_steps'])}) "
            f"| {reach}/{len(r['tuning_steps'])} | {_fmt(bs['at_target'])} | {_fmt(bs['final'])} |"
        )
    lines.append("")
    for label, ci in (
        ("over seeds of the best trial", out["critical_batch_over_seeds"]),
        ("over tuning trials (best of resampled K)", out["critical_batch_over_trials"]),
    ):
        if not ci:
            lines.append(f"- Fit {label}: fewer than two batch sizes reached the target.")
            continue
        f = ci["fit"]
        lines.append(
            f"- Fit {label}: S_min = {f['s_min']:.4g}, B_crit = {_ci(ci['b_crit'])}"
            f"{'' if f['identified'] else ' (NOT identified: no bend in the measured range)'}; "
            f"20 %-overhead batch (Zhang et al.) measured {_ci(ci['b_overhead_measured'])}, "
            f"from the fit {_ci(ci['b_overhead_fit'])}; {ci['n_resamples']} resamples, "
            f"{ci['unidentified_fraction']:.0%} unidentified."
        )
    bsim = [v["at_target"] for v in out["b_simple"].values() if v["at_target"]]
    if bsim:
        lines.append(
            f"- Gradient noise scale B_simple at the target, mean over batch sizes: "
            f"{sum(bsim) / len(bsim):.4g} (McCandlish et al.'s proxy for B_crit; Merrill et al. 2025 "
            "question whether it predicts the measured one)."
        )
    for r in out.get("regimes", []):
        lines.append(
            f"- {r['from']} → {r['to']}: {r['regime']} (×{r['speedup_per_doubling']:.2f} fewer steps per doubling)"
        )
    if out["coarse_crossings"]:
        lines.append(
            f"- Coarse: B = {out['coarse_crossings']} reach the target within 2 epochs, so their steps are "
            "quantised to whole epochs (≥ 50 % resolution)."
        )
    return "\n".join(lines) + "\n"


def _first_epoch(results, row, goal):

    hit = first_crossing(results[row["best"]], goal)
    return hit["epoch"] if hit else math.inf


def _geo(vals):
    v = [x for x in vals if x is not None]
    return math.exp(sum(math.log(x) for x in v) / len(v)) if v and len(v) == len(vals) else None


def _mean(vals):
    v = [x for x in vals if x is not None]
    return sum(v) / len(v) if v else None


def _fmt(x):
    return "—" if x is None else f"{x:.4g}"


def _ci(d):
    high = "unbounded" if d.get("unbounded") else _fmt(d["high"])
    return f"{_fmt(d['estimate'])} [{_fmt(d['low'])}, {high}]"
