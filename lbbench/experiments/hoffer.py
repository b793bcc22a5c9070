"""Hoffer et al. 2017, "Train longer, generalize better", tuned: ghost BN, sqrt scaling, more epochs.

    python -m lbbench.sweep experiments/hoffer.py [--quick]

Issue 10. The first version of this file compared its arms at one untuned rate (0.1, two seeds).
Now every arm is tuned with the same budget, and Hoffer's learning-rate rule is tested as what it
is, a zero-shot transfer of a tuned small-batch optimum.

F1 (Keskar et al.'s 5 × 512 MLP with BatchNorm, where the large batch shows a real gap on MNIST-1D:
BUILD_NOTES, Keskar table), momentum SGD with linear warmup then a constant rate. Tuned arms, each
with K = 8 quasi-random trials (scrambled Sobol over base learning rate, log(1 − momentum),
warmup fraction, weight decay; lbbench.study.search.default_space("momentum"); the same unit
points in every arm; learning rate searched as a base rate at B = 256 with sqrt scaling so the
space is centred at every B):

* `sb`: B = 256, EPOCHS = 10;
* `lb`: B = 4096, same epochs, BatchNorm over the whole batch (the gap after tuning);
* `lb_gbn`: + ghost BatchNorm over 128 examples (Hoffer §4.2);
* `lb_gbn_long`: + LONGER = 4× the epochs ("regime adaptation", §5; matching the small batch's
  number of *steps* would need 16×, infeasible here, so 4× is a partial adaptation).

Zero-shot transfers of sb's tuned optimum (chosen on seed 0) to B = 4096, built by `followup`
once sb's trials have finished — Hoffer's original arms, now from a tuned starting point:

* `lb_transfer` (same rate), `lb_sqrt_transfer` (rate × √(B/256), §4.1),
  `lb_gbn_sqrt_transfer` (+ ghost BN), `lb_gbn_sqrt_long_transfer` (+ 4× epochs).

Every arm's winner is re-run with seeds 1–3 (sharpness on). `analyze` writes answer.md: the study
layer's answer table (mean, 95 % CI over re-run seeds; generalization gap, λ_max, ε-sharpness),
each arm judged at its own training length (the long arms at 4 × 10 epochs, in a second table), and
each arm's difference to sb with a Welch CI ("closes the gap" when the whole CI lies above −1 point:
non-inferiority); hoffer.json and hoffer.png.

**Time on the 2-core CPU (estimated, not run: no CPU for it here).** F1 has ~14× the default MLP's
weights. Measured here with a background study running (load ~7 on 2 cores): 7.8k examples/s at
B = 256 (7.7 s an epoch) and 4.4k at 4096 (13.6 s an epoch; XLA:CPU is slower per example at the
large batch, as Keskar's C1 was). Epochs: tuning 80 at 256 and 80 + 80 + 320 at 4096; transfers 70;
re-runs 30 at 256 and ~390 at 4096 (with sharpness) → ≈ 110 epochs at 256 and ≈ 940 at 4096:
**≈ 3.5 h under that load, ≈ 2 h on a quiet CPU** (packing trials gains nothing at F1's size);
the long arms are 60 % of it. On one GPU: minutes.
Quick mode (tiny BN-MLP, 1 epoch (long arms 2), B = 256 vs 2048, arms sb and lb_gbn_long and the
transfer lb_gbn_sqrt_long_transfer, K = 2, 1 re-run seed; 8 runs in 5 programs): ≈ 30 s on this
2-core CPU while another job ran, most of it compiles.
"""

import os

from lbbench.config import Config
from lbbench.report import figures, study_figures
from lbbench.runs import atomic
from lbbench.study import answer, compare, protocol
from lbbench.study.search import equal_epochs_space
from lbbench.sweep import env_dataset

NAME = "hoffer"
SMALL, GHOST, LONGER = 256, 128, 4
EPOCHS, K, SEEDS, SEARCH_SEED = 10, 8, (1, 2, 3), 0
REFERENCE = "sb"


def large(quick: bool) -> int:
    return 2048 if quick else 4096


def epochs(quick: bool) -> int:
    return 1 if quick else EPOCHS


def arms(quick: bool) -> dict:
    """Tuned arms: {name: Config overrides}."""
    b, e = large(quick), epochs(quick)
    out = {
        "sb": {"batch_size": SMALL, "epochs": e},
        "lb": {"batch_size": b, "epochs": e},
        "lb_gbn": {"batch_size": b, "epochs": e, "ghost_batch_size": GHOST},
        "lb_gbn_long": {"batch_size": b, "epochs": (2 if quick else LONGER) * e, "ghost_batch_size": GHOST},
    }
    return {k: v for k, v in out.items() if not quick or k in ("sb", "lb_gbn_long")}


