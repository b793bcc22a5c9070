"""Safe run names and removals that can never leave their folder.

A run name becomes one directory under --workdir (or a sweep folder), so it must be exactly one
path component: no separators, not `.`/`..`, not absolute, not hidden (names starting with `.` are
reserved for lbbench's own lock and staging entries), bounded length. `./a` and `a` name the same
run, so names are normalised before they are compared. Every recursive removal goes through
`remove_inside`, which resolves both paths (symlinks included) and refuses anything that is not
strictly inside the given root.
"""

from __future__ import annotations

import os
import shutil

MAX_NAME_BYTES = 200  # leaves room for lbbench's suffixes within the usual 255-byte limit


class UnsafeName(ValueError):
    """A run name that is not a single, ordinary path component."""


def normalize_run_name(name: str) -> str:
    """The canonical form of a run name (leading `./` and surrounding blanks dropped), or UnsafeName."""
    if not isinstance(name, str):
        raise UnsafeName(f"must be a string, got {type(name).__name__}")
    n = name.strip()
    while n.startswith("./"):
        n = n[2:]
    if len(n) > 1 and n.endswith("/") and not os.path.isabs(n):
        n = n.rstrip("/")
    if not n:
        raise UnsafeName(f"{name!r} is empty")
    if "\x00" in n or any(ord(c) < 32 for c in n):
        raise UnsafeName(f"{name!r} contains control characters")
    if os.path.isabs(n) or "/" in n or "\\" in n or (os.altsep and os.altsep in n):
        raise UnsafeName(f"{name!r} must be a single folder name, without '/' or '\\' (not a path)")
    if n in (".", ".."):
        raise UnsafeName(f"{name!r} is not a folder name")
    if n.startswith("."):
        raise UnsafeName(f"{name!r} starts with '.', which lbbench reserves for its lock and staging files")
    if len(n.encode("utf-8")) > MAX_NAME_BYTES:
        raise UnsafeName(f"{name[:40]!r}... is longer than {MAX_NAME_BYTES} bytes")
    return n


def is_inside(root: str, path: str) -> bool:
    """True if `path`, fully resolved, lies strictly inside resolved `root`."""
    r, p = os.path.realpath(root), os.path.realpath(path)
    return p != r and os.path.commonpath([r, p]) == r


def remove_inside(root: str, path: str) -> None:
    """Delete file or tree `path`, but only if it resolves to somewhere strictly inside `root`.

    A symlink is removed as a link (its target is never followed), and only if the link itself
    sits inside root.
    """
    if os.path.islink(path):
        parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        r = os.path.realpath(root)
        if parent != r and not is_inside(r, parent):
            raise PermissionError(f"refusing to remove {path}: it is not inside {root}")
        os.unlink(path)
        return
    if not is_inside(root, path):
        raise PermissionError(f"refusing to remove {path}: it is not inside {root}")
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)
