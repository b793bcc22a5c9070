"""Second-half statistics of edge-of-stability runs, and the verdicts they give (pure: result dicts in).

Each run's tracked curvature (result.json `curvature` columns, lbbench.instruments.curvature_tracker)
is read over the second half of training (steps > T/2, T = the run's steps): has the curvature
settled at its stability threshold there?

    gd, gd_mse  full-batch GD (plain SGD at B = the training subset) on cross-entropy / on MSE:
                lambda_max / (2/eta) (Cohen et al. 2021, "Gradient descent on neural networks
                typically occurs at the edge of stability", Sec. 3: lambda_max hovers at 2/eta)
    sgd         plain SGD at smaller B (cross-entropy): batch sharpness / (2/eta) and lambda_max
                against B (Andreyev & Beneventano 2024, "Edge of stochastic stability", Def. 1)
    adam        full-batch Adam (cross-entropy): lambda_max(P^-1 H) / (38/eta) (Cohen et al. 2022)

Verdict for a GD arm: lambda_max is "within +-BAND of 2/eta over the second half" when at least
HOVER_FRACTION of its second-half measurements lie in [1 - BAND, 1 + BAND] x 2/eta: hovering, with
room for the spikes the edge of stability itself produces (Cohen et al.'s Fig. 1 oscillates); the
stricter `stayed_within_band` (every measurement) is reported beside it.
"""

from __future__ import annotations

import numpy as np

from lbbench.curvature.thresholds import adam_threshold

BAND = 0.2  # "within +-20 % of the threshold"
HOVER_FRACTION = 0.8  # share of second-half measurements inside the band for a "yes"
ARMS = ("gd", "gd_mse", "sgd", "adam")
LOSS_NAMES = {"gd": "cross-entropy", "gd_mse": "MSE"}


def loss_of(result: dict) -> str:
    """The run's training loss (Config.loss); runs from before the flag trained cross-entropy."""
    return (result.get("config") or {}).get("loss") or "cross_entropy"


def arm_of(result: dict) -> str | None:
    """ "gd" / "gd_mse" (sgd at the full subset), "sgd" (smaller batches) or "adam" (cross-entropy);
    None for anything else (other optimizers, MSE runs that are not full-batch GD)."""
    cfg = result.get("config", {})
    n = cfg.get("train_subset") or (result.get("dataset") or {}).get("num_train")
    full_batch = bool(n and cfg.get("batch_size", 0) >= n)
    if loss_of(result) == "mse":
        return "gd_mse" if cfg.get("optimizer") == "sgd" and full_batch else None
    if cfg.get("optimizer") == "adam":
        return "adam"
    if cfg.get("optimizer") == "sgd":
        return "gd" if full_batch else "sgd"
    return None


def total_steps(result: dict) -> int:
    """Steps the run trained (timing.steps), else the last tracked step."""
    steps = (result.get("timing") or {}).get("steps")
    if steps:
        return int(steps)
    return int(max((result.get("curvature") or {}).get("step") or [0]))


