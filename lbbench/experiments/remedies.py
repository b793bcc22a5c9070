"""Which remedy closes the large-batch gap? Each optimizer tuned with the same budget at B = 8192.

    python -m lbbench.sweep experiments/remedies.py [--quick]

Issue 10. At B_LARGE = 8192 (7 steps per epoch on MNIST-1D's 60k examples) five optimizers —
momentum, nesterov, adam, lars (You et al. 2017), lamb (You et al. 2020) — each get the same K = 8
quasi-random trials over their own search space (lbbench.study.search.default_space: base learning
rate at B = 256 with sqrt scaling, log(1 − momentum/β1), warmup fraction, weight decay, and
log(1 − β2) for adam and lamb). The reference is momentum and adam tuned the same way at
B_SMALL = 256. Then, as zero-shot transfers from the tuned small-batch optimum (no tuning at
8192; `followup` builds them once the B = 256 trials have finished):

* `<opt>_b8192_linear_transfer`: lr × B/256 (Goyal et al. 2017),
* `<opt>_b8192_sqrt_transfer`: lr × √(B/256) (Hoffer et al. 2017; Malladi et al. 2022 for adam),
* `adam_b8192_{sqrt,linear}_halflife_transfer`: additionally β2 → β2^(B/256), the second-moment
  half-life held fixed in examples (Marek et al. 2025, `beta2_scaling="half_life"`).

Every arm's winner (best test accuracy within the epoch budget, chosen on seed 0) is re-run with
seeds 1–3 (sharpness on); the table reports mean and 95 % CI over those re-runs and the difference
to the better small-batch reference with a Welch CI. An arm "closes the gap" when the whole interval
lies above −1 point of accuracy (lbbench.study.compare.gap_verdict: a non-inferiority test), "does
not close" when it lies below 0, and is "inconclusive" otherwise. The comparison is at a fixed
**epoch** budget (EPOCHS = 30 for every arm: 210 steps at 8192, 7,020 at 256): the data-parallel
question is whether 32× fewer steps over the same data lose accuracy. (A step budget column is left
empty: 210 steps is less than one epoch at B = 256, where lbbench first evaluates.)

Time on the 2-core CPU: tuning 40 runs at 8192 (1.8M examples each, ≈ 7 s with compile) ≈ 5 min,
16 runs at 256 (≈ 10 s) ≈ 3 min, 6 transfers ≈ 1 min, re-runs (12 arms × 3 seeds, ≈ 15 s with
sharpness) ≈ 9 min: **≈ 18 min** sequential. Quick mode (tiny MLP, 2 epochs, B 256 vs 1024,
momentum/adam/lamb at the large batch, 1 trial per arm, two transfers, 1 re-run seed: 14 runs):
under a minute on this CPU, most of it compiles.
"""

import os

from lbbench.config import Config
from lbbench.report import figures
from lbbench.runs import atomic
from lbbench.study import answer, compare, protocol
from lbbench.study.search import equal_epochs_space
from lbbench.sweep import env_dataset

NAME = "remedies"
OPTIMIZERS = ("momentum", "nesterov", "adam", "lars", "lamb")
QUICK_OPTIMIZERS = ("momentum", "adam", "lamb")  # the CI smoke test: one of each family
REFERENCE_OPTIMIZERS = ("momentum", "adam")
TRANSFERS = {
    "momentum": (("linear", "none"), ("sqrt", "none")),
    "adam": (("linear", "none"), ("sqrt", "none"), ("sqrt", "half_life"), ("linear", "half_life")),
}
QUICK_TRANSFERS = {"momentum": (("linear", "none"),), "adam": (("sqrt", "half_life"),)}
K, SEEDS, SEARCH_SEED, EPOCHS = 8, (1, 2, 3), 0, 30


def sizes(quick: bool) -> tuple[int, int]:
    return (256, 1024) if quick else (256, 8192)


def epochs(quick: bool) -> int:
    return 2 if quick else EPOCHS


def base_config(quick: bool) -> Config:
    return Config(
        dataset=env_dataset(),
        model="tiny_mlp" if quick else "mlp",
        lr_scaling="sqrt",
        base_batch_size=256,
        schedule="warmup",
        sharpness=False,
        save_params=False,
    )


def arm(cfg: dict) -> str:
    """The arm is the run name up to the trial/seed suffix: '<optimizer>_b<B>[_<rule>_transfer]'."""
    return cfg["run_name"].split(protocol.SEP)[0]


def space(opt: str, quick: bool):
    """What each optimizer is tuned over (every arm trains the same epochs)."""
    return equal_epochs_space(opt, epochs(quick))


def space_of_arm(arm: str, quick: bool):
    """The search space of a tuned arm ('<opt>_b<B>'); None for a zero-shot transfer."""
    return None if arm.endswith("_transfer") else space(arm.split("_b")[0], quick)


def _tuned(opt: str, b: int, quick: bool) -> list[dict]:
    e = epochs(quick)
    trials = space(opt, quick).trials(1 if quick else K, seed=SEARCH_SEED)
    return [
        {**t, "optimizer": opt, "batch_size": b, "epochs": e, "seed": 0, "run_name": f"{opt}_b{b}{protocol.SEP}t{i}"}
        for i, t in enumerate(trials)
    ]


