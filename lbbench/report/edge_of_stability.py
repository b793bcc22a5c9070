"""The edge-of-stability experiment's files: eos.md (tables of lbbench.study.edge_of_stability's
summary, its conclusions first), eos_ratios.png (curvature / threshold against step, one panel per
arm), eos_gd.png and eos_gd_mse.png (Cohen et al. 2021 Fig. 1: GD train loss and lambda_max with
2/eta dashed, cross-entropy and MSE) and eos_summary.json.
"""

from __future__ import annotations

import os

import numpy as np

from lbbench.report import curvature_figures, figures
from lbbench.runs import atomic
from lbbench.study import edge_of_stability as eos

GD_COLUMNS = (
    ("lr", "eta"),
    ("two_over_eta", "2/eta"),
    ("steps", "steps"),
    ("n_second_half", "measurements"),
    ("frac_within_band", "within {pct} of 2/eta"),
    ("median_ratio", "median lambda_max/(2/eta)"),
    ("min_ratio", "min"),
    ("max_ratio", "max"),
    ("median_lambda_max", "median lambda_max"),
    ("median_batch_sharpness_ratio", "median batch sharpness/(2/eta)"),
    ("hovers_within_band", "hovers within {pct} (>= {hover} of measurements)"),
    ("stayed_within_band", "stayed within {pct} (all)"),
    ("final_train_loss", "final train loss"),
    ("status", "status"),
)
SGD_COLUMNS = (
    ("lr", "eta"),
    ("batch_size", "B"),
    ("steps", "steps"),
    ("n_second_half", "measurements"),
    ("median_batch_sharpness_ratio", "median batch sharpness/(2/eta)"),
    ("frac_batch_sharpness_within_band", "batch sharpness within {pct}"),
    ("median_lambda_max", "median lambda_max"),
    ("median_lambda_max_ratio", "median lambda_max/(2/eta)"),
    ("first_half_median_batch_sharpness_ratio", "first half: median batch sharpness/(2/eta)"),
    ("first_half_median_lambda_max", "first half: median lambda_max"),
    ("final_train_loss", "final train loss"),
    ("status", "status"),
)
ADAM_COLUMNS = (
    ("lr", "eta"),
    ("batch_size", "B"),
    ("threshold", "38/eta"),
    ("n_second_half", "measurements"),
    ("median_preconditioned_ratio", "median lambda_max(P^-1 H)/(38/eta)"),
    ("frac_within_band", "within {pct}"),
    ("peak_ratio", "peak ratio (whole run)"),
    ("peak_step", "at step"),
    ("median_lambda_max", "median lambda_max(H)"),
    ("final_train_loss", "final train loss"),
    ("status", "status"),
)


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer, str)):
        return str(v)
    return f"{v:.{digits}g}"


