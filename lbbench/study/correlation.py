"""Does a sharpness measure predict the generalization gap? A rank correlation over trained runs.

Jiang et al. 2020 ("Fantastic generalization measures", §4) and Andriushchenko et al. 2023 test a
measure by Kendall's τ between it and the gap over a population of networks, not by one pair of
runs. Here: τ-b (scipy) with a percentile bootstrap interval that resamples configurations (a
configuration's seed re-runs are not independent runs), and Jiang's granulated τ
(their Eq. 4): for each hyperparameter i, the mean τ within the groups of runs that differ in i
only; Ψ is the mean over the hyperparameters that have such groups. A measure whose interval
excludes 0 ranks the runs' gaps; one whose interval holds 0 does not, here.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict

import numpy as np
import scipy.stats

from lbbench.config.sections import BOOKKEEPING
from lbbench.runs.reader import read_json

TARGETS = ("generalization_gap", "test_error")


def tau(x, y) -> float | None:
    """Kendall's τ-b of the pairs (None with fewer than 3 pairs or a constant side)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(scipy.stats.kendalltau(x, y).statistic)


def tau_interval(x, y, clusters=None, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple:
    """Percentile bootstrap interval of τ, resampling whole clusters (e.g. one configuration's seeds,
    which are not independent runs) with replacement; each run its own cluster when none are given."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    labels = np.arange(len(x)) if clusters is None else np.unique(np.asarray(clusters), return_inverse=True)[1]
    members = [np.flatnonzero(labels == c) for c in range(labels.max() + 1)]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        i = np.concatenate([members[c] for c in rng.integers(0, len(members), len(members))])
        t = tau(x[i], y[i])
        if t is not None:
            draws.append(t)
    if len(draws) < n_resamples // 2:
        return None, None
    alpha = (1 - confidence) / 2
    return float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))


def granulated_tau(rows: list[dict], measure: str, target: str, axes: list[str]) -> dict:
    """{"psi": mean over axes, "by_axis": {axis: mean τ within groups differing in that axis only}}."""
    by_axis = {}
    for axis in axes:
        groups = defaultdict(list)
        for r in rows:
            groups[tuple((a, r["hparams"].get(a)) for a in axes if a != axis)].append(r)
        taus = [
            tau([r[measure] for r in g], [r[target] for r in g])
            for g in groups.values()
            if len({r["hparams"].get(axis) for r in g}) > 1
        ]
        taus = [t for t in taus if t is not None]
        if taus:
            by_axis[axis] = float(np.mean(taus))
    return {"psi": float(np.mean(list(by_axis.values()))) if by_axis else None, "by_axis": by_axis}


def _measures(result: dict) -> dict:
    s = result.get("sharpness") or {}
    out = {k: s.get(k) for k in ("lambda_max", "hessian_trace")}
    for key, value in (s.get("epsilon_sharpness") or {}).items():
        out[f"eps_{key}"] = value
    adaptive = result.get("adaptive_sharpness") or {}
    if isinstance(adaptive, dict):
        out["adaptive_sharpness"] = adaptive.get("adaptive_sharpness")
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def rows_from(folders: list[str]) -> list[dict]:
    """One row per completed run with a sharpness measurement directly inside each folder."""
    rows = []
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            result = read_json(os.path.join(folder, name, "result.json"))[0]
            if not isinstance(result, dict) or result.get("status") != "completed":
                continue
            measures, final = _measures(result), result.get("final") or {}
            if not measures or final.get("generalization_gap") is None:
                continue
            cfg = result.get("config") or {}
            hparams = {k: _hashable(v) for k, v in cfg.items() if k not in BOOKKEEPING}
            rows.append(
                {
                    "run": f"{os.path.basename(os.path.normpath(folder))}/{name}",
                    "hparams": hparams,
                    "generalization_gap": float(final["generalization_gap"]),
                    "test_error": 1.0 - float(final["test_accuracy"]),
                    **measures,
                }
            )
    return rows


def saved_rows(path: str) -> list[dict] | None:
    """The run rows a sharpness_vs_gap.json kept (its "rows"), hparams made hashable again; None when the
    file is missing, unreadable or keeps none."""
    data = read_json(path)[0]
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "run" in r for r in rows):
        return None
    return [{**r, "hparams": {k: _hashable(v) for k, v in (r.get("hparams") or {}).items()}} for r in rows]


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def configuration(row: dict) -> str:
    """A run's hyperparameters (the seed is bookkeeping): its seeds re-runs share it, one cluster."""
    return repr(sorted(row["hparams"].items()))


def varying_axes(rows: list[dict]) -> list[str]:
    """The hyperparameters that take more than one value over the rows."""
    keys = sorted({k for r in rows for k in r["hparams"]})
    return [k for k in keys if len({r["hparams"].get(k) for r in rows}) > 1]


def table(rows: list[dict], seed: int = 0) -> list[dict]:
    """Per measure and target: n, τ with its bootstrap interval, granulated Ψ and its axes."""
    axes = varying_axes(rows)
    measures = sorted({k for r in rows for k in r if k not in ("run", "hparams", *TARGETS)})
    out = []
    for m in measures:
        have = [r for r in rows if m in r]
        for target in TARGETS:
            x, y = [r[m] for r in have], [r[target] for r in have]
            low, high = tau_interval(x, y, [configuration(r) for r in have], seed=seed)
            g = granulated_tau(have, m, target, axes)
            out.append(
                {"measure": m, "target": target, "n": len(have), "tau": tau(x, y), "low": low, "high": high, **g}
            )
    return out


def workload(row: dict) -> str:
    """The model a run trained: the correlation is read per workload (issue 23), never pooled across models
    whose sharpness scales differ."""
    return str(row["hparams"].get("model") or "model not recorded")


def tables_by_workload(rows: list[dict], seed: int = 0) -> dict[str, dict]:
    """{workload: {"runs": n, "table": table(its rows)}}, workloads in sorted order."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(workload(r), []).append(r)
    return {w: {"runs": len(g), "table": table(g, seed)} for w, g in sorted(groups.items()) if len(g) >= 3}


def verdict(row: dict) -> str:
    """ "ranks the gap" (interval above 0), "ranks it inversely" (below 0), or "no evidence"."""
    if row["low"] is None:
        return "too few runs"
    if row["low"] > 0:
        return "ranks it (τ > 0)"
    if row["high"] < 0:
        return "ranks it inversely (τ < 0)"
    return "no evidence either way (the interval holds 0)"
