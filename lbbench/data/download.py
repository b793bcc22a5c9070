"""Fetch one published dataset file into a cache directory, verified, atomically, resumably.

Only the standard library is used (urllib). A file appears under its final name only after its
checksum matched: bytes stream into `<name>.part` in the same directory, the digest is checked,
then `os.replace` renames it (atomic on one file system). An interrupted download leaves the
`.part` behind and the next attempt resumes it with an HTTP Range request; a server that ignores
Range (answers 200) makes us start again from byte 0. Every failure ends in a `DataError` whose
message names the file, the URL and where to put the file by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from lbbench.data.dataset import DataError

CHUNK_BYTES = 1 << 16
PROGRESS_MIN_BYTES = 1 << 20  # files smaller than this download silently
PROGRESS_INTERVAL_S = 0.5
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError)
_RETRYABLE_HTTP = {408, 429, 500, 502, 503, 504}


class _Incomplete(Exception):
    """The server ended the body early (fewer bytes than Content-Length / Content-Range promised)."""


def resolve_base_url(default: str, env_var: str | None = None, override: str | None = None) -> str:
    """The base URL to use: `override` if given, else `$env_var` if set and non-empty, else `default`."""
    url = override or (os.environ.get(env_var) if env_var else None) or default
    return url if url.endswith("/") else url + "/"


def parse_checksum(checksum: str) -> tuple[str, str]:
    """Split "md5:<hex>" / "sha256:<hex>" (a bare hex digest is told apart by length) into (algo, hex)."""
    algo, sep, digest = checksum.partition(":")
    if not sep:
        digest = checksum
        algo = {32: "md5", 64: "sha256"}.get(len(checksum), "")
    algo, digest = algo.lower(), digest.lower()
    if algo not in ("md5", "sha256") or len(digest) != hashlib.new(algo).digest_size * 2:
        raise ValueError(f"checksum {checksum!r} is not 'md5:<32 hex>' or 'sha256:<64 hex>'")
    return algo, digest


def file_digest(path: Path, algo: str) -> str:
    """Hex digest of a file, read in chunks so large archives never sit in memory."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def place_by_hand(name: str, url: str, dest: Path, checksum: str, hint: str = "") -> str:
    """The how-to-fix sentence every error ends with: where to get the file and where to put it."""
    algo, digest = parse_checksum(checksum)
    text = (
        f"To place it by hand, download {url} on a machine with internet access and copy it to "
        f"{dest} (directory {dest.parent}, file name {name!r}; its {algo} must be {digest})."
    )
    return f"{text} {hint}".rstrip()