def series(result: dict, key: str) -> tuple[list, list]:
    """(steps, values) of curvature column `key`, None values dropped."""
    curv = result.get("curvature") or {}
    pts = [(s, v) for s, v in zip(curv.get("step") or [], curv.get(key) or []) if v is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def second_half(result: dict, key: str, first: bool = False) -> np.ndarray:
    """Values of curvature column `key` measured at steps > T/2 (T = total steps), None dropped;
    with first=True those at steps <= T/2 instead."""
    half = total_steps(result) / 2.0
    vals = [v for s, v in zip(*series(result, key)) if (s <= half if first else s > half)]
    return np.asarray(vals, np.float64)


def lr_of(result: dict) -> float:
    return float(result["config"]["learning_rate"])


def _median(a: np.ndarray) -> float | None:
    return float(np.median(a)) if a.size else None


def _within(a: np.ndarray, band: float = BAND) -> float | None:
    """Fraction of ratios in [1 - band, 1 + band]."""
    return float(np.mean(np.abs(a - 1.0) <= band)) if a.size else None


def _final_loss(result: dict):
    return (result.get("final") or {}).get("train_loss")


def by_arm(results: dict) -> dict[str, list[tuple[str, dict]]]:
    """{arm: [(run name, result)]} for every arm of ARMS, runs sorted by name."""
    out: dict[str, list] = {arm: [] for arm in ARMS}
    for name, r in sorted(results.items()):
        arm = arm_of(r)
        if arm:
            out[arm].append((name, r))
    return out


def gd_row(name: str, result: dict, band: float = BAND) -> dict:
    """One full-batch GD run: lambda_max / (2/eta) over the second half, and the verdict."""
    ratio = second_half(result, "lambda_max_ratio")
    within = _within(ratio, band)
    return {
        "run": name,
        "loss": loss_of(result),
        "status": result.get("status"),
        "lr": lr_of(result),
        "two_over_eta": 2.0 / lr_of(result),
        "steps": total_steps(result),
        "n_second_half": int(ratio.size),
        "frac_within_band": within,
        "median_ratio": _median(ratio),
        "min_ratio": float(ratio.min()) if ratio.size else None,
        "max_ratio": float(ratio.max()) if ratio.size else None,
        "median_lambda_max": _median(second_half(result, "lambda_max")),
        "median_batch_sharpness_ratio": _median(second_half(result, "batch_sharpness_ratio")),
        "stayed_within_band": bool(within == 1.0) if within is not None else None,
        "hovers_within_band": bool(within >= HOVER_FRACTION) if within is not None else None,
        "final_train_loss": _final_loss(result),
    }


def sgd_row(name: str, result: dict, band: float = BAND) -> dict:
    """One SGD run (or the GD run at the SGD learning rate, the B = subset end of the family)."""
    bs = lambda first=False: second_half(result, "batch_sharpness_ratio", first)  # noqa: E731
    lam = lambda first=False: second_half(result, "lambda_max", first)  # noqa: E731
    return {
        "run": name,
        "status": result.get("status"),
        "lr": lr_of(result),
        "batch_size": int(result["config"]["batch_size"]),
        "n_second_half": int(bs().size),
        "median_batch_sharpness_ratio": _median(bs()),
        "frac_batch_sharpness_within_band": _within(bs(), band),
        "median_lambda_max": _median(lam()),
        "median_lambda_max_ratio": _median(second_half(result, "lambda_max_ratio")),
        # the first half too: at B >= 160 the loss nears zero in the second half (BUILD_NOTES)
        "first_half_median_batch_sharpness_ratio": _median(bs(first=True)),
        "first_half_median_lambda_max": _median(lam(first=True)),
        "steps": total_steps(result),
        "final_train_loss": _final_loss(result),
    }


def adam_row(name: str, result: dict, band: float = BAND) -> dict:
    """One full-batch Adam run: lambda_max(P^-1 H) / (38/eta) over the second half, and its peak."""
    ratio = second_half(result, "preconditioned_ratio")
    return {
        "run": name,
        "status": result.get("status"),
        "lr": lr_of(result),
        "batch_size": int(result["config"]["batch_size"]),
        "threshold": adam_threshold(lr_of(result), float(result["config"].get("momentum", 0.9))),
        "n_second_half": int(ratio.size),
        "median_preconditioned_ratio": _median(ratio),
        **peak(result, "preconditioned_ratio"),
        "frac_within_band": _within(ratio, band),
        "median_lambda_max": _median(second_half(result, "lambda_max")),
        "final_train_loss": _final_loss(result),
    }


def peak(result: dict, key: str) -> dict:
    """The largest value of a curvature column over the whole run and the step it was measured at."""
    steps, vals = series(result, key)
    if not vals:
        return {"peak_ratio": None, "peak_step": None}
    i = int(np.argmax(vals))
    return {"peak_ratio": float(vals[i]), "peak_step": int(steps[i])}


def sgd_family(arms: dict) -> list[tuple[str, dict]]:
    """The SGD runs and the cross-entropy GD runs at an SGD learning rate (the B = subset end)."""
    lrs = {lr_of(r) for _, r in arms["sgd"]}
    family = arms["sgd"] + [(n, r) for n, r in arms["gd"] if lr_of(r) in lrs]
    return sorted(family, key=lambda t: (lr_of(t[1]), t[1]["config"]["batch_size"]))


def falls_as_batch_shrinks(rows: list[dict]) -> dict:
    """Per SGD learning rate: is the second-half median lambda_max non-decreasing in B?"""
    out = {}
    for lr in sorted({r["lr"] for r in rows}):
        at_lr = [r for r in rows if r["lr"] == lr and r["median_lambda_max"] is not None]
        pts = sorted((r["batch_size"], r["median_lambda_max"]) for r in at_lr)
        if len(pts) >= 2:
            out[f"{lr:g}"] = bool(all(a[1] <= b[1] for a, b in zip(pts, pts[1:])))
    return out


def summarize(results: dict, band: float = BAND) -> dict:
    """Per-arm second-half statistics and the GD verdicts (module docstring); pure, no files."""
    arms = by_arm(results)
    by_lr = lambda runs: sorted(runs, key=lambda t: lr_of(t[1]))  # noqa: E731
    summary = {
        "band": band,
        "hover_fraction": HOVER_FRACTION,
        "gd": [gd_row(n, r, band) for n, r in by_lr(arms["gd"])],
        "gd_mse": [gd_row(n, r, band) for n, r in by_lr(arms["gd_mse"])],
        "sgd": [sgd_row(n, r, band) for n, r in sgd_family(arms)],
        "adam": [adam_row(n, r, band) for n, r in by_lr(arms["adam"])],
    }
    summary["lambda_max_falls_as_batch_shrinks"] = falls_as_batch_shrinks(summary["sgd"])
    summary["conclusions"] = conclusions(summary)
    return summary


def verdict(row: dict, band: float) -> str:
    """One GD arm's sentence: within +-band of 2/eta over the second half, yes/no, and the numbers."""
    if row["frac_within_band"] is None:
        return f"no measurements in the second half ({row['status']})"
    answer = "yes" if row["hovers_within_band"] else "no"
    return (
        f"within ±{band * 100:g} % of 2/η over the second half: {answer} "
        f"({row['frac_within_band'] * 100:.0f} % of {row['n_second_half']} measurements; "
        f"median λ_max/(2/η) {row['median_ratio']:.2f}, range {row['min_ratio']:.2f}–{row['max_ratio']:.2f})"
    )


def conclusions(summary: dict) -> list[str]:
    """Sentences computed from the GD rows only: one per arm, then one per loss counting the yeses."""
    band, out = summary["band"], []
    for arm in ("gd_mse", "gd"):
        rows = summary.get(arm) or []
        for row in rows:
            out.append(f"Full-batch GD, {LOSS_NAMES[arm]}, η = {row['lr']:g}: {verdict(row, band)}.")
        if rows:
            yes = sum(bool(r["hovers_within_band"]) for r in rows)
            out.append(
                f"{LOSS_NAMES[arm]}: λ_max hovered within ±{band * 100:g} % of 2/η (at least "
                f"{summary['hover_fraction'] * 100:.0f} % of the second half) at {yes} of {len(rows)} learning rates."
            )
    return out
