"""Does accuracy degrade with larger batch sizes *at convergence*? Each batch size tuned with a decaying
schedule and a generous budget; and Hoffer et al.'s regime adaptation.

    lbbench-sweep convergence [--quick]

Issue 22 item 3. critical_batch answers at an equal number of epochs and of steps, with a constant
rate after warmup (so steps to a target are independent of the run length); this study asks what
Keskar et al. and Hoffer et al. argue about: trained to convergence, is the large batch worse?
Every arm gets the same K = 32 quasi-random trials (critical_batch's momentum space: base rate at
B = 256 with √ scaling, log(1 − momentum), warmup in steps, weight decay; drawn per arm), a linear
warmup then a cosine decay to 0 over the arm's whole budget (`warmup_cosine`), and the budget
max(E_MIN = 30 epochs, T_MIN = 3,000 steps) — stated, the same rule for every arm. Successive
halving as critical_batch declares it (rungs at 1/9 and 1/3 of the epochs, the top third promoted
on validation accuracy; with a cosine schedule an early rung ranks trials before their rate has
decayed: a noisier ranking, which the halving_check comparison measures for the constant-rate
study). The winner of each arm (best validation accuracy at the end, tuning seed 0) is re-run with
seeds 1 … 8; test accuracy at the end of the budget — the pre-declared checkpoint — is read once.
An arm whose winner sits in the outer 10 % of a searched range first gets 8 more trials over that range
widened on that side (critical_batch's range-edge rule, study.protocol.widening).

Arms: B = 64, 512 and 2048 (what two CPU cores can afford in one session: a 2048 trial trains
104 epochs for its 3,000 steps, 3.5× the examples of a 64 one; 4096 would double the study's
compute), and **regime adaptation** (Hoffer et al. 2017 §5: "train longer"): B = 2048 for as many
steps as the B = 512 arm takes (its learning rate √-scaled, as they do). Every arm is compared with
B = 64 by the verdict rule (study.verdicts: non-inferiority at a 1-point margin, Holm), with the
generalization gap of each winner beside it. The at-convergence column of the answer: this study;
the equal-epoch and equal-step columns: critical_batch.

Quick mode: tiny MLP, B 256 and 1024 (2 epochs) and the regime arm (1024 for the steps of 256's 2
epochs), 3 trials per arm, 2 seeds.
"""

import math
import os

from lbbench.config import Config
from lbbench.experiments import critical_batch
from lbbench.report import figures, study_figures
from lbbench.runs import atomic
from lbbench.study import answer, compare, protocol
from lbbench.study.halving import Halving
from lbbench.study.search import default_space
from lbbench.sweep import halving as sweep_halving

NAME = "convergence"
E_MIN, T_MIN = 30, 3000
BATCHES, QUICK_BATCHES = (64, 512, 2048), (256, 1024)
K, SEEDS, SEARCH_SEED = 32, tuple(range(1, 9)), 100  # another draw than critical_batch's
REGIME = "regime"


def _steps_per_epoch(b: int) -> int:
    return critical_batch._steps_per_epoch(b)


def epochs(b: int, quick: bool) -> int:
    return 2 if quick else max(E_MIN, math.ceil(T_MIN / _steps_per_epoch(b)))


def regime(quick: bool) -> tuple[int, int]:
    """(batch size, epochs) of the regime-adaptation arm: the largest batch for the steps of the one below it."""
    batches = QUICK_BATCHES if quick else BATCHES
    steps = epochs(batches[-2], quick) * _steps_per_epoch(batches[-2])
    return batches[-1], math.ceil(steps / _steps_per_epoch(batches[-1]))


def arm(cfg: dict) -> int | str:
    """The arm a run belongs to: its batch size, or the regime-adaptation arm (run names `b<B>regime…`)."""
    b = int(cfg["batch_size"])
    return f"{b} (regime adaptation)" if cfg.get("run_name", "").startswith(f"b{b}{REGIME}") else b


