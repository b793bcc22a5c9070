"""Mean ± sample std of the final metrics over the seeds of one `--seeds` group."""

from __future__ import annotations

import numpy as np

METRICS = ("test_accuracy", "train_accuracy", "generalization_gap", "test_loss", "train_loss")


def _stat(values: list) -> dict:
    xs = np.asarray([v for v in values if v is not None], float)
    if xs.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(xs.mean()), "std": float(xs.std(ddof=1)) if xs.size > 1 else None, "n": int(xs.size)}


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
    """The printed summary: a header, then mean ± std per metric; when no seed completed, one line
    saying so and how each seed ended (there is nothing to average)."""
    n = len(summary["seeds"])
    statuses = list(summary["status"].values())
    done = statuses.count("completed")
    if not done:
        ended = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
        return [f"{n} seeds, none completed ({ended}): no mean or std to report"]
    out = [f"{n} seeds ({done} completed), mean ± sample std over completed seeds:"]
    for k, st in summary["stats"].items():
        if st["mean"] is not None:
            std = f" ± {st['std']:.4g}" if st["std"] is not None else ""
            out.append(f"  {k:<20} {st['mean']:.4g}{std}  (n={st['n']})")
    return out
