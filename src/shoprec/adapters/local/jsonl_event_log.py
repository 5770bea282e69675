"""The event log in files under a local folder: ``<root>/date=YYYY-MM-DD/part-<pid>.jsonl``.

Each process appends to its own file of the day, one batch per ``write`` followed by ``fsync``, so a batch
is on disk before the events are acknowledged, and a crash can cut short at most the last line (which
readers leave out, :func:`~shoprec.adapters.event_records.complete_lines`).

Erasure rewrites every file that holds the user's records into a temporary file and renames it over the
original (``os.replace``): a crash leaves either the old or the new file, never half of one. Writers and
the eraser take an exclusive ``flock`` on the file; a writer that finds the file replaced while it waited
for the lock opens the new one, so no append lands in an unlinked file.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from shoprec.adapters.event_records import encode_lines, partition, without_user
from shoprec.domain import Event, Exposure
from shoprec.errors import BackendUnavailableError


def _utc_now() -> datetime:
    return datetime.now(UTC)


class JsonlEventLog:
    """:class:`~shoprec.ports.EventLog` in JSON Lines files under ``root`` (created when missing)."""

    def __init__(self, root: Path, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.root = root
        self._clock = clock
        self._lock = threading.Lock()  # threads of one process share its file

    def append(self, events: Sequence[Event | Exposure]) -> None:
        if not events:
            return
        now = self._clock()
        data = b"".join(encode_lines(events, now))
        path = self.root / partition(now) / f"part-{os.getpid()}.jsonl"
        try:
            with self._lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = _open_locked(path)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)  # closing releases the flock
        except OSError as exc:
            raise BackendUnavailableError(f"event log {self.describe()}: cannot append: {exc}") from exc

    def erase_user(self, user_id: str) -> int:
        erased = 0
        try:
            with self._lock:
                for path in sorted(self.root.glob("date=*/*.jsonl")):
                    erased += _erase_in(path, user_id)
        except OSError as exc:
            raise BackendUnavailableError(f"event log {self.describe()}: cannot erase: {exc}") from exc
        return erased

    def describe(self) -> str:
        return f"file://{self.root.resolve()}"


def _open_locked(path: Path) -> int:
    """An append descriptor of ``path`` under an exclusive flock, of the file the path names now."""
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass  # erased and removed while we waited: create it again
        os.close(fd)


def _erase_in(path: Path, user_id: str) -> int:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = path.read_bytes()
        kept, dropped = without_user(data, user_id)
        if not dropped:
            return 0
        if not kept:
            path.unlink()
            return dropped
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            fh.write(kept)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        return dropped
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the directory entry, not only the file)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