def transfers(quick: bool) -> dict:
    """Zero-shot transfers of sb's optimum: {name: overrides on top of the winner's config}."""
    b, e = large(quick), epochs(quick)
    out = {
        "lb_transfer": {"batch_size": b, "lr_scaling": "none"},
        "lb_sqrt_transfer": {"batch_size": b, "lr_scaling": "sqrt"},
        "lb_gbn_sqrt_transfer": {"batch_size": b, "lr_scaling": "sqrt", "ghost_batch_size": GHOST},
        "lb_gbn_sqrt_long_transfer": {
            "batch_size": b,
            "lr_scaling": "sqrt",
            "ghost_batch_size": GHOST,
            "epochs": (2 if quick else LONGER) * e,
        },
    }
    # quick: the one transfer that shares a compiled program with lb_gbn_long (fewer compiles)
    return {k: v for k, v in out.items() if not quick or k == "lb_gbn_sqrt_long_transfer"}


def base_config(quick: bool) -> Config:
    return Config(
        dataset=env_dataset(),
        model="tiny_bn_mlp" if quick else "f1",
        optimizer="momentum",
        lr_scaling="sqrt",
        base_batch_size=SMALL,
        schedule="warmup",
        epochs=epochs(quick),
        sharpness=False,
        save_params=False,
        train_eval_examples=2000,
    )


def grid(quick: bool) -> list[dict]:
    points = []
    for name, over in arms(quick).items():
        # Hoffer et al.'s regime adaptation stretches the whole schedule with the run: warmup here stays a
        # fraction of each arm's epochs by design (the one study that does; STUDY_PROTOCOL.md §4)
        space = equal_epochs_space("momentum", over["epochs"])
        for i, t in enumerate(space.trials(2 if quick else K, seed=SEARCH_SEED)):
            points.append({**t, **over, "seed": 0, "run_name": f"{name}{protocol.SEP}t{i}"})
    return points


def budget(arm: str, quick: bool) -> int:
    """Each arm is judged at its own training length (the long arms at LONGER × the epochs)."""
    return (2 if quick else LONGER) * epochs(quick) if "long" in arm else epochs(quick)


def _winners(results: dict, quick: bool) -> dict:
    out = {}
    for long in (False, True):
        part = {k: r for k, r in results.items() if ("long" in compare.arm_of_run(r["config"])) == long}
        out.update(protocol.winners(part, compare.arm_of_run, epoch_budget=budget("long" if long else "", quick)))
    return out


def followup(results: dict, quick: bool) -> list[dict]:
    """Transfers of sb's optimum (once sb is tuned), then seeds of every arm's winner."""
    win = _winners(results, quick)
    names = set().union(*win.values()) if win else set()
    points = protocol.rerun_points(
        results, names, base_config(quick), SEEDS[:1] if quick else SEEDS, extra={"sharpness": not quick}
    )
    if win.get(REFERENCE):
        o = protocol.overrides_of(results[next(iter(win[REFERENCE]))], base_config(quick))
        points = [{**o, **over, "seed": 0, "run_name": name} for name, over in transfers(quick).items()] + points
    return points


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    rows = []
    for long in (False, True):
        part = {k: r for k, r in results.items() if ("long" in compare.arm_of_run(r["config"])) == long}
        if part:
            rows.append(
                answer.answer_rows(
                    part, epoch_budget=budget("long" if long else "", quick), step_budget=None, arm=compare.arm_of_run
                )
            )
    flat = [r for part in rows for r in part]
    by_arm = {r["arm"]: r for r in flat}
    gaps = {r["arm"]: compare.difference(by_arm, r["arm"], REFERENCE) for r in flat if r["arm"] != REFERENCE}
    out = {
        "epochs": epochs(quick),
        "long_epochs": budget("long", quick),
        "reference": REFERENCE,
        "answer": flat,
        "gap_to_reference": gaps,
        "winners": compare.winner_settings(flat, results),
        "no_effect": answer.no_effect(results),
    }
    atomic.write_json(os.path.join(sweep_dir, "hoffer.json"), out)
    order = list(arms(quick)) + list(transfers(quick))
    items = [(f"{a} − {REFERENCE}", gaps.get(a)) for a in order if a != REFERENCE]
    atomic.write_text(
        os.path.join(sweep_dir, "answer.md"),
        "\n".join(answer.answer_markdown(part, arm_name="arm") for part in rows)
        + "\n"
        + compare.difference_markdown(
            f"Gap to the tuned small batch ({REFERENCE}), each arm at its own training length",
            items,
            "An arm closes the gap when its verdict is non-inferior or better (study.verdicts).",
        )
        + "\n"
        + compare.winner_markdown(out["winners"])
        + answer.no_effect_markdown(out["no_effect"], results),
    )
    figures.save(study_figures.arms_figure(flat, REFERENCE), os.path.join(sweep_dir, "hoffer.png"))
    return {
        "summary": {
            "reference_accuracy": (((by_arm.get(REFERENCE) or {}).get("epochs") or {}).get("accuracy") or {}).get(
                "mean"
            ),
            "gap": {a: d and d["diff"] for a, d in gaps.items()},
            "arms_closing_gap": sorted(a for a, d in compare.judge(gaps).items() if compare.closes_gap(d)),
            "no_effect_pairs": len(out["no_effect"]),
        },
        "hoffer": out,
    }
