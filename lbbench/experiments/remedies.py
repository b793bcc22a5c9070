"""Which remedy closes the large-batch gap? Each remedy tuned with the same budget at B = 8192.

    python -m lbbench.sweep remedies [--quick]

Issue 10. At B_LARGE = 8192 (7 steps per epoch on MNIST-1D's 60k examples) five optimizers — momentum,
nesterov, adam, lars (You et al. 2017), lamb (You et al. 2020) — each get the same K = 32 quasi-random
trials (issue 22; each arm its own Sobol scramble) over their own search space
(lbbench.study.search.default_space: base learning rate at B = 256 with sqrt scaling, log(1 −
momentum/β1), warmup length in epochs, weight decay, and log(1 − β2) for adam and lamb). The reference
is momentum and adam tuned the same way at B_SMALL = 256. Then, as zero-shot transfers from the tuned
small-batch optimum (no tuning at 8192; `followup` builds them once the B = 256 trials have finished):

* `<opt>_b8192_linear_transfer`: lr × B/256 (Goyal et al. 2017),
* `<opt>_b8192_sqrt_transfer`: lr × √(B/256) (Hoffer et al. 2017; Malladi et al. 2022 for adam),
* `adam_b8192_{sqrt,linear}_halflife_transfer`: additionally β2 → β2^(B/256), the second-moment
  half-life held fixed in examples (Marek et al. 2025, `beta2_scaling="half_life"`).

Issue 22 adds remedies that are not optimizers, each tuned over momentum's space with the same K:

* `sam_b8192`: SAM (Foret et al. 2021), its radius ρ searched with the rest (search.SAM_RHO).
* `momentum_b8192_ramp`: batch-size warmup (Merrill et al. 2025): B starts at 256 and doubles every
  epoch up to 8192, which trains the remaining epochs (`--batch_schedule`). The rate is scaled at 8192
  and does not change with the batch (the LR schedule runs on the global step).
* `momentum_b8192_increase` and `momentum_b512_decay`: Smith et al. 2018, "don't decay the learning
  rate, increase the batch size". `_decay` trains B = 512 with the rate divided by SMITH_FACTOR = 4
  at epochs 15 and 22 (warmup_step at 50 % and 75 %); `_increase` keeps the rate and multiplies the
  batch by 4 at the same epochs instead: 512 → 2048 → 8192. Both use lr_scaling "none", so trial i of
  the two arms has the same rate, momentum, warmup and weight decay (Smith et al.'s construction: the
  decay schedule turned into batch increases), and the pair is compared directly. (Smith et al. use a
  factor 5; 4 keeps every batch a power of two that ends at B_LARGE.)
* `momentum_b8192_bn`, `momentum_b8192_ghostbn` and `momentum_b256_bn`: ghost batch norm (Hoffer et
  al. 2017) needs BatchNorm, which the MLP has not. These arms train `bn_mlp` (the same MLP, BatchNorm
  after each hidden layer), tuned alike; the ghost arm also searches its ghost batch size (powers of
  two, 16–512). The BatchNorm workload's own questions are paired comparisons: its gap (BN at 8192 −
  BN at 256), whether ghost BN helps at the large batch (ghostbn − bn) and whether it closes that gap
  (ghostbn at 8192 − BN at 256). In the gap table every arm stands against the MLP reference; there
  the BN arms answer "does a BatchNorm network (with ghost BN) close the gap", another model, as
  their names say.

**Tuning budget** (issue 22): every tuned arm draws K = 32 trials; successive halving per arm
(critical_batch's ladder: ranked on validation accuracy after 1/9 and 1/3 of the epochs, the top third
promoted from its own checkpoint) trains 32 → 10 → 3 of them for the full 30 epochs. Only
full-budget trials can win. An arm whose winner sits in the outer 10 % of a searched range then gets K_WIDEN = 8
more trials over that range widened on that side before its re-runs (study.protocol.widening).

The batch-schedule arms take more steps than a constant 8192 within the same epochs (the answer's gap
table lists each winner's steps): the comparison is at an equal number of examples, as for every arm.

Every arm's winner (best validation accuracy at the epoch budget, chosen on seed 0) is re-run with seeds
1–8 (sharpness on; ≥ 8 for a 1-point non-inferiority claim, issue 22); the table reports mean and 95 %
CI of test accuracy over those re-runs and the difference to the better small-batch reference with a
Welch CI. An arm "closes the gap" when the difference is judged non-inferior or better
(lbbench.study.verdicts: margin 1 point, Holm over the arms); the paired comparisons (the three
BatchNorm ones, batch increases − LR decay) are a second family. The comparison is at a fixed **epoch**
budget (EPOCHS = 30 for every arm: 210 steps at a constant 8192, 7,020 at 256): the data-parallel
question is whether 32× fewer steps over the same data lose accuracy. (A step budget column is left
empty: 210 steps is less than one epoch at B = 256, where lbbench first evaluates.)

Quick mode (the CI smoke test): tiny models, 2 epochs, B 256 vs 1024, momentum/adam/lamb and one trial
of every new arm (the ramp 512 → 1024 and the increases 256 → 1024 after one epoch, the decay arm at
256 ÷ 4 after one epoch), two transfers, 1 re-run seed.
"""

