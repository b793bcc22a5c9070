"""Atomic file writes and the one strict-JSON encoder: readers never see half a file, and JSON files
never hold NaN or Infinity.

Files are written beside the final name, fsynced, then renamed.

Files get the permissions an ordinary `open()` would give them (0666 minus the user's umask, so
0644 by default), not mkstemp's private 0600. If anything fails (a full disk included), the
temporary file is removed and the final name keeps its previous content, or stays absent.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading

_umask_lock = threading.RLock()  # re-entrant: a signal's hard stop may write while main holds it


def current_umask() -> int:
    """The process umask (read by setting and restoring it; serialised with a lock)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
    """Yield a file to write; on success it replaces `path` in one rename, on error it is removed."""
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.splitext(path)[1] + ".part")
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def strict_json(obj, path: str = ""):
    """(copy of `obj` that json can write with allow_nan=False, key paths of the NaN/inf replaced by None).

    JSON has no NaN or Infinity; Python's json module writes them anyway, and strict parsers
    (browsers, jq, pandas with some engines) then reject the whole file. numpy scalars and arrays
    become Python numbers and lists, tuples and sets lists, non-string keys strings.
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
            out[str(k)], b = strict_json(v, f"{path}.{k}" if path else str(k))
            bad += b
        return out, bad
    if isinstance(obj, (list, tuple, set)):
        out, bad = [], []
        for i, v in enumerate(sorted(obj, key=repr) if isinstance(obj, set) else obj):
            c, b = strict_json(v, f"{path}[{i}]")
            out.append(c)
            bad += b
        return out, bad
    raise TypeError(f"not JSON serialisable: {type(obj)} at {path or '$'}")


def write_json(path: str, obj) -> None:
    """Strict JSON, written atomically. Non-finite numbers become null; for a dict their key paths
    are listed under "non_finite" (the reason they are null)."""
    clean, bad = strict_json(obj)
    if bad and isinstance(clean, dict):
        clean["non_finite"] = sorted(set(clean.get("non_finite") or []) | set(bad))
    text = json.dumps(clean, indent=2, sort_keys=True, allow_nan=False)
    with atomic_open(path, "w") as f:
        f.write(text)


def write_bytes(path: str, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def finite_or_none(x):
    """JSON has no NaN/inf: store them as null (a diverged run's losses); None stays None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
