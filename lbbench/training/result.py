"""What a run records: the per-epoch record and the result.json dict, assembled from host values.

result.json keys: status, config, final, timing, environment, history (per-epoch columns), warnings,
dataset, provenance, evals (mid-epoch evaluations, if any), what each instrument keeps (e.g.
sharpness, noise_scale, curvature), and, once written, config_fingerprint, params_sha256, run_dir.
"""

from __future__ import annotations

import numpy as np

from lbbench.config import Config
from lbbench.runs.atomic import finite_or_none
from lbbench.runs.provenance import environment
from lbbench.runs.tags import FINAL

# result.json `history` columns: the end-of-run metrics per epoch (but the loss gap), rate, noise scale
HISTORY_KEYS = ("epoch", "step", *(k for k in FINAL if k != "loss_gap"), "learning_rate", "noise_b_simple")


def epoch_record(metrics: dict, evals: dict, distance: float, examples: int, seconds: float) -> dict:
    """Everything logged once per epoch for one trial (host values; metrics are this trial's column)."""
    return {
        **evals,
        "step_loss": float(np.mean(metrics["loss"])),
        "step_accuracy": float(np.mean(metrics["accuracy"])),
        "grad_norm": float(np.mean(metrics["grad_norm"])),
        "learning_rate": float(metrics["learning_rate"][-1]),
        "distance_from_init": float(distance),
        "examples_per_s": examples / seconds,
        "epoch_seconds": seconds,
    }


def diverged(record: dict) -> bool:
    """Whether an epoch record's losses went NaN/inf."""
    return not np.all(np.isfinite([record["step_loss"], record["train_loss"], record["test_loss"]]))


def history_columns(history: list[dict]) -> dict:
    """result.json `history`; a --batch_schedule run's records also keep the batch each epoch trained at."""
    keys = HISTORY_KEYS + (("batch_size",) if any("batch_size" in h for h in history) else ())
    return {k: [finite_or_none(h.get(k)) for h in history] for k in keys}


def dataset_info(ds) -> dict:
    return {
        "name": ds.name,
        "num_classes": ds.num_classes,
        "num_train": ds.num_train,
        "num_val": ds.num_val,
        "num_test": int(len(ds.y_test)),
        "input_shape": list(ds.input_shape),
    }


def result(cfg: Config, status: str, history: list[dict], timing: dict, extra: dict) -> dict:
    last = history[-1] if history else {}
    final = {k: finite_or_none(last[k]) if k in last else None for k in FINAL}
    return {
        "status": status,
        "config": cfg.to_dict(),
        "final": final,
        "timing": timing,
        "environment": environment(),
        "history": history_columns(history),
        "warnings": cfg.warnings(),
        **extra,
    }