def _table(rows: list[dict], columns, **names) -> list[str]:
    """A markdown table of `rows` with (key, header) `columns`; headers formatted with `names`."""
    lines = ["| " + " | ".join(h.format(**names) for _, h in columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]


def markdown(summary: dict) -> str:
    """The eos.md text: conclusions, then GD (MSE, cross-entropy), SGD and Adam tables."""
    names = {"pct": f"±{summary['band'] * 100:g} %", "hover": f"{summary['hover_fraction'] * 100:g} %"}
    lines = [
        "# Edge of stability (MNIST-1D)",
        "",
        "Statistics are over the tracked measurements in the second half of each run (steps > T/2, "
        "T = the run's steps) unless a column says first half (steps <= T/2).",
        "",
        *[f"- {c}" for c in summary.get("conclusions") or []],
    ]
    for arm, title in (
        ("gd_mse", "Full-batch GD on MSE: lambda_max vs 2/eta (Cohen et al. 2021)"),
        ("gd", "Full-batch GD on cross-entropy: lambda_max vs 2/eta (Cohen et al. 2021)"),
    ):
        if summary.get(arm):
            lines += ["", f"## {title}", "", *_table(summary[arm], GD_COLUMNS, **names)]
    lines += ["", "## SGD: batch sharpness vs 2/eta, lambda_max vs B (Andreyev & Beneventano 2024)", ""]
    lines += _table(summary["sgd"], SGD_COLUMNS, **names)
    falls = summary["lambda_max_falls_as_batch_shrinks"]
    if falls:
        lines += [
            "",
            "lambda_max (second-half median) falls monotonically as B shrinks: "
            + ", ".join(f"eta {k}: {_fmt(v)}" for k, v in falls.items()),
        ]
    lines += ["", "## Adam: preconditioned sharpness vs 38/eta (Cohen et al. 2022)", ""]
    lines += _table(summary["adam"], ADAM_COLUMNS, **names)
    return "\n".join(lines) + "\n"


def _b_label(result: dict) -> str:
    return f"B = {result['config']['batch_size']}" + (" (full batch)" if eos.arm_of(result) == "gd" else "")


def _eta_label(result: dict) -> str:
    return f"η = {eos.lr_of(result):g}"


def ratio_panels(results: dict) -> list[dict]:
    """The ratio panels (curvature_figures.ratio_figure): GD lambda_max/(2/eta) on cross-entropy and on MSE; SGD
    batch sharpness/(2/eta) and lambda_max/(2/eta); Adam lambda_max(P^-1 H)/(38/eta); each with T/2 of
    its runs' lengths. An arm without runs has no panel."""
    arms = eos.by_arm(results)
    family = [r for _, r in eos.sgd_family(arms)]
    by_lr = lambda arm: sorted((r for _, r in arms[arm]), key=eos.lr_of)  # noqa: E731
    specs = [
        (by_lr("gd"), "lambda_max_ratio", "full-batch GD, cross-entropy: λ_max / (2/η)", _eta_label),
        (by_lr("gd_mse"), "lambda_max_ratio", "full-batch GD, MSE: λ_max / (2/η)", _eta_label),
        (family, "batch_sharpness_ratio", "SGD: batch sharpness / (2/η)", _b_label),
        (family, "lambda_max_ratio", "SGD: λ_max / (2/η)", _b_label),
        (by_lr("adam"), "preconditioned_ratio", "Adam: λ_max(P⁻¹H) / (38/η)", _eta_label),
    ]
    return [
        {
            "title": title,
            "halves": sorted({eos.total_steps(r) / 2.0 for r in runs}),
            "curves": [(label(r), *eos.series(r, key)) for r in runs],
        }
        for runs, key, title, label in specs
        if runs
    ]


def gd_curves(results: dict, arm: str = "gd") -> list[dict]:
    """Per GD run of `arm` (curvature_figures.gd_figure): its label, train-loss history, lambda_max series, 2/eta."""
    runs = sorted((r for r in results.values() if eos.arm_of(r) == arm), key=eos.lr_of)
    return [
        {
            "label": _eta_label(r),
            "loss": ((r.get("history") or {}).get("step") or [], (r.get("history") or {}).get("train_loss") or []),
            "lambda_max": eos.series(r, "lambda_max"),
            "threshold": 2.0 / eos.lr_of(r),
            "eval_examples": r["config"].get("train_eval_examples"),
        }
        for r in runs
    ]


def write(sweep_dir: str, results: dict, summary: dict) -> None:
    """eos.md, eos_ratios.png, eos_gd.png, eos_gd_mse.png (if there are MSE runs) and eos_summary.json."""
    atomic.write_text(os.path.join(sweep_dir, "eos.md"), markdown(summary))
    path = lambda name: os.path.join(sweep_dir, name)  # noqa: E731
    figures.save(curvature_figures.ratio_figure(ratio_panels(results), summary["band"]), path("eos_ratios.png"))
    figures.save(curvature_figures.gd_figure(gd_curves(results, "gd")), path("eos_gd.png"))
    if summary.get("gd_mse"):
        # log loss axis: GD on MSE at these rates starts with a catapult (experiments/edge_of_stability.py)
        figures.save(
            curvature_figures.gd_figure(gd_curves(results, "gd_mse"), "MSE", log_loss=True), path("eos_gd_mse.png")
        )
    atomic.write_json(path("eos_summary.json"), summary)
