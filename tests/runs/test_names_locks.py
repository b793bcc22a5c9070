"""Safe run names, removals that cannot leave their root, and the run-folder lock across real processes."""

import errno
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from _paths import ROOT

from lbbench.runs import locks, names


@pytest.mark.parametrize("raw, want", [("a", "a"), ("./a", "a"), ("././b_1", "b_1"), (" c ", "c"), ("a/", "a")])
def test_names_are_normalised(raw, want):
    assert names.normalize_run_name(raw) == want


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "../x", "/abs", "a/b", "a\\b", ".hidden", "x" * 201, "a\x00b", "./..", "./", "../../etc"]
)
def test_unsafe_names_are_rejected(bad):
    with pytest.raises(names.UnsafeName):
        names.normalize_run_name(bad)


def test_remove_inside_refuses_everything_outside(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "run").mkdir(parents=True)
    outside.mkdir()
    (outside / "keep").write_text("x")
    for target in (str(root), str(root / ".."), str(outside), str(root / "run" / ".." / "..")):
        with pytest.raises(PermissionError):
            names.remove_inside(str(root), target)
    os.symlink(outside, root / "link")  # a link inside root is removed as a link; its target is untouched
    names.remove_inside(str(root), str(root / "link"))
    assert not os.path.lexists(root / "link") and (outside / "keep").exists()
    names.remove_inside(str(root), str(root / "run"))
    assert not (root / "run").exists() and root.exists()


HOLDER = """
import sys, time
from lbbench.runs import locks
locks.acquire(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _holder(path, seconds):
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "locked"
    return p


def test_lock_held_by_a_live_process_is_busy_then_stale_when_it_dies(tmp_path):
    path = tmp_path / ".run.lock"
    p = _holder(path, 60)
    try:
        with pytest.raises(locks.LockBusy, match=f"pid {p.pid}"):
            locks.acquire(str(path))
        assert not locks.try_acquire(str(path))
    finally:
        p.kill()
        p.wait()
    assert os.path.exists(path)  # SIGKILL left the file behind: stale by pid on this host
    locks.acquire(str(path))
    assert json.loads(path.read_text())["pid"] == os.getpid()
    locks.release(str(path))
    assert not path.exists()


def test_lock_on_another_host_is_stale_only_when_old(tmp_path):
    path = tmp_path / ".run.lock"
    path.write_text(json.dumps({"host": "other-" + socket.gethostname(), "pid": 1, "token": "t"}))
    assert not locks.try_acquire(str(path))  # fresh: trust it (the pid is not checkable from here)
    with pytest.raises(locks.LockBusy, match="if that process is gone, the lock is safe to delete"):
        locks.acquire(str(path))
    old = time.time() - locks.STALE_AFTER_S - 5
    os.utime(path, (old, old))
    assert locks.try_acquire(str(path))  # not refreshed for too long: the other host's process is gone
    locks.release(str(path))


@pytest.mark.parametrize("content", [b"", b"\x00\x00", b'{"host": "h"'], ids=["empty", "binary", "truncated"])
def test_empty_or_unreadable_lock_is_broken_at_once_with_a_notice(tmp_path, capsys, content):
    path = tmp_path / ".run.lock"
    path.write_bytes(content)  # fresh (mtime now): before issue 20 this blocked the name for 10 minutes
    locks.acquire(str(path))
    err = capsys.readouterr().err.strip()
    assert err.startswith("lbbench: removing the lock") and "no process can be shown to own it" in err
    assert len(err.splitlines()) == 1
    assert json.loads(path.read_text())["pid"] == os.getpid()
    locks.release(str(path))
    assert os.listdir(tmp_path) == []


class _SpyOs:
    """The os module as locks.py sees it, recording what it opens and what the lock holds when linked."""

    def __init__(self):
        self.opened, self.linked = [], []

    def __getattr__(self, name):
        return getattr(os, name)

    def open(self, path, *a, **k):
        self.opened.append(path)
        return os.open(path, *a, **k)

    def link(self, src, dst):
        self.linked.append(json.loads(open(src).read()))  # complete before the name appears
        return os.link(src, dst)


def test_a_lock_appears_with_its_contents_already_in_it(tmp_path, monkeypatch):
    spy = _SpyOs()
    monkeypatch.setattr(locks, "os", spy)
    path = str(tmp_path / ".run.lock")
    locks.acquire(path)
    assert path not in spy.opened  # never created empty and then written
    assert spy.linked and spy.linked[0]["pid"] == os.getpid()
    assert os.listdir(tmp_path) == [".run.lock"]  # the temporary file is gone
    locks.release(path)


class _FullDiskOs:
    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, mode="r"):
        f = os.fdopen(fd, mode)

        def write(data):
            raise OSError(errno.ENOSPC, "No space left on device")

        f.write = write
        return f


def test_full_disk_while_locking_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "os", _FullDiskOs())
    with pytest.raises(OSError) as e:
        locks.acquire(str(tmp_path / ".run.lock"))
    assert e.value.errno == errno.ENOSPC and os.listdir(tmp_path) == []


def test_lock_is_reentrant_within_a_process(tmp_path):
    path = str(tmp_path / ".run.lock")
    locks.acquire(path)
    locks.acquire(path)
    locks.release(path)
    assert os.path.exists(path)
    locks.release(path)
    assert not os.path.exists(path)


def test_only_one_of_many_processes_gets_a_free_lock(tmp_path):
    path = tmp_path / ".run.lock"
    code = (
        "import sys,time\nfrom lbbench.runs import locks\n"
        "time.sleep(max(0, float(sys.argv[2]) - time.time()))\n"
        "print(locks.try_acquire(sys.argv[1]), flush=True)\ntime.sleep(2)\n"
    )
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path), str(start)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=30)[0].strip() for p in procs]
    assert sorted(outs) == ["False", "False", "False", "True"]


def test_held_lock_is_refreshed_so_it_never_looks_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.1)
    monkeypatch.setattr(locks, "_heartbeat", None)
    path = str(tmp_path / ".run.lock")
    locks.acquire(path)
    try:
        old = time.time() - 1000
        os.utime(path, (old, old))
        time.sleep(0.5)
        assert time.time() - os.stat(path).st_mtime < 5
    finally:
        locks.release(path)
