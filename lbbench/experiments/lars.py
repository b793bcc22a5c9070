"""Layer-wise adaptive rates, tuned: momentum SGD vs LARS (You et al. 2017) vs LAMB (You et al. 2020)
across batch sizes, with the papers' warmup + cosine schedule — and the old untuned recipes beside them.

    python -m lbbench.sweep experiments/lars.py [--quick]

Issue 10. The first version of this file ran each optimizer at one "usual" rate (momentum 0.1·B/256,
LARS 10 with η = 1e-3, LAMB 0.01) at B = 8192 with two seeds and reported "momentum fails at 8192,
LARS recovers most of it, LAMB 0.69". At untuned rates that can be an artefact of the protocol.
experiments/remedies.py asks "which remedy closes the gap at B = 8192?" with five optimizers and a
constant rate after warmup; this file is its companion along the batch axis, with the schedule the
LARS/LAMB papers use (linear warmup then cosine decay to 0, `warmup_cosine`):

* `momentum_b256`: the small-batch reference, K = 8 trials;
* `<opt>_b<B>` for opt ∈ {momentum, lars, lamb} and B ∈ {2048, 8192}: K = 8 trials each over the
  optimizer's own space (lbbench.study.search.default_space: base learning rate at B = 256 with
  sqrt scaling, log(1 − momentum/β1), warmup fraction, weight decay, log(1 − β2) for lamb);
* `<opt>_b8192_recipe`: the untuned settings of the first version (its committed numbers are in
  experiments/results/lars/), so the report shows how much of the old verdict was the protocol.

Every arm's winner (best test accuracy within EPOCHS = 20, chosen on seed 0; recipes: the single
run) is re-run with seeds 1–3 (sharpness on). `analyze` writes answer.md (answer table with 95 %
CIs over the re-run seeds; every arm's difference to momentum_b256 and, at 8192, tuned − recipe,
with Welch CIs), lars.json and lars.png (tuned accuracy vs B per optimizer, the reference as a band).

**Time on the 2-core CPU (estimated, not run: no CPU for it here).** Default MLP, 20 epochs = 1.2M
examples per run; measured here under load 135k–217k examples/s (B = 256 … 8192), ~400k/s quiet:
56 tuning trials + 3 recipes + 10 winners × 3 seeds (sharpness ≈ 8 s each) = 89 runs × 3–9 s plus
~20 compiles and the sharpness: **≈ 12–20 min**.
Quick mode (tiny MLP, 2 epochs, B = 256 vs 1024, momentum and lars, K = 2, the two recipes, 1 re-run
seed; 13 runs in 6 programs): ≈ 40 s on this 2-core CPU while another job ran, mostly compiles.
"""

import os

from lbbench.config import Config
from lbbench.report import figures, study_figures
from lbbench.runs import atomic
from lbbench.study import answer, compare, protocol
from lbbench.study.search import equal_epochs_space
from lbbench.sweep import env_dataset

NAME = "lars"
SMALL, REFERENCE = 256, "momentum_b256"
OPTIMIZERS = ("momentum", "lars", "lamb")
EPOCHS, K, SEEDS, SEARCH_SEED = 20, 8, (1, 2, 3), 0
# The first version's untuned settings (warmup 2 of 20 epochs, no weight decay, momentum/β1 0.9).
RECIPES = {
    "momentum": {"learning_rate": 0.1, "lr_scaling": "linear"},
    "lars": {"learning_rate": 10.0, "lr_scaling": "none", "trust_coefficient": 1e-3},
    "lamb": {"learning_rate": 0.01, "lr_scaling": "none"},
}


def sizes(quick: bool) -> tuple[int, ...]:
    return (1024,) if quick else (2048, 8192)


def optimizers(quick: bool) -> tuple[str, ...]:
    return OPTIMIZERS[:2] if quick else OPTIMIZERS


def epochs(quick: bool) -> int:
    return 2 if quick else EPOCHS


def base_config(quick: bool) -> Config:
    return Config(
        dataset=env_dataset(),
        model="tiny_mlp" if quick else "mlp",
        optimizer="momentum",
        lr_scaling="sqrt",
        base_batch_size=SMALL,
        schedule="warmup_cosine",
        epochs=epochs(quick),
        sharpness=False,
        save_params=False,
        train_eval_examples=2000,
    )


def space(opt: str, quick: bool):
    """What each optimizer is tuned over (every arm trains the same epochs)."""
    return equal_epochs_space(opt, epochs(quick))


def space_of_arm(arm: str, quick: bool):
    """The search space of a tuned arm ('<opt>_b<B>'); None for a fixed recipe."""
    return None if arm.endswith("_recipe") else space(arm.split("_b")[0], quick)


