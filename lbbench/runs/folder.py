"""A run folder holds exactly one run: created fresh, locked while written, committed at the end.

Life of a run (what `train.run` does through this module):

    folder = RunFolder.open(cfg)      # name checked, lock taken, exit-2 error if the folder holds a run
    ... write TensorBoard/metrics into folder.path (a hidden staging folder beside the final one) ...
    folder.save_params(bytes)         # params.msgpack, its sha256 goes into result.json
    run_dir = folder.finish(result)   # result.json (strict JSON, fingerprint) and the commit, lock released

`finish` moves the staging folder to `<workdir>/<run_name>` in one rename. If the name already
holds a run (only allowed with `--overwrite`, or for a sweep retrying an unfinished point), the
old run stays untouched until then, and is replaced only by a run that completed or diverged: a
failed or interrupted attempt never replaces a completed result; it is kept aside as
`.<run_name>.failed-<time>` and the old run stays. If the process dies before `finish`, only the
hidden staging folder and a stale lock are left; the next `open` of that name removes both.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable

import jax

from lbbench.config import Config, ConfigError
from lbbench.runs import atomic, locks, names, signals
from lbbench.runs.reader import read_result

FINISHED = ("completed", "diverged")
# Fields that say where or how a run is stored or started, not what it computes: two configs that
# differ only here produce the same result, so they share a fingerprint.
NON_RESULT_FIELDS = (
    "run_name",
    "workdir",
    "overwrite",
    "data_dir",
    "download",
    "save_params",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "resume",
    "pause_at_epoch",
    "coordinator_address",
    "num_processes",
    "process_id",
    "coordinator_timeout_s",
)


class RunExists(ConfigError):
    """The run folder already holds a run (exit 2; the message says how to proceed)."""

    def __init__(self, problem: str):
        super().__init__("run_name", problem)


def fingerprint(config: Config | dict) -> str:
    """Hash of everything in a config that decides its result (not where it is written)."""
    if isinstance(config, dict):
        config = Config.from_dict(config)
    d = {k: v for k, v in config.to_dict().items() if k not in NON_RESULT_FIELDS}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:20]


def result_fingerprint(result: dict) -> str | None:
    """The fingerprint of the config a result was produced with (None if it cannot be rebuilt)."""
    try:
        return fingerprint(result["config"])
    except (KeyError, TypeError, ValueError):
        return None


def run_name(cfg: Config) -> str:
    return names.normalize_run_name(cfg.run_name or cfg.default_run_name())


def taken(workdir: str, name: str) -> bool:
    """Whether a run folder name is in use: the folder exists or a run holds its lock."""
    final = os.path.join(workdir, name)
    return os.path.lexists(final) or os.path.lexists(lock_path(final))


def free_version(workdir: str, names_: list[str], insert: Callable[[str, str], str]) -> str:
    """The first version suffix ("", "_v2", "_v3", …) for which every name, with the suffix put in by
    `insert(name, suffix)`, is free: a rerun without --run_name never collides and never overwrites."""
    version = 1
    while True:
        suffix = "" if version == 1 else f"_v{version}"
        if not any(taken(workdir, insert(n, suffix)) for n in names_):
            return suffix
        version += 1


def run_dir(cfg: Config) -> str:
    return os.path.join(cfg.workdir, run_name(cfg))


def lock_path(final_dir: str) -> str:
    parent, base = os.path.split(os.path.normpath(final_dir))
    return os.path.join(parent, f".{base}.lock")


def _entries(parent: str, base: str, kind: str) -> list[str]:
    prefix = f".{base}.{kind}-"
    try:
        return sorted(os.path.join(parent, e) for e in os.listdir(parent) if e.startswith(prefix))
    except OSError:
        return []


class RunFolder:
    """One run's folder during the run (see the module docstring for the protocol)."""

    def __init__(self, cfg: Config, final: str, staging: str | None, enabled: bool):
        self.cfg, self.final, self.staging, self.enabled = cfg, final, staging, enabled
        self.workdir = os.path.dirname(final)
        self.params_sha256: str | None = None
        self.attempt_dir: str | None = None  # where a failed attempt went when an old run was kept
        self.failed_result: Callable[[str], dict] = self._minimal_failed_result  # the loop sets a fuller one
        self._open = enabled
        if enabled:
            signals.on_abort(id(self), self.abort)

    @property
    def path(self) -> str:
        """Where the run's files are written while it runs."""
        return self.staging if self.enabled else self.final

    @classmethod
    def open(cls, cfg: Config, enabled: bool | None = None) -> RunFolder:
        """Check the name, lock the folder, refuse to reuse a folder that holds a run unless
        cfg.overwrite, and create the staging folder. Raises ConfigError (exit 2)."""
        if enabled is None:
            enabled = jax.process_index() == 0
        try:
            final = os.path.join(cfg.workdir, run_name(cfg))
        except names.UnsafeName as e:
            raise ConfigError("run_name", str(e)) from None
        if not enabled:
            return cls(cfg, final, None, False)
        try:
            os.makedirs(cfg.workdir, exist_ok=True)
        except OSError as e:
            raise _cannot_write(e, final) from None
        lock = lock_path(final)
        try:
            locks.acquire(lock)
        except locks.LockBusy as e:
            raise ConfigError(
                "run_name", f"{final} is in use: {e}; wait for that run or choose another --run_name"
            ) from None
        except OSError as e:
            raise _cannot_write(e, cfg.workdir) from None
        try:
            _recover(final)
            _check_free(final, cfg.overwrite or cfg.resume)  # resume: the checkpoint continues it
            staging = os.path.join(cfg.workdir, f".{os.path.basename(final)}.new-{os.getpid()}-{uuid.uuid4().hex[:6]}")
            try:
                os.makedirs(staging)
            except OSError as e:
                raise _cannot_write(e, final) from None
        except BaseException:
            locks.release(lock)
            raise
        return cls(cfg, final, staging, True)

    def save_params(self, data: bytes) -> str:
        """Write params.msgpack into the run (atomically) and remember its checksum for result.json."""
        path = os.path.join(self.path, "params.msgpack")
        if self.enabled:
            atomic.write_bytes(path, data)
            self.params_sha256 = hashlib.sha256(data).hexdigest()
        return path

    def finish(self, result: dict) -> str:
        """Write result.json, commit the folder (see module docstring), release the lock.

        Returns the final run folder. On an OSError (a full disk) nothing half-written is left:
        the staging folder is removed, an older run is untouched, and the error is re-raised.
        """
        if not self.enabled:
            return self.final
        if _disk_full(result):  # its logs may end mid-line: keep nothing rather than a damaged run
            self.discard()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.final)
        result = dict(result)
        result["config_fingerprint"] = result_fingerprint(result)
        if self.params_sha256:
            result["params_sha256"] = self.params_sha256
        with signals.critical():
            try:
                atomic.write_json(os.path.join(self.staging, "result.json"), result)
                self._commit(result.get("status"))
            except BaseException:
                self.discard()
                raise
            self._close()
        return self.final

    def _minimal_failed_result(self, error: str) -> dict:
        return {"status": "failed", "config": self.cfg.to_dict(), "final": {}, "history": {}, "error": error}

    def abort(self, error: str) -> None:
        """A second Ctrl-C: commit a failed result.json now (called from the signal handler)."""
        if self._open:
            self.finish(self.failed_result(error))

    def _commit(self, status: str | None) -> None:
        old = read_result(self.final) if os.path.lexists(self.final) else None
        if old and old.get("status") in FINISHED and status not in FINISHED:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            self.attempt_dir = os.path.join(
                self.workdir, f".{os.path.basename(self.final)}.failed-{stamp}-{os.getpid()}"
            )
            os.rename(self.staging, self.attempt_dir)
            return
        if os.path.lexists(self.final):
            aside = os.path.join(self.workdir, f".{os.path.basename(self.final)}.old-{uuid.uuid4().hex[:6]}")
            os.rename(self.final, aside)
            os.rename(self.staging, self.final)
            names.remove_inside(self.workdir, aside)
        else:
            os.rename(self.staging, self.final)

    def discard(self) -> None:
        """Remove the staging folder and release the lock (the run ended before it had a result)."""
        if not self._open:
            return
        try:
            if self.staging and os.path.lexists(self.staging):
                names.remove_inside(self.workdir, self.staging)
        except OSError:
            pass
        self._close()

    def _close(self) -> None:
        if self._open:
            self._open = False
            signals.on_abort(id(self), None)
            locks.release(lock_path(self.final))