def grid(quick: bool) -> list[dict]:
    small, large = sizes(quick)
    return [p for opt in REFERENCE_OPTIMIZERS for p in _tuned(opt, small, quick)] + [
        p for opt in (QUICK_OPTIMIZERS if quick else OPTIMIZERS) for p in _tuned(opt, large, quick)
    ]


def transfer_points(results: dict, quick: bool) -> list[dict]:
    """Zero-shot transfers of each tuned small-batch optimum (known once its trials finished)."""
    small, large = sizes(quick)
    base, out = base_config(quick), []
    win = protocol.winners(results, arm, epoch_budget=epochs(quick))
    for opt, rules in (QUICK_TRANSFERS if quick else TRANSFERS).items():
        names = win.get(f"{opt}_b{small}")
        if not names:
            continue
        o = protocol.overrides_of(results[next(iter(names))], base)
        for scaling, beta2 in rules:
            tag = f"{scaling}{'_halflife' if beta2 == 'half_life' else ''}"
            out.append(
                {
                    **o,
                    "batch_size": large,
                    "lr_scaling": scaling,
                    "beta2_scaling": beta2,
                    "seed": 0,
                    "run_name": f"{opt}_b{large}_{tag}_transfer",
                }
            )
    return out


def followup(results: dict, quick: bool) -> list[dict]:
    """Transfers first; then seeds of every arm's winner (including the transfers, once they ran)."""
    win = protocol.winners(results, arm, epoch_budget=epochs(quick))
    names = set().union(*win.values()) if win else set()
    reruns = protocol.rerun_points(
        results, names, base_config(quick), SEEDS[:1] if quick else SEEDS, extra={"sharpness": not quick}
    )
    return transfer_points(results, quick) + reruns


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    small, large = sizes(quick)
    rows = answer.answer_rows(results, epoch_budget=epochs(quick), step_budget=None, arm=arm)
    by_arm = {r["arm"]: r for r in rows}
    refs = [by_arm[f"{o}_b{small}"] for o in REFERENCE_OPTIMIZERS if f"{o}_b{small}" in by_arm]
    refs = [r for r in refs if r["epochs"] and r["epochs"].get("best")]
    ref = max(refs, key=lambda r: r["epochs"]["accuracy"]["mean"]) if refs else None
    gaps = {}
    for r in rows:
        if ref is None or r is ref or not (r["epochs"] and r["epochs"].get("best")):
            continue
        gaps[r["arm"]] = compare.cell_difference(r["epochs"], ref["epochs"])
    gaps = {a: {**d, "closes_gap": compare.closes_gap(d)} for a, d in compare.judge(gaps).items()}
    out = {
        "epoch_budget": epochs(quick),
        "reference": ref and ref["arm"],
        "answer": rows,
        "gap_to_reference": gaps,
        "no_effect": answer.no_effect(results),
    }
    atomic.write_json(os.path.join(sweep_dir, "remedies.json"), out)
    large_arms = {a: g for a, g in gaps.items() if f"_b{large}" in a}
    best = max(large_arms.items(), key=lambda kv: kv[1]["diff"], default=(None, None))
    summary = {
        "reference": out["reference"],
        "best_large_batch_arm": best[0],
        "best_gap": best[1] and best[1]["diff"],
        "arms_closing_gap": sorted(k for k, v in gaps.items() if v["closes_gap"]),
        "verdicts": {k: v["verdict"] for k, v in gaps.items()},
        "epoch_budget": out["epoch_budget"],
    }
    summary["conclusions"] = conclusions(summary)
    atomic.write_text(
        os.path.join(sweep_dir, "answer.md"),
        compare.conclusions_markdown(summary["conclusions"])
        + answer.answer_markdown(rows, arm_name="arm")
        + "\n"
        + gap_markdown(out)
        + "\n"
        + answer.tuning_markdown(rows, results, lambda a: space_of_arm(a, quick), arm_name="arm")
        + answer.no_effect_markdown(out["no_effect"], results),
    )
    figures.save(figures.arms_figure(rows, ref and ref["arm"]), os.path.join(sweep_dir, "remedies.png"))
    return {"summary": summary, "remedies": out}


def conclusions(summary: dict) -> list[str]:
    """Sentences computed from the verdicts in `summary` (checked against the committed analysis.json)."""
    return [
        compare.verdict_sentence(
            f"Each arm against the tuned small-batch reference ({summary['reference']}) at "
            f"{summary['epoch_budget']} epochs",
            summary["verdicts"],
        )
    ]


def gap_markdown(out: dict) -> str:
    lines = [
        f"### Gap to the tuned small-batch reference ({out['reference'] or '—'}), {out['epoch_budget']} epochs",
        "",
        "An arm closes the gap when its verdict is non-inferior or better (study.verdicts: margin 1 point, "
        "Holm over the arms).",
        "",
        "| arm | test acc − reference [95% CI, Welch] | p (Holm) | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for a, g in sorted(out["gap_to_reference"].items()):
        ci = "—" if g["low"] is None else f"[{g['low']:+.4f}, {g['high']:+.4f}]"
        p = "—" if g.get("p_holm") is None else f"{g['p_holm']:.3g}"
        verdict = g.get("verdict") or "— (needs ≥ 2 seeds)"
        lines.append(f"| {a} | {g['diff']:+.4f} {ci} | {p} | {verdict} |")
    return "\n".join(lines) + "\n"
