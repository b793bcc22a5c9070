"""Finished runs as rows: `load(folder)` gives a pandas DataFrame of every run under a folder.

    from lbbench.runs import reader as results
    df = results.load("sweeps/goyal")
    df[~df.never_learned].groupby(["batch_size", "warmup_epochs"]).test_accuracy.agg(["mean", "std", "count"])

One row per result.json found anywhere below the folder (a sweep, a workdir of single runs, or a
folder of sweeps): every config key as its own column, then status, `never_learned`, final
metrics, sharpness (λ_max, trace ± stderr, each ε-sharpness), noise scale, timing and provenance.
pandas is imported only inside `load`, so the rest of lbbench never needs it.
"""

from __future__ import annotations

import json
import os

FINAL = ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "generalization_gap", "loss_gap")
TIMING = ("steps", "total_s", "compile_s", "train_s", "examples_per_s")
CHANCE_MARGIN = 0.05  # a run "never learned" if its final test accuracy is ≤ 1/num_classes + this


def chance_accuracy(result: dict) -> float | None:
    """1 / num_classes of the run's dataset (None if result.json does not say)."""
    n = (result.get("dataset") or {}).get("num_classes")
    return 1.0 / n if n else None


def never_learned(result: dict, margin: float = CHANCE_MARGIN) -> bool:
    """A completed run whose final test accuracy is at chance (≤ 1/num_classes + margin).

    Such runs did not train at all (e.g. the linear scaling rule's learning rate was too large):
    their "generalization gap" is ~0 because both accuracies are at chance, so averaging them with
    runs that did learn, or reading their gap as "no gap", misleads.
    """
    chance = chance_accuracy(result)
    acc = (result.get("final") or {}).get("test_accuracy")
    return result.get("status") == "completed" and chance is not None and acc is not None and acc <= chance + margin


def eps_column(key: str) -> str:
    """Column name of one ε-sharpness value, e.g. 'full_0.001' -> 'eps_sharpness_full_0.001'."""
    return f"eps_sharpness_{key}"


def flatten(result: dict, margin: float = CHANCE_MARGIN) -> dict:
    """One row: run_name, status, never_learned, every config key, final metrics, sharpness, noise, timing."""
    cfg, sharp = result.get("config") or {}, result.get("sharpness") or {}
    row = {"run_name": cfg.get("run_name"), "status": result.get("status"),
           "never_learned": never_learned(result, margin), "chance_accuracy": chance_accuracy(result)}
    row.update({k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k != "run_name"})
    final = result.get("final") or {}
    row.update({k: final.get(k) for k in FINAL})
    row["lambda_max"] = sharp.get("lambda_max")
    row["hessian_trace"] = sharp.get("hessian_trace")
    row["hessian_trace_stderr"] = sharp.get("hessian_trace_stderr")
    for k, v in sorted((sharp.get("epsilon_sharpness") or {}).items()):
        row[eps_column(k)] = v
    row["b_simple"] = (result.get("noise_scale") or {}).get("b_simple")
    timing = result.get("timing") or {}
    row.update({k: timing.get(k) for k in TIMING})
    prov = result.get("provenance") or {}
    row["git_commit"] = prov.get("git_commit")
    row["error"] = result.get("error")
    return row


def find(folder: str) -> list[tuple[str, dict]]:
    """(run folder relative to `folder`, parsed result.json) for every readable result below `folder`."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if "result.json" in files:
            try:
                with open(os.path.join(root, "result.json")) as f:
                    found.append((os.path.relpath(root, folder), json.load(f)))
            except (OSError, ValueError):
                continue  # being written, or killed before the atomic write: not a result yet
    return found


def load(folder: str, margin: float = CHANCE_MARGIN):
    """A pandas DataFrame with one row per run under `folder` (column `run_dir` relative to it)."""
    import pandas as pd  # only here: pandas is needed for DataFrames, nowhere else

    rows = [{"run_dir": d, **flatten(r, margin)} for d, r in find(folder)]
    return pd.DataFrame(rows)
