"""Goyal et al. 2017, tuned: the linear scaling rule and gradual warmup, against per-B tuning.

    python -m lbbench.sweep experiments/goyal.py [--quick]

Issue 10. The first version of this file compared batch sizes at one untuned rate (0.1 · B/256,
two seeds) and found "the linear rule breaks at 4096". Shallue et al. 2019 and Nado et al. 2021:
that can be an artefact of the untuned base rate. Now the rule is tested the way it is used — as a
zero-shot transfer of a *tuned* small-batch optimum — and set against what tuning at the large
batch itself achieves with the same budget:

* `base_b256`: momentum SGD at B = 256 tuned with K = 8 quasi-random trials (scrambled Sobol over
  base learning rate, log(1 − momentum), warmup fraction, weight decay;
  lbbench.study.search.default_space("momentum")).
* `linear_b<B>` / `linear_warmup_b<B>`, B = 512 … 8192: the tuned B = 256 optimum (chosen on seed 0
  by best test accuracy within the epoch budget) with lr × B/256 (Goyal's rule), without warmup
  and with a gradual warmup of WARMUP_EPOCHS = 3 epochs (Goyal §2.2). Built by `followup` once the
  B = 256 trials have finished; no tuning at B.
* `tuned_b<B>`: the control, K = 8 trials at each B over the same space (the same unit Sobol
  points as base_b256; learning rate searched as a base rate with sqrt scaling so the space is
  centred at every B).

All arms: step decay ÷10 at 50 % and 75 % of EPOCHS = 20 epochs (`warmup_step`), the same epochs
for every B (Goyal compares at equal epochs). Every arm's winner (tuned arms: best test accuracy
within 20 epochs, on seed 0; transfers: the single run) is re-run with seeds 1–3. `analyze`
writes answer.md (the study layer's answer table: mean and 95 % CI over the re-run seeds) and the
decomposition of each B's deficit against the tuned B = 256 reference, all with Welch CIs:

    total deficit   = linear(_warmup)_b<B> − base_b256    what the rule loses
    batch deficit   = tuned_b<B>          − base_b256    what remains after tuning at B
    protocol part   = linear(_warmup)_b<B> − tuned_b<B>   what the rule leaves on the table

plus the warmup effect (linear_warmup − linear) and goyal.png (accuracy vs B, three arms, the
reference as a band). Files: answer.md, goyal.json, goyal.png.

**Time on the 2-core CPU (estimated, not run: no CPU for it here).** Default MLP, 20 epochs =
1.2M examples per run. Measured here with a background study running (load ~7 on 2 cores):
135k examples/s at B = 256, 217k at 8192, compile ~5 s; the benchmark's ~400k/s on a quiet CPU.
48 tuning trials + 10 transfers + 16 winners × 3 seeds = 106 runs × 3–9 s plus ~25 compiles
(packing the 8 trials of one B into one program gains ~1.1× at these batches): **≈ 10–20 min**.
Quick mode (tiny MLP, 2 epochs, B = 256 vs 1024, K = 2, 1 re-run seed; 10 runs in 5 programs):
≈ 40 s on this 2-core CPU while another job ran, most of it compiles.
"""

import os

from lbbench.config import Config
from lbbench.report import figures, study_figures
from lbbench.runs import atomic
from lbbench.study import answer, compare, protocol
from lbbench.study.search import equal_epochs_space
from lbbench.sweep import env_dataset

NAME = "goyal"
BASE_BATCH = 256
LARGE = (512, 1024, 2048, 4096, 8192)
EPOCHS, WARMUP_EPOCHS = 20, 3.0
K, SEEDS, SEARCH_SEED = 8, (1, 2, 3), 0
BASE_ARM = f"base_b{BASE_BATCH}"


def sizes(quick: bool) -> tuple[int, ...]:
    return (1024,) if quick else LARGE


def epochs(quick: bool) -> int:
    return 2 if quick else EPOCHS


def warmup(quick: bool) -> float:
    return 0.5 if quick else WARMUP_EPOCHS


