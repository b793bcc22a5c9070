"""Mean, sample std and 95 % t-interval of the final metrics over the seeds of one `--seeds` group.

The interval is the one the study tables use (`lbbench.study.bootstrap.mean_ci`, Student t), so a
seeds summary and a study's answer table state the same uncertainty the same way.
"""

from __future__ import annotations

import numpy as np

from lbbench.report.numfmt import mean_interval
from lbbench.study.bootstrap import mean_ci

METRICS = ("val_accuracy", "test_accuracy", "train_accuracy", "generalization_gap", "test_loss", "train_loss")


def _stat(values: list) -> dict:
    xs = np.asarray([v for v in values if v is not None], float)
    if xs.size == 0:
        return {"mean": None, "std": None, "n": 0, "ci_low": None, "ci_high": None}
    ci = mean_ci(xs.tolist())
    std = float(xs.std(ddof=1)) if xs.size > 1 else None
    return {"mean": float(xs.mean()), "std": std, "n": int(xs.size), "ci_low": ci["low"], "ci_high": ci["high"]}


def summarise(results: list[dict]) -> dict:
    """Per metric {mean, std (ddof=1; None for one seed), n} over the *completed* seeds, plus per-seed values."""
    done = [r for r in results if r["status"] == "completed"]
    sharp = lambda r, k: (r.get("sharpness") or {}).get(k)
    out = {
        "seeds": [r["config"]["seed"] for r in results],
        "status": {r["config"]["run_name"]: r["status"] for r in results},
        "runs": [r["run_dir"] for r in results],
        "per_seed": {m: [r["final"].get(m) for r in results] for m in METRICS},
        "stats": {m: _stat([r["final"].get(m) for r in done]) for m in METRICS},
    }
    for k in ("lambda_max", "hessian_trace"):
        out["stats"][k] = _stat([sharp(r, k) for r in done])
    return out


def lines(summary: dict) -> list[str]:
    """The printed summary: one line a metric, `mean [95 % t-interval]` to one precision (printed
    after the per-seed lines); when no seed completed, one line saying how each seed ended."""
    n = len(summary["seeds"])
    statuses = list(summary["status"].values())
    done = statuses.count("completed")
    if not done:
        ended = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
        return [f"{n} seeds, none completed ({ended}): no mean or interval to report"]
    out = [f"{n} seeds ({done} completed); mean [95 % t-interval] over the completed seeds:"]
    for k, st in summary["stats"].items():
        if st["mean"] is not None:
            out.append(f"  {k:<20} {mean_interval(st['mean'], st['ci_low'], st['ci_high'])}  (n={st['n']})")
    return out