def _tuned(opt: str, b: int, quick: bool) -> list[dict]:
    trials = space(opt, quick).trials(2 if quick else K, seed=SEARCH_SEED)
    return [
        {**t, "optimizer": opt, "batch_size": b, "seed": 0, "run_name": f"{opt}_b{b}{protocol.SEP}t{i}"}
        for i, t in enumerate(trials)
    ]


def recipe_points(quick: bool) -> list[dict]:
    b = sizes(quick)[-1]
    return [
        {
            **RECIPES[opt],
            "optimizer": opt,
            "batch_size": b,
            "momentum": 0.9,
            "weight_decay": 0.0,
            "warmup_epochs": 0.1 * epochs(quick),
            "seed": 0,
            "run_name": f"{opt}_b{b}_recipe",
        }
        for opt in optimizers(quick)
    ]


def grid(quick: bool) -> list[dict]:
    return (
        _tuned("momentum", SMALL, quick)
        + [p for b in sizes(quick) for opt in optimizers(quick) for p in _tuned(opt, b, quick)]
        + recipe_points(quick)
    )


def followup(results: dict, quick: bool) -> list[dict]:
    """Seeds of every arm's winner (recipes: the run itself)."""
    win = protocol.winners(results, compare.arm_of_run, epoch_budget=epochs(quick))
    names = set().union(*win.values()) if win else set()
    return protocol.rerun_points(
        results, names, base_config(quick), SEEDS[:1] if quick else SEEDS, extra={"sharpness": not quick}
    )


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    rows = answer.answer_rows(results, epoch_budget=epochs(quick), step_budget=None, arm=compare.arm_of_run)
    by_arm = {r["arm"]: r for r in rows}
    gaps = compare.judge(
        {r["arm"]: compare.difference(by_arm, r["arm"], REFERENCE) for r in rows if r["arm"] != REFERENCE}
    )
    b = sizes(quick)[-1]
    tuning = {opt: compare.difference(by_arm, f"{opt}_b{b}", f"{opt}_b{b}_recipe") for opt in optimizers(quick)}
    out = {
        "epoch_budget": epochs(quick),
        "reference": REFERENCE,
        "answer": rows,
        "gap_to_reference": gaps,
        "tuned_minus_recipe": tuning,
        "winners": compare.winner_settings(rows, results),
        "no_effect": answer.no_effect(results),
    }
    atomic.write_json(os.path.join(sweep_dir, "lars.json"), out)

    def acc(arm):
        return ((by_arm.get(arm) or {}).get("epochs") or {}).get("accuracy")

    summary = {
        "reference_accuracy": (acc(REFERENCE) or {}).get("mean"),
        "gap": {a: d and d["diff"] for a, d in gaps.items()},
        "arms_closing_gap": sorted(a for a, d in gaps.items() if compare.closes_gap(d)),
        "verdicts": {a: (d or {}).get("verdict") for a, d in gaps.items()},
        "tuned_minus_recipe": {o: d and d["diff"] for o, d in tuning.items()},
        "no_effect_pairs": len(out["no_effect"]),
        "epoch_budget": out["epoch_budget"],
    }
    summary["conclusions"] = conclusions(summary)
    atomic.write_text(
        os.path.join(sweep_dir, "answer.md"),
        compare.conclusions_markdown(summary["conclusions"])
        + answer.answer_markdown(rows, arm_name="arm")
        + "\n"
        + compare.difference_markdown(
            f"Gap to the tuned small batch ({REFERENCE})",
            [(f"{a} − {REFERENCE}", gaps[a]) for a in sorted(gaps)],
            "An arm closes the gap when its verdict is non-inferior or better (study.verdicts).",
        )
        + "\n"
        + compare.difference_markdown(
            f"Tuned vs the untuned recipe at B = {b}",
            [(f"{opt}: tuned − recipe", d) for opt, d in tuning.items()],
            "Positive: the recipe's verdict was (partly) an artefact of its untuned rate.",
        )
        + "\n"
        + answer.tuning_markdown(rows, results, lambda a: space_of_arm(a, quick), arm_name="arm")
        + "\n"
        + compare.winner_markdown(out["winners"])
        + answer.no_effect_markdown(out["no_effect"], results),
    )
    series = {opt: [(bb, acc(f"{opt}_b{bb}")) for bb in sizes(quick)] for opt in optimizers(quick)}
    figures.save(
        study_figures.series_figure(series, (f"tuned momentum, B={SMALL}", acc(REFERENCE))),
        os.path.join(sweep_dir, "lars.png"),
    )
    return {"summary": summary, "lars": out}


def conclusions(summary: dict) -> list[str]:
    """Sentences computed from the verdicts in `summary` (checked against the committed analysis.json)."""
    return [
        compare.verdict_sentence(
            f"Each arm against tuned momentum at B = {SMALL} ({REFERENCE}) at {summary['epoch_budget']} epochs",
            summary["verdicts"],
        )
    ]