def base_config(quick: bool) -> Config:
    return Config(
        dataset=env_dataset(),
        model="tiny_mlp" if quick else "mlp",
        optimizer="momentum",
        lr_scaling="sqrt",
        base_batch_size=BASE_BATCH,
        schedule="warmup_step",
        epochs=epochs(quick),
        sharpness=False,
        save_params=False,
        train_eval_examples=2000,
    )


def space(quick: bool):
    """Momentum SGD's space (every arm trains the same epochs)."""
    return equal_epochs_space("momentum", epochs(quick))


def _tuned(arm: str, b: int, quick: bool) -> list[dict]:
    trials = space(quick).trials(2 if quick else K, seed=SEARCH_SEED)
    return [{**t, "batch_size": b, "seed": 0, "run_name": f"{arm}{protocol.SEP}t{i}"} for i, t in enumerate(trials)]


def grid(quick: bool) -> list[dict]:
    return _tuned(BASE_ARM, BASE_BATCH, quick) + [p for b in sizes(quick) for p in _tuned(f"tuned_b{b}", b, quick)]


def transfer_points(results: dict, quick: bool) -> list[dict]:
    """The tuned B = 256 optimum at every large B with linear scaling, without and with warmup."""
    win = protocol.winners(results, compare.arm_of_run, epoch_budget=epochs(quick)).get(BASE_ARM)
    if not win:
        return []
    o = protocol.overrides_of(results[next(iter(win))], base_config(quick))
    return [
        {**o, "batch_size": b, "lr_scaling": "linear", "warmup_epochs": w, "seed": 0, "run_name": f"{tag}_b{b}"}
        for b in sizes(quick)
        for tag, w in (("linear", 0.0), ("linear_warmup", warmup(quick)))
    ]


def followup(results: dict, quick: bool) -> list[dict]:
    """Transfers (once B = 256 is tuned), then seeds of every arm's winner (transfers included)."""
    win = protocol.winners(results, compare.arm_of_run, epoch_budget=epochs(quick))
    names = set().union(*win.values()) if win else set()
    reruns = protocol.rerun_points(results, names, base_config(quick), SEEDS[:1] if quick else SEEDS)
    return transfer_points(results, quick) + reruns


def decomposition(by_arm: dict, quick: bool) -> list[dict]:
    """Per large B: total deficit of each transfer, batch deficit of the tuned control, their
    difference (the protocol's share), and the warmup effect; Welch CIs over re-run seeds."""
    out = []
    for b in sizes(quick):
        lin, lw, tuned = f"linear_b{b}", f"linear_warmup_b{b}", f"tuned_b{b}"
        out.append(
            {
                "batch_size": b,
                "total_no_warmup": compare.difference(by_arm, lin, BASE_ARM),
                "total_warmup": compare.difference(by_arm, lw, BASE_ARM),
                "batch": compare.difference(by_arm, tuned, BASE_ARM),
                "protocol_no_warmup": compare.difference(by_arm, lin, tuned),
                "protocol_warmup": compare.difference(by_arm, lw, tuned),
                "warmup_effect": compare.difference(by_arm, lw, lin),
            }
        )
    return out


