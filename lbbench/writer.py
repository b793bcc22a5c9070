"""Run outputs: TensorBoard event files (tensorboardX, no TensorFlow) plus metrics.jsonl.

Only process 0 writes; the others get a writer whose methods do nothing, so callers need no
`if process_index == 0` of their own. HParams are written into the run's own event file so the
HParams tab lines each run's configuration up against its final metrics.
"""

from __future__ import annotations

import json
import math
import os

import jax

from lbbench.atomic import atomic_open

HPARAM_METRICS = ("final/test_accuracy", "final/train_accuracy", "final/generalization_gap",
                  "final/test_loss", "sharpness/lambda_max", "sharpness/hessian_trace",
                  "noise_scale/b_simple")


def strict_json(obj, path: str = ""):
    """(copy of `obj` with every NaN/inf float replaced by None, key paths of those replacements).

    JSON has no NaN or Infinity; Python's json module writes them anyway, and strict parsers
    (browsers, jq, pandas with some engines) then reject the whole file.
    """
    if hasattr(obj, "item") and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()
    elif hasattr(obj, "tolist"):
        obj = obj.tolist()
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj, []
    if isinstance(obj, float):
        return (obj, []) if math.isfinite(obj) else (None, [path or "$"])
    if isinstance(obj, dict):
        out, bad = {}, []
        for k, v in obj.items():
            out[k], b = strict_json(v, f"{path}.{k}" if path else str(k))
            bad += b
        return out, bad
    if isinstance(obj, (list, tuple)):
        out, bad = [], []
        for i, v in enumerate(obj):
            c, b = strict_json(v, f"{path}[{i}]")
            out.append(c)
            bad += b
        return out, bad
    raise TypeError(f"not JSON serialisable: {type(obj)} at {path or '$'}")


def atomic_write_json(path: str, obj) -> None:
    """Strict JSON, written atomically. Non-finite numbers become null; for a dict their key paths
    are listed under "non_finite" (the reason they are null)."""
    clean, bad = strict_json(obj)
    if bad and isinstance(clean, dict):
        clean["non_finite"] = sorted(set(clean.get("non_finite") or []) | set(bad))
    text = json.dumps(clean, indent=2, sort_keys=True, allow_nan=False)
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path: str, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def finite_or_none(x):
    """JSON has no NaN/inf: store them as null (a diverged run's losses)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _hparam_value(v):
    return v if isinstance(v, (bool, int, float, str)) else str(v)


class RunWriter:
    """Scalars, figures and hparams to TensorBoard; one JSON line per record to metrics.jsonl."""

    def __init__(self, run_dir: str, hparams: dict):
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams as hparams_summary

        self.tb = SummaryWriter(logdir=run_dir, flush_secs=10)
        self.jsonl = open(os.path.join(run_dir, "metrics.jsonl"), "a")
        hp = {k: _hparam_value(v) for k, v in hparams.items()}
        exp, ssi, self._sei = hparams_summary(hp, {m: 0.0 for m in HPARAM_METRICS})
        self.tb.file_writer.add_summary(exp)
        self.tb.file_writer.add_summary(ssi)

    def scalars(self, step: int, values: dict, record: str | None = None) -> None:
        """Log each finite value under its tag; write the record to metrics.jsonl if `record`."""
        if not self.enabled:
            return
        for tag, v in values.items():
            if v is not None and math.isfinite(float(v)):
                self.tb.add_scalar(tag, float(v), step)
        if record:
            line = {"record": record, "step": step, **{k: finite_or_none(v) if v is not None else None
                                                       for k, v in values.items()}}
            self.jsonl.write(json.dumps(line) + "\n")
            self.jsonl.flush()

    def step_series(self, tag: str, first_step: int, values) -> None:
        """Per-step values of one epoch (fetched once per epoch, not per step)."""
        if not self.enabled:
            return
        for i, v in enumerate(values):
            if math.isfinite(float(v)):
                self.tb.add_scalar(tag, float(v), first_step + i)

    def figure(self, tag: str, fig, step: int) -> None:
        if self.enabled:
            self.tb.add_figure(tag, fig, step, close=False)

    def close(self) -> None:
        if not self.enabled:
            return
        self.tb.file_writer.add_summary(self._sei)
        self.tb.close()
        self.jsonl.close()