import math
import os
from dataclasses import asdict

from lbbench.config import Config
from lbbench.report import figures, study_figures
from lbbench.runs import atomic
from lbbench.study import answer, compare, protocol
from lbbench.study.halving import Halving
from lbbench.study.search import SearchSpace, equal_epochs_space, ghost_batch_dim
from lbbench.sweep import env_dataset
from lbbench.sweep import halving as sweep_halving

NAME = "remedies"
OPTIMIZERS = ("momentum", "nesterov", "adam", "lars", "lamb", "sam")
QUICK_OPTIMIZERS = ("momentum", "adam", "lamb", "sam")  # the CI smoke test: one of each family
REFERENCE_OPTIMIZERS = ("momentum", "adam")
TRANSFERS = {
    "momentum": (("linear", "none"), ("sqrt", "none")),
    "adam": (("linear", "none"), ("sqrt", "none"), ("sqrt", "half_life"), ("linear", "half_life")),
}
QUICK_TRANSFERS = {"momentum": (("linear", "none"),), "adam": (("sqrt", "half_life"),)}
K, SEEDS, SEARCH_SEED, EPOCHS = 32, tuple(range(1, 9)), 0, 30
K_WIDEN, WIDEN_SEED = 8, 1000  # the range-edge rule (protocol.widening): 8 more trials over the widened range
RERUN_EXTRA = {"sharpness": True, "adaptive_sharpness_rho": 0.5}  # for lbbench.report.sharpness_vs_gap
SMITH_FACTOR = 4  # batch × 4 where the LR would be ÷ 4
GHOST = (16, 512)  # ghost batch sizes searched (quick: up to 256, the noise-scale sub-batch of 1024)


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
        noise_scale_groups=1,  # off: nothing here reads it (and for BN arms it is part of the trial's key)
        save_params=False,
    )


def arm(cfg: dict) -> str:
    """The arm is the run name up to the trial/seed suffix: '<optimizer>_b<B>[_<remedy>]'."""
    return cfg["run_name"].split(protocol.SEP)[0]


def space(opt: str, quick: bool):
    """What each optimizer is tuned over (every arm trains the same epochs)."""
    return equal_epochs_space(opt, epochs(quick))