def halving(quick: bool) -> Halving:
    """critical_batch's ladder, one bracket per arm (the regime arm apart from its batch size's)."""
    return Halving(
        rungs=critical_batch.RUNGS,
        keep=critical_batch.KEEP,
        metric="val_accuracy",
        bracket=lambda cfg: arm({"batch_size": cfg.batch_size, "run_name": cfg.run_name}),
    )


def base_config(quick: bool) -> Config:
    return critical_batch.base_config(quick).replace(schedule="warmup_cosine", eval_every_steps=0)


def grid(quick: bool) -> list[dict]:
    space = default_space("momentum")
    arms = [(b, epochs(b, quick), f"b{b}") for b in (QUICK_BATCHES if quick else BATCHES)]
    b, e = regime(quick)
    arms.append((b, e, f"b{b}{REGIME}"))
    points = []
    for j, (b, e, name) in enumerate(arms):
        for i, t in enumerate(space.trials(3 if quick else K, seed=SEARCH_SEED + j)):
            points.append({**t, "batch_size": b, "epochs": e, "seed": 0, "run_name": f"{name}{protocol.SEP}t{i}"})
    return points


def followup(results: dict, quick: bool) -> list[dict]:
    """Seeds of each arm's winner (the best validation accuracy at the end of its own budget), after the
    range-edge rule's widened trials (protocol.widening) where a winner sat at an edge."""
    win = protocol.winners(results, arm, epoch_budget=math.inf)
    space = default_space("momentum")
    k, base = critical_batch.widen_k(quick), base_config(quick)
    wide, pending = protocol.widening(results, win, lambda a: space, base, k, critical_batch.WIDEN_SEED)
    names = {n for a, ns in win.items() if a not in pending for n in ns}
    seeds = SEEDS[:2] if quick else SEEDS
    return wide + protocol.rerun_points(results, names, base, seeds, extra=critical_batch.rerun_extra(quick))


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    arms = {str(arm(r["config"])): arm(r["config"]) for r in results.values() if r and "config" in r}
    stopped = {arms[k]: n for k, n in sweep_halving.stopped_by_bracket(sweep_dir, results).items() if k in arms}
    rows = answer.answer_rows(results, epoch_budget=math.inf, arm=arm, kinds=("epochs",), stopped=stopped)
    cells = {r["arm"]: r.get("epochs") for r in rows if (r.get("epochs") or {}).get("best")}
    ref = (QUICK_BATCHES if quick else BATCHES)[0]
    diffs = {a: compare.cell_difference(c, cells[ref]) for a, c in cells.items() if a != ref and ref in cells}
    judged = compare.judge({str(a): d for a, d in diffs.items()})
    summary = {"reference": ref, "comparisons": judged, "budget": {"epochs": E_MIN, "steps": T_MIN}}
    summary["conclusions"] = conclusions(summary)
    atomic.write_json(os.path.join(sweep_dir, "convergence.json"), {"answer": rows, **summary})
    atomic.write_text(
        os.path.join(sweep_dir, "answer.md"),
        compare.conclusions_markdown(summary["conclusions"])
        + answer.answer_markdown(rows, arm_name="arm")
        + "\n"
        + compare.difference_markdown(
            f"Does accuracy degrade at convergence? Each arm against B = {ref}", [(str(a), d) for a, d in diffs.items()]
        )
        + "\n"
        + answer.tuning_markdown(rows, results, lambda a: default_space("momentum"), arm_name="arm"),
    )
    by_batch = [r for r in rows if isinstance(r["arm"], int)]  # the regime arm is in the tables
    figures.save(study_figures.accuracy_figure(by_batch), os.path.join(sweep_dir, "accuracy_vs_batch.png"))
    return {"summary": summary}


def conclusions(summary: dict) -> list[str]:
    """One sentence from the verdicts (tests/experiments check committed prose against analysis.json)."""
    if not summary.get("comparisons"):
        return []
    what = f"Trained to convergence (max({E_MIN} epochs, {T_MIN} steps), warmup + cosine), test accuracy against B = "
    return [compare.verdict_sentence(what + str(summary["reference"]), summary["comparisons"])]
