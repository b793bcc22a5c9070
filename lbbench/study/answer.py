"""The answer table: "Does accuracy degrade with larger batch sizes?" — after tuning each one.

Protocol (Shallue et al. 2019 §3.4; Nado et al. 2021): every arm (a batch size, or an optimizer /
scaling rule at one batch size) gets the same K quasi-random trials at the *tuning seed*; the best
trial is chosen on the tuning seed only; its hyperparameters are then re-run with fresh seeds and
the mean and 95 % CI are taken over those re-runs. Re-runs exclude the selection run, because the
best of K on one seed is optimistically biased ("winner's curse"); when no re-runs exist (quick
mode) the selection run alone is reported with n = 1 and no CI, and the row says so.

Data roles (STUDY_PROTOCOL.md §2): a trial is judged on its **validation** accuracy at the
budget's end; the re-runs report **test** accuracy at the same checkpoint, read once — never the
best of the evaluations inside the budget, which would be early stopping on the test set.

Best is judged twice, because "large batches are worse" depends on what is held fixed:

* at a fixed **epoch** budget (same examples: the large batch takes fewer steps), and
* at a fixed **step** budget (same updates: the large batch sees more data).

For the best trial the row also gives its final generalization gap (train − test accuracy) and
sharpness (result.json sharpness.lambda_max and Keskar's ε-sharpness), means over its re-runs.
Effective K (how many trials really competed): a trial that diverged or failed counts as tried but
never as best; "never learned" counts completed trials whose validation accuracy never rose 5 points
above chance (1 / classes); "collapsed" those that did and ended within 5 points of chance.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

from lbbench.config.sections import SECTIONS
from lbbench.models import uses_batch_norm
from lbbench.runs.folder import NON_RESULT_FIELDS
from lbbench.study import search, targets, verdicts
from lbbench.study.bootstrap import mean_ci

CHANCE_MARGIN = 0.05  # within 5 points of chance = not learning
SETTINGS = (
    "learning_rate",
    "momentum",
    "beta2",
    "weight_decay",
    "warmup_epochs",
    "warmup_steps",
    "lr_scaling",
    "beta2_scaling",
)

# The gradient noise scale only measures a model without BatchNorm (the sub-batch gradients average
# to the batch gradient); with BatchNorm its sub-batch estimate is another quantity, so the fields stay
# part of a BatchNorm trial.
NOISE_SCALE_FIELDS = ("noise_scale_groups", "noise_scale_every", "noise_scale_ema")
# Fields that do not change a trial's training trajectory: its seed, where it is written and what is
# measured (config.sections' measurement fields but the noise scale and the evaluation cadence, which
# decides what selection sees). Re-runs of a winner may switch measurements on and stay the same trial.
RUN_ONLY = (
    "seed",
    "run_name",
    "workdir",
    "save_params",
    *(f for f in SECTIONS["measurement"] if f not in (*NOISE_SCALE_FIELDS, "eval_every_steps")),
    *NON_RESULT_FIELDS,  # resume, pause_at_epoch, checkpoints, overwrite, where the data lives
)


def hparams_key(cfg: dict) -> tuple:
    """Everything that defines a trial except its seed, where it is written and what it measures."""
    skip = RUN_ONLY if uses_batch_norm(cfg.get("model", "")) else (*RUN_ONLY, *NOISE_SCALE_FIELDS)
    return tuple(sorted((k, repr(v)) for k, v in cfg.items() if k not in skip))


def by_batch(cfg: dict):
    return int(cfg["batch_size"])


def group(results: dict, arm: Callable[[dict], object] = by_batch) -> dict:
    """{arm: {hparams key: [(run_name, result), ...]}} over every result with a config."""
    out: dict = {}
    for name, r in sorted(results.items()):
        if not r or "config" not in r:
            continue
        out.setdefault(arm(r["config"]), {}).setdefault(hparams_key(r["config"]), []).append((name, r))
    return out


def _arm_order(item):
    a = item[0]
    return (0, a, "") if isinstance(a, (int, float)) else (1, 0, str(a))


def tuning_run(runs: list, tuning_seed: int = 0):
    """The run a trial is judged on: the one at the tuning seed (else the lowest seed)."""
    at = [x for x in runs if x[1]["config"].get("seed", 0) == tuning_seed]
    return at[0] if at else min(runs, key=lambda x: x[1]["config"].get("seed", 0))


def rerun_results(runs: list, tuning_seed: int = 0) -> tuple[list[dict], bool]:
    """(results to average, selection run included?): the re-runs, or the selection run alone."""
    others = [r for _, r in runs if r["config"].get("seed", 0) != tuning_seed]
    if others:
        return others, False
    return [tuning_run(runs, tuning_seed)[1]], True


def best_trial(
    trials: dict, score: Callable[[dict], float | None], tuning_seed: int = 0, higher_is_better: bool = True
):
    """The hparams key whose tuning run scores best (None scores never win); None if none scored."""
    if len(trials) == 1:  # one fixed configuration (a transfer, a recipe): nothing to select; a divergence at
        (key,) = trials  # the tuning seed is reported over the re-run seeds like any other outcome
        if tuning_run(trials[key], tuning_seed)[1].get("status") == "diverged":
            return key
    scored = []
    for key, runs in trials.items():
        s = score(tuning_run(runs, tuning_seed)[1])
        if s is not None and math.isfinite(s):
            scored.append((s if higher_is_better else -s, tuning_run(runs, tuning_seed)[0], key))
    if not scored:
        return None
    scored.sort(key=lambda x: (-x[0], x[1]))  # ties: the first run name, deterministic
    return scored[0][2]


def common_budgets(results: dict) -> dict:
    """The largest epoch and step budgets every completed run covers (for like-for-like rows)."""
    done = [r for r in results.values() if r and r.get("status") == "completed" and r.get("history")]
    if not done:
        return {"epochs": None, "steps": None}
    return {
        "epochs": min(max(e for e in r["history"]["epoch"] if e is not None) for r in done),
        "steps": min(max(s for s in r["history"]["step"] if s is not None) for r in done),
    }


def _chance(r: dict) -> float:
    return 1.0 / max(int((r.get("dataset") or {}).get("num_classes") or 10), 1)


def expected_best_of_k(values: list, k: int) -> float | None:
    """Expected best of k trials drawn with replacement from these (Dodge et al. 2019, "Show Your Work",
    Eq. 1): Σ_i v_(i) [(i/K)^k − ((i−1)/K)^k] over the sorted values. A trial without a value (diverged,
    or no evaluation in the budget) counts as accuracy 0: it was tried and found nothing."""
    v = sorted(0.0 if x is None or not math.isfinite(x) else float(x) for x in values)
    n = len(v)
    if not n:
        return None
    return float(sum(x * ((i / n) ** k - ((i - 1) / n) ** k) for i, x in enumerate(v, start=1)))


def tuning_curve(values: list) -> list[float | None]:
    """expected_best_of_k for k = 1 … K: flat at the end means K was enough for this arm."""
    return [expected_best_of_k(values, k) for k in range(1, len(values) + 1)]


def learning_outcome(r: dict) -> str:
    """'diverged', 'failed', 'never learned' (validation never 5 points above chance), 'collapsed'
    (it was, and ended within 5 points of chance) or 'learned'."""
    status = r.get("status")
    if status != "completed":
        return "diverged" if status == "diverged" else "failed"
    floor = _chance(r) + CHANCE_MARGIN
    if (targets.best_within(r, epochs=math.inf) or 0) < floor:
        return "never learned"
    final = targets.at_budget(r, epochs=math.inf)
    return "collapsed" if final is None or final <= floor else "learned"


def effective_k(tuning: list[dict]) -> dict:
    """How many of an arm's trials competed: counts of each learning_outcome, and `effective` = learned."""
    outcomes = [learning_outcome(r) for r in tuning]
    return {
        "diverged": outcomes.count("diverged"),
        "failed": outcomes.count("failed"),
        "no_learn": outcomes.count("never learned"),
        "collapsed": outcomes.count("collapsed"),
        "effective": outcomes.count("learned"),
    }


