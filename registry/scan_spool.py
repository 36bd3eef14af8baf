"""Scan events a server process could not write before it ended, kept on its disk until another
process of the same server writes them (``registry.scans.ScanWriter``).

A worker stopping (a deploy, a restart after ``max_requests``) while the database is down or a
lock is held had lost the events it still held in memory: gunicorn kills it after its
``graceful_timeout``. It now writes them here first, then tries the database; the file is removed
once they are in. Each file belongs to one writer row (``scan_writers``) and holds the flushes it
had not committed, each with its number: a flush committed after all (the file was written before
the last try, or the commit's answer was lost) is found in that row, and is not written twice. Rows are
kept 30 days after their last flush, so a server may stay down that long with files waiting.

The process that writes a file holds an exclusive ``flock`` on it until it ends, so no other
process writes the same events while a flush of its own might still commit them. The folder is
this server's own (``SCAN_SPOOL_DIR``): a folder shared between servers works as well, as long as
it keeps ``flock`` (a local disk does; NFS may not).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from keys.storage import sync_directory

log = logging.getLogger(__name__)

FORMAT = 1
_SUFFIX = ".scans.json"
_UNFINISHED_SECONDS = 60  # a .part file older than this, and not locked, belongs to a process that died
_EVENT_TIMES = ("at",)
_UNIT_TIMES = ("first", "last", "flag_at")


@dataclass(slots=True)
class SpooledFlush:
    """What one flush would have written: its number in the writer's row, its events, and its
    units' counts (``registry.scans._Pending`` as a dict, its sets as lists)."""

    epoch: int
    events: list[dict[str, Any]]
    units: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Spilled:
    """A file this process wrote and still holds the lock of."""

    path: Path
    _fd: int

    def discard(self) -> None:
        """Its events are in the database: remove the file, then let go of it."""
        with suppress(FileNotFoundError):
            self.path.unlink()
        self.release()

    def release(self) -> None:
        """Keep the file for another process (this one ends)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def set_aside(self, suffix: str) -> Path:
        """Keep the file under another name, which no process reads or writes (``.unreadable``,
        ``.unwritable``): an operator's to look at."""
        aside = self.path.with_name(self.path.name + suffix)
        self.path.rename(aside)
        self.release()
        return aside


class ScanSpool:
    """The folder of one server's files of unwritten scan events."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def spill(self, writer: str, flushes: list[SpooledFlush]) -> Spilled:
        """Write ``flushes`` of ``writer`` to a new file, synced to disk, and keep its lock."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{writer}-{uuid.uuid4().hex[:8]}{_SUFFIX}"
        temporary, path = self.directory / f".{name}.part", self.directory / name
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # before the name is visible: no one else takes it
            body = orjson.dumps({"format": FORMAT, "writer": writer,
                                 "flushes": [{"epoch": f.epoch, "events": f.events, "units": f.units}
                                             for f in flushes]}, default=_listed)
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            os.rename(temporary, path)
            sync_directory(self.directory)
        except BaseException:
            with suppress(OSError):
                temporary.unlink()
            os.close(fd)
            raise
        return Spilled(path, fd)

    def waiting(self) -> int:
        """How many files wait to be written (those of a process still ending included)."""
        try:
            return sum(1 for entry in os.scandir(self.directory) if entry.name.endswith(_SUFFIX))
        except FileNotFoundError:
            return 0

    def set_aside_files(self) -> list[Path]:
        """The files set aside (``.unreadable``, ``.unwritable``), which wait for an operator."""
        try:
            return sorted(Path(entry.path) for entry in os.scandir(self.directory)
                          if entry.name.endswith((_SUFFIX + ".unreadable", _SUFFIX + ".unwritable")))
        except FileNotFoundError:
            return []

    def claim(self) -> Iterator[tuple[Spilled, str, list[SpooledFlush]]]:
        """Each file no living process holds, locked, with its writer and flushes; the caller
        discards it once written, or releases it. A file that cannot be read is renamed
        ``*.unreadable`` and logged, so it is neither lost nor tried forever. Unfinished ``.part``
        files of processes that died writing them (a minute old, unlocked) are removed: they
        hold nothing whole."""
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for entry in entries:
            path = Path(entry.path)
            unfinished = entry.name.startswith(".") and entry.name.endswith(".part")
            if not (unfinished or entry.name.endswith(_SUFFIX)):
                continue
            if unfinished and time.time() - entry.stat().st_mtime < _UNFINISHED_SECONDS:
                continue  # perhaps made an instant ago, its lock not yet taken
            with _locked(path) as fd:
                if fd is None:
                    continue  # its process is still ending (or another one is writing it now)
                if unfinished:
                    path.unlink(missing_ok=True)
                    continue
                claimed = Spilled(path, os.dup(fd))
                try:
                    writer, flushes = _read(fd)
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("scan events file %s cannot be read (%s): kept as %s", path, exc,
                              claimed.set_aside(".unreadable").name)
                    continue
            yield claimed, writer, flushes


@contextmanager
def _locked(path: Path) -> Iterator[int | None]:
    """``path`` opened and locked without waiting, or None: locked by another, or gone (a file
    its writer removed between the listing and the lock, which then holds nothing to write)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield fd if os.fstat(fd).st_nlink else None
    finally:
        os.close(fd)


def _read(fd: int) -> tuple[str, list[SpooledFlush]]:
    with os.fdopen(os.dup(fd), "rb") as stream:
        document = orjson.loads(stream.read())
    if document.get("format") != FORMAT:
        raise ValueError(f"format {document.get('format')!r}, not {FORMAT}")
    flushes = []
    for flush in document["flushes"]:
        events = [_dated(event, _EVENT_TIMES) for event in flush["events"]]
        flushes.append(SpooledFlush(int(flush["epoch"]), events, [_dated(u, _UNIT_TIMES) for u in flush["units"]]))
    return str(document["writer"]), flushes


def _dated(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    for name in names:
        if row.get(name) is not None:
            row[name] = datetime.fromisoformat(row[name])
    return row


def _listed(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not written to a scan events file")