def ramp_schedule(quick: bool) -> str:
    """Batch-size warmup: B_SMALL doubling every epoch towards B_LARGE (the last epochs − 1 doublings at
    most), then B_LARGE for the rest: '256:1,512:1,...,4096:1,8192:25' (quick: '512:1,1024:1')."""
    small, large = sizes(quick)
    ramp = [small * 2**i for i in range(int(math.log2(large // small)))][-(epochs(quick) - 1) :]
    return ",".join([f"{b}:1" for b in ramp] + [f"{large}:{epochs(quick) - len(ramp)}"])


def smith_boundaries(quick: bool) -> tuple[int, ...]:
    """Where the decay arm divides its rate and the increase arm multiplies its batch (50 %, 75 %)."""
    e = epochs(quick)
    return (1,) if quick else (e // 2, 3 * e // 4)


def smith_batches(quick: bool) -> list[int]:
    """The increase arm's batches, ending at B_LARGE: [512, 2048, 8192] (quick: [256, 1024])."""
    n = len(smith_boundaries(quick))
    return [sizes(quick)[1] // SMITH_FACTOR ** (n - i) for i in range(n + 1)]


def remedy_arms(quick: bool) -> dict[str, dict]:
    """{arm: overrides} of the arms that are not an optimizer alone (issue 22), at the large batch
    unless named otherwise; each is tuned over momentum's space (the ghost arm also over its ghost size)."""
    large, e = sizes(quick)[1], epochs(quick)
    bounds, batches = smith_boundaries(quick), smith_batches(quick)
    increase = [b - a for a, b in zip((0, *bounds), (*bounds, e))]
    bn_model = "tiny_bn_mlp" if quick else "bn_mlp"
    return {
        f"momentum_b{large}_ramp": {"batch_size": large, "batch_schedule": ramp_schedule(quick)},
        f"momentum_b{large}_increase": {
            "batch_size": large,
            "batch_schedule": ",".join(f"{b}:{n}" for b, n in zip(batches, increase)),
            "lr_scaling": "none",
        },
        f"momentum_b{batches[0]}_decay": {
            "batch_size": batches[0],
            "schedule": "warmup_step",
            "decay_epochs": bounds,
            "decay_factor": float(SMITH_FACTOR),
            "lr_scaling": "none",
        },
        f"momentum_b{large}_bn": {"batch_size": large, "model": bn_model},
        f"momentum_b{large}_ghostbn": {"batch_size": large, "model": bn_model},
        f"momentum_b{sizes(quick)[0]}_bn": {"batch_size": sizes(quick)[0], "model": bn_model},
    }


def halving(quick: bool) -> Halving:
    """Successive halving per arm on validation accuracy, critical_batch's ladder (rungs at 1/9 and 1/3
    of the epochs, the top third promoted): 32 → 10 → 3 trials of each arm train the full 30 epochs."""
    return Halving(rungs=(1 / 9, 1 / 3, 1.0), keep=1 / 3, metric="val_accuracy", bracket=lambda cfg: arm(asdict(cfg)))


def pairs(quick: bool) -> dict[str, tuple[str, str]]:
    """The paired comparisons {label: (arm, its own reference)} of the issue-22 arms."""
    (small, large), small_smith = sizes(quick), smith_batches(quick)[0]
    return {
        f"ghost BN − BN (bn_mlp, B = {large})": (f"momentum_b{large}_ghostbn", f"momentum_b{large}_bn"),
        f"BN at B = {large} − BN at B = {small} (bn_mlp's own gap)": (f"momentum_b{large}_bn", f"momentum_b{small}_bn"),
        f"ghost BN at B = {large} − BN at B = {small} (bn_mlp)": (
            f"momentum_b{large}_ghostbn",
            f"momentum_b{small}_bn",
        ),
        "batch increases − LR decay (Smith et al. 2018)": (
            f"momentum_b{large}_increase",
            f"momentum_b{small_smith}_decay",
        ),
    }


def space_of_arm(arm: str, quick: bool):
    """The search space of a tuned arm; None for a zero-shot transfer."""
    if arm.endswith("_transfer"):
        return None
    tuned = space(arm.split("_b")[0], quick)
    if arm.endswith("_ghostbn"):
        ghost = ghost_batch_dim(GHOST[0], min(GHOST[1], sizes(quick)[1] // 4))
        return SearchSpace((*tuned.dims, ghost))
    return tuned


def _tuned(name: str, overrides: dict, quick: bool, draw: int) -> list[dict]:
    trials = space_of_arm(name, quick).trials(1 if quick else K, seed=SEARCH_SEED + draw)
    base = {"optimizer": name.split("_b")[0], "epochs": epochs(quick), "seed": 0}
    return [{**t, **base, **overrides, "run_name": f"{name}{protocol.SEP}t{i}"} for i, t in enumerate(trials)]


def grid(quick: bool) -> list[dict]:
    small, large = sizes(quick)
    arms = {f"{o}_b{small}": {"batch_size": small} for o in REFERENCE_OPTIMIZERS}
    arms.update({f"{o}_b{large}": {"batch_size": large} for o in (QUICK_OPTIMIZERS if quick else OPTIMIZERS)})
    arms.update(remedy_arms(quick))
    names = list(arms)
    return [p for name, over in arms.items() for p in _tuned(name, over, quick, _draw(name, names, quick))]


def _draw(name: str, names: list[str], quick: bool) -> int:
    """Which Sobol scramble an arm's trials come from: its own (issue 22: drawn independently per arm),
    except Smith et al.'s pair, whose increase arm takes the decay arm's trials (their construction:
    the same hyperparameters, the decay turned into batch increases)."""
    decay, increase = pairs(quick)["batch increases − LR decay (Smith et al. 2018)"][::-1]
    return names.index(decay if name == increase else name)


def transfer_points(results: dict, quick: bool, win: dict, pending: set) -> list[dict]:
    """Zero-shot transfers of each tuned small-batch optimum (known once its trials, widened ones included,
    finished)."""
    small, large = sizes(quick)
    base, out = base_config(quick), []
    for opt, rules in (QUICK_TRANSFERS if quick else TRANSFERS).items():
        names = win.get(f"{opt}_b{small}")
        if not names or f"{opt}_b{small}" in pending:
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
    """Widened trials of arms whose winner sits at a range edge (protocol.widening); transfers; then seeds
    of every arm's winner (including the transfers, once they ran), each arm once its widening finished."""
    win = protocol.winners(results, arm, epoch_budget=epochs(quick))
    k = 1 if quick else K_WIDEN
    wide, pending = protocol.widening(results, win, lambda a: space_of_arm(a, quick), base_config(quick), k, WIDEN_SEED)
    names = {n for a, ns in win.items() if a not in pending for n in ns}
    reruns = protocol.rerun_points(
        results, names, base_config(quick), SEEDS[:1] if quick else SEEDS, extra=RERUN_EXTRA if not quick else {}
    )
    return wide + transfer_points(results, quick, win, pending) + reruns


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    small, large = sizes(quick)
    stopped = sweep_halving.stopped_by_bracket(sweep_dir, results)  # {arm: trials the ladder stopped}
    rows = answer.answer_rows(results, epoch_budget=epochs(quick), step_budget=None, arm=arm, stopped=stopped)
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
    for a, g in gaps.items():
        g["steps"] = _steps(results, by_arm[a], epochs(quick))
    paired = compare.judge({label: compare.difference(by_arm, a, b) for label, (a, b) in pairs(quick).items()})
    out = {
        "epoch_budget": epochs(quick),
        "reference": ref and ref["arm"],
        "answer": rows,
        "gap_to_reference": gaps,
        "paired": paired,
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
        "paired_verdicts": {k: v and v["verdict"] for k, v in paired.items()},
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
        + compare.difference_markdown(
            "Paired comparisons: each issue-22 remedy against its own reference, epoch budget",
            [(label, compare.difference(by_arm, a, b)) for label, (a, b) in pairs(quick).items()],
            note="Ghost BN against plain BatchNorm on the same bn_mlp at the same batch; Smith et al.'s batch "
            "increases against the LR decay they replace (same trials, same epochs, fewer steps).",
        )
        + "\n"
        + answer.tuning_markdown(rows, results, lambda a: space_of_arm(a, quick), arm_name="arm")
        + answer.no_effect_markdown(out["no_effect"], results),
    )
    figures.save(study_figures.arms_figure(rows, ref and ref["arm"]), os.path.join(sweep_dir, "remedies.png"))
    return {"summary": summary, "remedies": out}


def _steps(results: dict, row: dict, budget: int) -> int | None:
    """The global step at the epoch budget of an arm's epoch winner (batch schedules change it)."""
    h = (results.get((row.get("epochs") or {}).get("best") or "") or {}).get("history") or {}
    inside = [s for e, s in zip(h.get("epoch") or (), h.get("step") or ()) if e is not None and e <= budget]
    return int(inside[-1]) if inside and inside[-1] is not None else None


def conclusions(summary: dict) -> list[str]:
    """Sentences computed from the verdicts in `summary` (checked against the committed analysis.json;
    a summary written before the issue-22 arms has no paired verdicts, and no sentence for them)."""
    out = [
        compare.verdict_sentence(
            f"Each arm against the tuned small-batch reference ({summary['reference']}) at "
            f"{summary['epoch_budget']} epochs",
            summary["verdicts"],
        )
    ]
    if summary.get("paired_verdicts"):
        out.append(
            compare.verdict_sentence(
                f"Each issue-22 remedy against its own reference at {summary['epoch_budget']} epochs",
                summary["paired_verdicts"],
            )
        )
    return out


def gap_markdown(out: dict) -> str:
    lines = [
        f"### Gap to the tuned small-batch reference ({out['reference'] or '—'}), {out['epoch_budget']} epochs",
        "",
        "An arm closes the gap when its verdict is non-inferior or better (study.verdicts: margin 1 point, "
        "Holm over the arms).",
        "",
        "| arm | steps | test acc − reference [95% CI, Welch] | p (Holm) | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for a, g in sorted(out["gap_to_reference"].items()):
        ci = "—" if g["low"] is None else f"[{g['low']:+.4f}, {g['high']:+.4f}]"
        p = "—" if g.get("p_holm") is None else f"{g['p_holm']:.3g}"
        verdict = g.get("verdict") or "— (needs ≥ 2 seeds)"
        steps = "—" if g.get("steps") is None else f"{g['steps']:,}"
        lines.append(f"| {a} | {steps} | {g['diff']:+.4f} {ci} | {p} | {verdict} |")
    return "\n".join(lines) + "\n"