def _mean(vals) -> float | None:
    v = [x for x in vals if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


def _eps_key(results: list[dict]) -> str | None:
    keys = sorted(
        {
            k
            for r in results
            for k in ((r.get("sharpness") or {}).get("epsilon_sharpness") or {})
            if k.startswith("full_")
        },
        key=lambda k: float(k.split("_", 1)[1]),
    )
    return keys[0] if keys else None


def answer_rows(
    results: dict,
    *,
    epoch_budget: float | None = None,
    step_budget: int | None = None,
    arm: Callable[[dict], object] = by_batch,
    tuning_seed: int = 0,
    confidence: float = 0.95,
    stopped: dict | None = None,
    kinds: tuple[str, ...] = ("epochs", "steps"),
) -> list[dict]:
    """One dict per arm (see the module docstring). Budgets default to common_budgets(results).
    `stopped`: {arm: trials successive halving stopped before the full budget} (counted as tried)."""
    budgets = common_budgets(results)
    epoch_budget = budgets["epochs"] if epoch_budget is None else epoch_budget
    step_budget = budgets["steps"] if step_budget is None else step_budget
    rows = []
    for a, trials in sorted(group(results, arm).items(), key=_arm_order):
        tuning = [tuning_run(runs, tuning_seed)[1] for runs in trials.values()]
        halved = (stopped or {}).get(a, 0)
        row = {"arm": a, "trials": len(trials) + halved, "stopped": halved, **effective_k(tuning)}
        for kind, budget in (("epochs", epoch_budget), ("steps", step_budget)):
            if budget is None or kind not in kinds:
                row[kind] = None
                continue
            select = lambda r, b=budget, k=kind: targets.at_budget(r, **{k: b})
            key = best_trial(trials, select, tuning_seed)
            if key is None:
                row[kind] = {"budget": budget, "best": None}
                continue
            reruns, biased = rerun_results(trials[key], tuning_seed)
            values = [targets.at_budget(r, metric=targets.REPORT, **{kind: budget}) for r in reruns]
            best_run = tuning_run(trials[key], tuning_seed)
            row[kind] = {
                "budget": budget,
                "best": best_run[0],
                "config": {k: best_run[1]["config"].get(k) for k in SETTINGS},
                "selected_on": select(best_run[1]),
                "accuracy": mean_ci(values, confidence, bounds=(0.0, 1.0)),
                "split": verdicts.split(values, _chance(best_run[1]) + CHANCE_MARGIN, confidence),
                "values": values,
                "val_values": [select(r) for r in reruns],
                "selection_only": biased,
                "tuning_curve": tuning_curve([select(r) for r in tuning]),
            }
            if kind == "epochs":
                row["generalization_gap"] = _mean([(r.get("final") or {}).get("generalization_gap") for r in reruns])
                row["lambda_max"] = _mean([(r.get("sharpness") or {}).get("lambda_max") for r in reruns])
                ek = _eps_key(reruns)
                row["epsilon_key"] = ek
                row["epsilon_sharpness"] = (
                    _mean([((r.get("sharpness") or {}).get("epsilon_sharpness") or {}).get(ek) for r in reruns])
                    if ek
                    else None
                )
        rows.append(row)
    return rows


def _fmt(x, spec=".4f"):
    return "—" if x is None else format(x, spec)


def _acc_cell(cell: dict | None) -> str:
    if not cell or not cell.get("best"):
        return "— (no evaluation inside the budget)" if cell else "—"
    ci, split = cell["accuracy"], cell.get("split") or {}
    if split.get("bimodal"):  # some seeds learned, some did not: a mean over both describes neither
        lo, hi = split["wilson"]
        ok = split["accuracy_of_successes"]
        acc = _fmt(ok["mean"]) + ("" if ok["low"] is None else f" [{_fmt(ok['low'])}, {_fmt(ok['high'])}]")
        return f"split: {split['successes']}/{split['n']} seeds learned [Wilson {lo:.2f}, {hi:.2f}]; those: {acc}"
    if ci["low"] is None:
        return f"{_fmt(ci['mean'])} (n={ci['n']}{', selection run only' if cell['selection_only'] else ''})"
    return f"{_fmt(ci['mean'])} [{_fmt(ci['low'])}, {_fmt(ci['high'])}] (n={ci['n']})"


def answer_markdown(rows: list[dict], arm_name: str = "batch size", confidence: float = 0.95) -> str:
    """The answer table as markdown, with a header that states the protocol."""
    if not rows:
        return "No results.\n"
    e = next((r["epochs"]["budget"] for r in rows if r.get("epochs")), None)
    e_label = "the end of each arm's budget" if e == math.inf else f"{_fmt(e, 'g')} epochs"
    s = next((r["steps"]["budget"] for r in rows if r.get("steps")), None)
    ek = next((r.get("epsilon_key") for r in rows if r.get("epsilon_key")), None)
    pct = f"{confidence:.0%}"
    lines = [
        "### Does accuracy degrade with larger batch sizes?",
        "",
        f"Each row: the trial with the best validation accuracy at the budget's end (chosen on the "
        f"tuning seed), re-run over fresh seeds; test accuracy at the budget's end, mean [{pct} CI over "
        f"seeds, Student t, clipped to [0, 1]] (n seeds). Trials: K (diverged / never learned / "
        f"learned then collapsed; and those successive halving stopped early, never winners). Gap and "
        f"sharpness: the epoch-budget winner, mean over its re-runs.",
        "",
        f"| {arm_name} | trials (diverged / never learned / collapsed) | test acc @ {e_label} "
        f"| test acc @ {_fmt(s, 'g')} steps | lr of epoch winner | generalization gap | λ_max "
        f"| ε-sharpness ({ek or '—'}) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lr = ((r.get("epochs") or {}).get("config") or {}).get("learning_rate")
        halved = f"; {r['stopped']} stopped by halving" if r.get("stopped") else ""
        outcomes = f"{r['diverged'] + r['failed']} / {r['no_learn']} / {r['collapsed']}{halved}"
        lines.append(
            f"| {r['arm']} | {r['trials']} ({outcomes}) "
            f"| {_acc_cell(r.get('epochs'))} | {_acc_cell(r.get('steps'))} | {_fmt(lr, '.3g')} "
            f"| {_fmt(r.get('generalization_gap'))} | {_fmt(r.get('lambda_max'), '.3g')} "
            f"| {_fmt(r.get('epsilon_sharpness'), '.3g')} |"
        )
    return "\n".join(lines) + "\n"


def tuning_markdown(rows: list[dict], results: dict, space_of: Callable, arm_name: str = "batch size") -> str:
    """Was K enough, and did a winner sit at the edge of its range? Per arm: the expected best validation
    accuracy of k trials at the epoch budget (tuning_curve) and the winner's edge dimensions (`space_of(arm)`
    gives the arm's search space, or None for an arm that was not searched)."""
    cells = [(r["arm"], r.get("epochs") or {}) for r in rows]
    cells = [(a, c) for a, c in cells if c.get("tuning_curve")]
    if not cells:
        return ""
    ks = sorted({k for _, c in cells for k in (1, 2, 4, len(c["tuning_curve"])) if k <= len(c["tuning_curve"])})
    lines = [
        "### Was K enough? Expected best validation accuracy of k trials (Dodge et al. 2019), epoch budget",
        "",
        "A curve still rising at k = K says more trials would have helped; a winner in the outer 10 % of a "
        "searched range may have its optimum outside it. The last column counts the trials the range-edge rule "
        "(study.protocol.widening) drew over a range widened on that side, which K includes ('no': none were "
        "drawn, as for every arm of a study run before the rule existed); the edge column is the final "
        "winner's, against the original range.",
        "",
        f"| {arm_name} | " + " | ".join(f"k = {k}" for k in ks) + " | winner at the edge of its range | widened |",
        "| --- | " + " | ".join("---" for _ in ks) + " | --- | --- |",
    ]
    for arm, c in cells:
        curve = c["tuning_curve"]
        space = space_of(arm)
        best = results.get(c.get("best") or "") or {}
        edges = search.edge_dims(space, best.get("config") or {}) if space is not None and best else []
        vals = " | ".join(_fmt(curve[k - 1]) if k <= len(curve) else "—" for k in ks)
        lines.append(f"| {arm} | {vals} | {', '.join(edges) or 'no'} | {_widened_cell(c.get('best'), results)} |")
    return "\n".join(lines) + "\n"


def _widened_cell(best: str | None, results: dict) -> str:
    """'no', or how many widened trials the arm got and whether the winner is one of them."""
    if not best:
        return "—"
    prefix = best.split("__")[0]
    wide = [n for n in results if re.fullmatch(re.escape(prefix) + r"__w\d+", n)]
    if not wide:
        return "no"
    return f"{len(wide)} trial{'s' if len(wide) != 1 else ''}" + (" (the winner is one)" if best in wide else "")


def steps_summary(
    results: dict, target: float, arm: Callable[[dict], object] = by_batch, tuning_seed: int = 0
) -> list[dict]:
    """Per arm: steps to `target` of every tuning trial, the best trial (fewest steps; ties go to
    the higher best accuracy), its re-runs' steps, and B_simple (final and at the crossing)."""
    out = []
    for a, trials in sorted(group(results, arm).items(), key=_arm_order):
        tuning = [tuning_run(runs, tuning_seed) for runs in trials.values()]
        tuning_steps = {name: targets.steps_to_target(r, target) for name, r in tuning}
        key = best_trial(trials, targets.steps_score(target), tuning_seed)
        row = {
            "arm": a,
            "tuning_steps": tuning_steps,
            "best": None,
            "seed_steps": [],
            "selection_only": None,
            "b_simple_final": None,
            "b_simple_at_target": None,
        }
        if key is not None:
            reruns, biased = rerun_results(trials[key], tuning_seed)
            hits = [targets.first_crossing(r, target) for r in reruns]
            best_name, best = tuning_run(trials[key], tuning_seed)
            row.update(
                best=best_name,
                selection_only=biased,
                seed_steps=[None if h is None else h["step"] for h in hits],
                best_config={
                    k: best["config"].get(k)
                    for k in ("learning_rate", "momentum", "weight_decay", "warmup_epochs", "warmup_steps", "epochs")
                },
                b_simple_final=_mean([(r.get("noise_scale") or {}).get("b_simple") for r in reruns]),
                b_simple_at_target=_mean([targets.b_simple_at(r, h and h["index"]) for r, h in zip(reruns, hits)]),
            )
        out.append(row)
    return out


def no_effect(results: dict, fields=("test_accuracy", "train_loss")) -> list[tuple[str, str]]:
    """Pairs of completed runs with different trials (hparams_key) but bit-identical histories.

    A setting that changes nothing is a bug upstream (e.g. a Config field the optimizer ignores),
    and it would make a tuned dimension or a remedy look inert; the reports list such pairs."""
    seen: dict = {}
    pairs = []
    for name, r in sorted(results.items()):
        if not r or r.get("status") != "completed" or not r.get("history"):
            continue
        sig = tuple(tuple(r["history"].get(f) or ()) for f in fields) + (r["config"].get("seed"),)
        key = hparams_key(r["config"])
        for other, other_key in seen.get(sig, []):
            if other_key != key:
                pairs.append((other, name))
        seen.setdefault(sig, []).append((name, key))
    return pairs


def no_effect_markdown(pairs: list[tuple[str, str]], results: dict) -> str:
    if not pairs:
        return ""
    lines = [
        "",
        "**Warning: runs with different settings trained identically** (the differing setting had "
        "no effect — check that the optimizer reads it):",
        "",
    ]
    for a, b in pairs:
        ca, cb = results[a]["config"], results[b]["config"]
        diff = sorted(k for k in set(ca) | set(cb) if k not in RUN_ONLY and ca.get(k) != cb.get(k))
        lines.append(f"- {a} vs {b}: differ in {', '.join(diff)}")
    return "\n".join(lines) + "\n"