def fetch(
    name: str,
    base_url: str,
    dest_dir: str | os.PathLike,
    checksum: str,
    *,
    download: bool = True,
    retries: int = 3,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
    hint: str = "",
    progress: bool = True,
) -> Path:
    """Return the path of `dest_dir/name`, downloading `base_url + name` first if it is missing.

    `checksum` is "md5:<hex>" or "sha256:<hex>" (whatever the source publishes). A cached file is
    re-verified on every call (cheap next to training); a cached file that fails is downloaded again
    when `download` is true, reported otherwise. `retries` extra attempts follow connection errors,
    timeouts, 5xx answers and bodies cut short, after `backoff_s * 2**k` seconds; each resumes the
    `.part`. `hint` is appended to error messages (e.g. which environment variable sets a mirror).
    """
    algo, digest = parse_checksum(checksum)
    dest_dir = Path(dest_dir)
    final = dest_dir / name
    url = base_url + name if base_url.endswith("/") else f"{base_url}/{name}"
    how = place_by_hand(name, url, final, checksum, hint)
    if final.exists():
        got = file_digest(final, algo)
        if got == digest:
            return final
        if not download:
            raise DataError(
                f"{final} is corrupt: its {algo} is {got}, expected {digest}. "
                f"Delete it, or replace it with a good copy. {how}"
            )
        print(f"lbbench: {final} has {algo} {got}, expected {digest}; downloading it again", file=sys.stderr)
        final.unlink()
    if not download:
        raise DataError(f"{name} is not in {dest_dir} and downloading is off (download=False). {how}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = dest_dir / (name + ".part")
    stale = part.exists()  # left by an earlier run; may belong to another version of the file
    _download_with_retries(url, part, name, retries, backoff_s, timeout_s, progress, how)
    got = file_digest(part, algo)
    if got != digest and stale:
        part.unlink()  # the resumed prefix was bad: one fresh download before giving up
        _download_with_retries(url, part, name, retries, backoff_s, timeout_s, progress, how)
        got = file_digest(part, algo)
    if got != digest:
        part.unlink(missing_ok=True)
        raise DataError(
            f"checksum mismatch for {name} downloaded from {url}: expected {algo} {digest}, "
            f"got {got}. The bad download was deleted; try again or use another mirror. {how}"
        )
    os.replace(part, final)
    return final


def _download_with_retries(
    url: str, part: Path, name: str, retries: int, backoff_s: float, timeout_s: float, progress: bool, how: str
) -> None:
    """Fill `part` with the whole body of `url`, retrying transient failures; DataError otherwise."""
    last: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            _download_once(url, part, name, timeout_s, progress)
            return
        except urllib.error.HTTPError as e:
            if e.code not in _RETRYABLE_HTTP:
                part.unlink(missing_ok=True)
                raise DataError(f"could not download {name}: {url} answered HTTP {e.code} {e.reason}. {how}") from e
            last = e
        except (_Incomplete, *_TRANSIENT) as e:
            last = e
        except ValueError as e:  # urllib's "unknown url type" and friends
            raise DataError(f"cannot download {name}: {url!r} is not a usable URL ({e}). {how}") from e
    kept = f" The partial download {part} was kept; the next try resumes it." if part.exists() else ""
    raise DataError(
        f"could not download {name} from {url} after {retries + 1} attempts "
        f"(last error: {_describe(last)}).{kept} {how}"
    ) from last


def _describe(error: Exception | None) -> str:
    """A short, human reason for a network error (URLError hides the useful part in .reason)."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _download_once(url: str, part: Path, name: str, timeout_s: float, progress: bool) -> None:
    """One HTTP request: resume `part` with Range if it has bytes, else (or on a 200) start over."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "lbbench"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not offset:
            raise
        part.unlink()  # the .part is not a prefix of this file; start over on the next attempt
        raise _Incomplete("server refused to resume the partial file") from e
    with response:
        if response.status == 206 and _range_start(response) != offset:
            part.unlink(missing_ok=True)
            raise _Incomplete(f"server sent an unexpected range {response.headers.get('Content-Range')!r}")
        mode, done = ("ab", offset) if response.status == 206 else ("wb", 0)  # 200: no resume, restart
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None and length.isdigit() else None
        with open(part, mode) as f:
            done = _copy(response, f, done, total, name, progress and (total or 0) >= PROGRESS_MIN_BYTES)
    if total is not None and done < total:
        raise _Incomplete(f"got {done} of {total} bytes")


def _range_start(response) -> int | None:
    """First byte position of a 206 answer's Content-Range ("bytes START-END/TOTAL")."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _copy(response, f, done: int, total: int | None, name: str, show: bool) -> int:
    """Stream the body into `f`, printing a throttled percentage line on stderr; return bytes held."""
    last_print = 0.0
    while True:
        block = response.read(CHUNK_BYTES)
        if not block:
            break
        f.write(block)
        done += len(block)
        now = time.monotonic()
        if show and total and now - last_print >= PROGRESS_INTERVAL_S:
            last_print = now
            print(
                f"\rdownloading {name}: {100 * done / total:5.1f}% of {total / 2**20:.1f} MiB",
                end="",
                file=sys.stderr,
                flush=True,
            )
    if show and total:
        print(f"\rdownloading {name}: {100 * done / total:5.1f}% of {total / 2**20:.1f} MiB", file=sys.stderr)
    return done
