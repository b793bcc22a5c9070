"""Atomic file writes: write beside the final name, fsync, then rename, so readers never see half a file.

Files get the permissions an ordinary `open()` would give them (0666 minus the user's umask, so
0644 by default), not mkstemp's private 0600. If anything fails (a full disk included), the
temporary file is removed and the final name keeps its previous content, or stays absent.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading

_umask_lock = threading.Lock()


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
