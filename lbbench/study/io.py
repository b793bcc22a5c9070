"""Writing study outputs: strict JSON (non-finite numbers become null) and text, both atomically."""

from __future__ import annotations

import json
import math

from lbbench.runs.atomic import atomic_open


def strict(obj):
    """A copy of obj that json can write with allow_nan=False: inf/NaN → None, tuples → lists,
    numpy scalars → Python numbers, non-string keys → strings."""
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [strict(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def write_json(path: str, obj) -> None:
    with atomic_open(path, "w") as f:
        json.dump(strict(obj), f, indent=1, allow_nan=False)


def write_text(path: str, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)