def analyze(sweep_dir: str, results: dict, quick: bool) -> dict:
    rows = answer.answer_rows(results, epoch_budget=epochs(quick), step_budget=None, arm=compare.arm_of_run)
    by_arm = {r["arm"]: r for r in rows}
    dec = decomposition(by_arm, quick)
    out = {
        "epoch_budget": epochs(quick),
        "warmup_epochs": warmup(quick),
        "reference": BASE_ARM,
        "answer": rows,
        "decomposition": dec,
        "winners": compare.winner_settings(rows, results),
        "no_effect": answer.no_effect(results),
    }
    atomic.write_json(os.path.join(sweep_dir, "goyal.json"), out)

    def acc(arm):
        return ((by_arm.get(arm) or {}).get("epochs") or {}).get("accuracy")

    series = {
        label: [(b, acc(f"{prefix}_b{b}")) for b in sizes(quick)]
        for label, prefix in (
            ("linear rule, no warmup", "linear"),
            ("linear rule + warmup", "linear_warmup"),
            ("tuned at B (K trials)", "tuned"),
        )
    }
    figures.save(
        study_figures.series_figure(series, (f"tuned B={BASE_BATCH}", acc(BASE_ARM))),
        os.path.join(sweep_dir, "goyal.png"),
    )
    summary = {
        "reference_accuracy": (acc(BASE_ARM) or {}).get("mean"),
        "deficit": {d["batch_size"]: {k: v and v["diff"] for k, v in d.items() if k != "batch_size"} for d in dec},
        "tuned_lr": {
            b: (out["winners"].get(BASE_ARM if b == BASE_BATCH else f"tuned_b{b}") or {}).get("learning_rate")
            for b in (BASE_BATCH, *sizes(quick))
        },
        "verdicts": {k: {b: (d or {}).get("verdict") for b, d in fam.items()} for k, fam in judged(dec).items()},
        "rule_holds_up_to": _holds_up_to(dec, "total_warmup"),
        "tuning_holds_up_to": _holds_up_to(dec, "batch"),
        "no_effect_pairs": len(out["no_effect"]),
    }
    summary["conclusions"] = conclusions(summary)
    atomic.write_text(
        os.path.join(sweep_dir, "answer.md"),
        compare.conclusions_markdown(summary["conclusions"])
        + answer.answer_markdown(rows, arm_name="arm")
        + "\n"
        + decomposition_markdown(dec)
        + "\n"
        + answer.tuning_markdown(rows, results, lambda a: None if a.startswith("linear") else space(quick), "arm")
        + "\n"
        + compare.winner_markdown(out["winners"])
        + answer.no_effect_markdown(out["no_effect"], results),
    )
    return {"summary": summary, "goyal": out}


def _holds_up_to(dec: list[dict], key: str):
    """The largest B up to which every (arm − reference) closes the gap (compare.closes_gap: verdict
    non-inferior or better, judged with Holm over this comparison's batch sizes; None: not even the first,
    or no CI)."""
    family = compare.judge({d["batch_size"]: d[key] for d in dec})
    last = None
    for d in dec:
        if not compare.closes_gap(family[d["batch_size"]]):
            break
        last = d["batch_size"]
    return last


FAMILIES = (
    ("total_no_warmup", "linear rule − tuned 256 (total, no warmup)"),
    ("total_warmup", "linear rule + warmup − tuned 256 (total, warmup)"),
    ("batch", "tuned at B − tuned 256 (batch)"),
    ("protocol_no_warmup", "linear rule − tuned at B (protocol, no warmup)"),
    ("protocol_warmup", "linear rule + warmup − tuned at B (protocol, warmup)"),
    ("warmup_effect", "warmup effect (with − without)"),
)


def judged(dec: list[dict]) -> dict:
    """{comparison: {B: judged difference}}: each kind of comparison is one family over the batch sizes."""
    return {key: compare.judge({d["batch_size"]: d[key] for d in dec}) for key, _ in FAMILIES}


def conclusions(summary: dict) -> list[str]:
    """Sentences computed from the verdicts in `summary` (checked against the committed analysis.json)."""
    v = summary["verdicts"]
    return [
        compare.verdict_sentence("Linear rule + warmup vs the tuned B = 256 reference, by B", v["total_warmup"]),
        compare.verdict_sentence("Linear rule without warmup vs the reference, by B", v["total_no_warmup"]),
        compare.verdict_sentence("Tuned at each B vs the reference (the batch's own deficit), by B", v["batch"]),
        f"The linear rule with warmup holds (non-inferior at every B up to it) up to B = "
        f"{summary['rule_holds_up_to'] or 'none'}; tuning at each B holds up to B = "
        f"{summary['tuning_holds_up_to'] or 'none'}.",
    ]


def decomposition_markdown(dec: list[dict]) -> str:
    parts = [
        "### How much of each batch size's deficit is the batch, and how much the protocol?",
        "",
        "Total = zero-shot transfer of the tuned B=256 optimum − the tuned B=256 reference; batch = the "
        "per-B tuned control − reference; protocol = transfer − tuned control (negative: tuning at B "
        "recovers it). Test accuracy at the epoch budget, re-run seeds only. Each table is one family.",
        "",
    ]
    for key, title in FAMILIES:
        items = [(f"B={d['batch_size']}", d[key]) for d in dec]
        parts.append(compare.difference_markdown(title, items))
    return "\n".join(parts)