def _cannot_write(e: OSError, where: str) -> Exception:
    """A full disk stays an OSError (exit 1, "free space and rerun", as README says); any other
    write failure (read-only, permissions) is bad input: a ConfigError naming the folder (exit 2)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return e
    return ConfigError("workdir", f"cannot write to {where}: {e.strerror or e}")


def _disk_full(result: dict) -> bool:
    """Whether the run failed because the disk (or quota) was full while it wrote its logs."""
    error = str(result.get("error") or "")
    return result.get("status") == "failed" and any(f"[Errno {n}]" in error for n in (errno.ENOSPC, errno.EDQUOT))


def _recover(final: str) -> None:
    """With the lock held: undo what a killed process left (called before every new run)."""
    parent, base = os.path.split(final)
    olds = _entries(parent, base, "old")
    if olds and not os.path.lexists(final):  # killed between the two renames of a commit
        os.rename(olds[-1], final)
        olds = olds[:-1]
    for leftover in olds + _entries(parent, base, "new"):
        names.remove_inside(parent, leftover)


def _check_free(final: str, overwrite: bool) -> None:
    if not os.path.lexists(final):
        return
    if not os.path.isdir(final) or os.path.islink(final):
        raise RunExists(f"{final} exists and is not a run folder; remove it or choose another --run_name")
    if not os.listdir(final) or overwrite:
        return
    old = read_result(final)
    what = f"a {old.get('status')} run" if old else "files from an earlier run"
    raise RunExists(
        f"{final} already holds {what}; pass --overwrite to replace it once the new run "
        "completes (the old run is kept if the new one fails), or choose another --run_name"
    )
