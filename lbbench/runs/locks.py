"""One lock file per run folder, safe on local and shared network filesystems.

The lock is a file holding the owner's host, pid, a random token and the time it was taken. It is
written to a temporary file first and then hard-linked to its name (atomic, and refused if the name
exists, on local filesystems and on NFSv3+), so a lock is never seen empty; an empty or unreadable
lock (left by an older version, or by a filesystem fault) has no owner that could be shown alive
and is broken at once, with a one-line notice. The owner refreshes its
modification time every `HEARTBEAT_S` seconds from a daemon thread. A lock is stale, and may be
broken, when its owner is on this host and its pid is dead, or when it has not been refreshed for
`stale_after_s` seconds (owner on another host, a reused pid, or a file we cannot parse). Breaking renames the
lock file to a unique name first, so of two processes breaking the same stale lock only one
succeeds; if the renamed file turns out not to be the one judged stale, it is put back.

Locks are re-entrant within a process: a sweep locks the points of a group, then `train.run`
locks the same folder again, which only counts up.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time
import uuid

HEARTBEAT_S = 30.0
NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS)
STALE_AFTER_S = 600.0

_held: dict[str, list] = {}  # realpath -> [count, token]
_held_lock = threading.RLock()  # re-entrant: a signal's hard stop may release while main holds it
_heartbeat: threading.Thread | None = None


class LockBusy(RuntimeError):
    """Another live process holds the lock; `owner` describes it."""

    def __init__(self, path: str, owner: dict):
        self.path, self.owner = path, owner
        who = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}" if owner else "another process"
        since = f" since {owner['time_text']}" if owner.get("time_text") else ""
        super().__init__(f"{path} is locked by {who}{since} (if that process is gone, the lock is safe to delete)")


def _key(path: str) -> str:
    return os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path))


def _read(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(path: str, owner: dict | None, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether the lock at `path` (content `owner`) may be broken."""
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return True
    if owner and owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        if owner["pid"] == os.getpid() and _key(path) not in _held:
            return True  # our own pid, but not a lock this process holds: left by an earlier process
        return not pid_alive(owner["pid"]) or age > stale_after_s  # age: the pid may have been reused
    return age > stale_after_s


def _break(path: str, owner: dict | None) -> None:
    aside = f"{path}.stale-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if _read(aside) != owner:  # someone re-took the lock between our read and the rename: give it back
        try:
            os.link(aside, path)
        except OSError:
            pass
    os.remove(aside)


def _start_heartbeat() -> None:
    global _heartbeat
    if _heartbeat is not None and _heartbeat.is_alive():
        return

    def beat():
        while True:
            time.sleep(HEARTBEAT_S)
            with _held_lock:
                paths = list(_held)
            for p in paths:
                try:
                    os.utime(p)
                except OSError:
                    pass

    _heartbeat = threading.Thread(target=beat, name="lbbench-lock-heartbeat", daemon=True)
    _heartbeat.start()


def _publish(path: str, info: dict) -> bool:
    """Make the lock at `path` appear with its contents already in it; False if it exists.

    The contents go to a unique temporary file first, which is then hard-linked to `path` (atomic,
    fails if `path` exists, also on NFS): no process ever sees an empty lock. If anything fails
    (a full disk), the temporary file is removed and the error raised: nothing is left behind."""
    tmp = f"{path}.tmp-{info['token'][:12]}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except OSError as e:
            if e.errno not in NO_HARD_LINKS:
                raise
            return _publish_exclusive(path, info)  # a filesystem without hard links
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _publish_exclusive(path: str, info: dict) -> bool:
    """Where hard links are refused: create with O_EXCL, then write (empty for a moment, which
    `_owner_or_break` allows for by reading twice). A failed write removes the file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.remove(path)
        raise
    return True


def _owner_or_break(path: str, stale_after_s: float) -> dict | None:
    """The owner of an existing lock, or None after breaking it (stale, empty or unreadable)."""
    owner = _read(path)
    if not _has_owner(owner):
        time.sleep(0.1)  # a process on a filesystem without hard links may be writing it right now
        owner = _read(path)
    if not _has_owner(owner):
        if not os.path.lexists(path):
            return None  # released meanwhile
        _notice(f"removing the lock {path}: it is empty or unreadable, so no process can be shown to own it")
        _break(path, owner)
        return None
    if is_stale(path, owner, stale_after_s):
        _break(path, owner)
        return None
    return owner


def _has_owner(owner) -> bool:
    return isinstance(owner, dict) and "pid" in owner


def _notice(line: str) -> None:
    print(f"lbbench: {line}", file=sys.stderr, flush=True)


def acquire(path: str, stale_after_s: float = STALE_AFTER_S) -> None:
    """Take the lock at `path` without waiting; raise LockBusy if a live process holds it.

    OSError (a full disk, a read-only folder) propagates with nothing left behind."""
    key = _key(path)
    with _held_lock:
        if key in _held:
            _held[key][0] += 1
            return
    token = uuid.uuid4().hex
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "token": token,
        "time": time.time(),
        "time_text": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for _ in range(5):
        if _publish(path, info):
            with _held_lock:
                _held[key] = [1, token]
            _start_heartbeat()
            return
        owner = _owner_or_break(path, stale_after_s)
        if owner is not None:
            raise LockBusy(path, owner)
    raise LockBusy(path, _read(path) or {})


def release(path: str) -> None:
    """Drop one hold on the lock; the file is removed when the last hold goes (if it is still ours)."""
    key = _key(path)
    with _held_lock:
        entry = _held.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] > 0:
            return
        del _held[key]
    owner = _read(path)
    if owner and owner.get("token") == entry[1]:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def held(path: str) -> bool:
    return _key(path) in _held


def try_acquire(path: str, stale_after_s: float = STALE_AFTER_S) -> bool:
    """acquire() that returns False instead of raising when the lock is busy."""
    try:
        acquire(path, stale_after_s)
        return True
    except LockBusy:
        return False


__all__ = ["LockBusy", "acquire", "release", "try_acquire", "held", "is_stale"]
