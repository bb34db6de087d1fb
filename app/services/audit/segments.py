"""The journal directory as drainers and operators see it: what waits, who wrote it, who is gone.

Any process may replay a sealed segment; ``flock`` makes sure only one does at a
time, and the active segment of a live writer stays locked by it. A writer whose
``.alive`` lock can be taken is dead (killed, crashed, exited): its segments, the
torn last record included, are free to replay, and its open calls to end.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.models import now_ms
from app.services.audit.claim import ALIVE, UNRECORDED, alive_file, unrecorded_file
from app.services.audit.journal import (
    DEAD_DIR,
    HEADER,
    MAGIC,
    parse_segment_name,
    read_frames,
)


@dataclass(slots=True)
class JournalStatus:
    """What the journal holds right now, across every process on this host."""

    directory: str
    bytes: int = 0
    segments: int = 0
    records: int = 0
    oldest_at: int | None = None  # ms: when the oldest record waiting was written
    dead_letters: int = 0
    unrecorded: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory, "bytes": self.bytes, "segments": self.segments, "records": self.records,
            "oldest_at": self.oldest_at, "dead_letters": self.dead_letters, "unrecorded": self.unrecorded,
        }


def segments(directory: Path) -> list[tuple[str, int, Path]]:
    """Every segment file as ``(worker, seq, path)``, in replay order."""
    found = []
    with suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            parsed = parse_segment_name(entry.name)
            if parsed is not None:
                found.append((*parsed, Path(entry.path)))
    return sorted(found)


@contextmanager
def claimed(path: Path) -> Iterator[int | None]:
    """The segment's descriptor, locked for us; None when its writer or another drainer holds it, or it is gone."""
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
        # Replayed and deleted by another drainer between our open and our lock: nothing left.
        yield fd if os.fstat(fd).st_nlink else None
    finally:
        os.close(fd)


def worker_gone(directory: Path, worker_id: str) -> bool | None:
    """True when that worker's process is gone, False when it lives; None when it never ran on this host."""
    try:
        fd = os.open(alive_file(directory, worker_id), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def alive_markers(directory: Path) -> list[str]:
    """The workers that ran on this host and have not been cleaned up."""
    with suppress(FileNotFoundError):
        return sorted(entry.name.removesuffix(ALIVE) for entry in os.scandir(directory) if entry.name.endswith(ALIVE))
    return []


def forget_worker(directory: Path, worker_id: str) -> None:
    """A dead worker's journal is replayed: fold its unrecorded count into the total and drop its files."""
    counter = unrecorded_file(directory, worker_id)
    count = _read_count(counter)
    if count:
        total = directory / "unrecorded"
        _write_count(total, _read_count(total) + count)
    for path in (counter, alive_file(directory, worker_id)):
        with suppress(FileNotFoundError):
            path.unlink()


def dead_letters(directory: Path) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """``(file, offset after it, {"record", "error"})`` for each dead letter."""
    dead = directory / DEAD_DIR
    with suppress(FileNotFoundError):
        for path in sorted(dead.glob("*.dead")):
            for offset, letter in read_frames(path):
                yield path, offset, letter


def status(directory: Path) -> JournalStatus:
    """Sizes and counts from the files (headers only: cheap even for a big journal)."""
    result = JournalStatus(directory=str(directory))
    for _, _, path in segments(directory):
        with suppress(FileNotFoundError):
            count, first_at, size = _scan(path, _replayed_to(path))
            result.segments += 1
            result.bytes += size
            result.records += count
            if first_at is not None and (result.oldest_at is None or first_at < result.oldest_at):
                result.oldest_at = first_at
    for path in (directory / DEAD_DIR).glob("*.dead") if (directory / DEAD_DIR).is_dir() else ():
        count, _, size = _scan(path, 0)
        result.dead_letters += count
        result.bytes += size
    result.unrecorded = _read_count(directory / "unrecorded") + sum(
        _read_count(path) for path in directory.glob(f"*{UNRECORDED}")
    )
    return result


def total_bytes(directory: Path) -> int:
    """What the journal's files take on disk (file sizes only: cheap enough for every drainer tick)."""
    total = 0
    for folder in (directory, directory / DEAD_DIR):
        with suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                if entry.name.endswith((".seg", ".dead")):
                    with suppress(FileNotFoundError):
                        total += entry.stat().st_size
    return total


def replayed_to(path: Path) -> int:
    return _replayed_to(path)


def mark_replayed(path: Path, offset: int) -> None:
    """Remember how far a segment is replayed (a crash replays the rest again: replay is idempotent)."""
    _write_count(path.with_name(path.name + ".pos"), offset)


def remove_segment(path: Path) -> None:
    for victim in (path, path.with_name(path.name + ".pos")):
        with suppress(FileNotFoundError):
            victim.unlink()


def _replayed_to(path: Path) -> int:
    return _read_count(path.with_name(path.name + ".pos"))


def _scan(path: Path, start: int) -> tuple[int, int | None, int]:
    """Records after ``start``, the first one's ``at``, and the file's size."""
    size = path.stat().st_size
    count, first_at = 0, None
    with open(path, "rb") as handle:
        offset = start
        while offset + HEADER.size <= size:
            handle.seek(offset)
            magic, length, _ = HEADER.unpack(handle.read(HEADER.size))
            if magic != MAGIC or offset + HEADER.size + length > size:
                break
            if first_at is None:
                first_at = _first_at(path, offset)
            count += 1
            offset += HEADER.size + length
    return count, first_at, size


def _first_at(path: Path, offset: int) -> int | None:
    for _, record in read_frames(path, offset):
        record = record.get("record", record)  # a dead letter wraps its record
        return (record.get("request") or record.get("response") or {}).get("timestamp")
    return None


def _read_count(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _write_count(path: Path, value: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)


STATUS_CACHE_S = 1.0


class CachedStatus:
    """The journal's status for /health, read from its files at most once every STATUS_CACHE_S."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._read: tuple[float, JournalStatus] | None = None

    def read(self, *, healthy: bool) -> dict[str, Any]:
        now = time.monotonic()
        if self._read is None or now - self._read[0] > STATUS_CACHE_S:
            self._read = (now, status(self.directory))
        journal = self._read[1]
        oldest = None if journal.oldest_at is None else round(max(0, now_ms() - journal.oldest_at) / 1000, 1)
        return {
            "database": "down" if not healthy else "degraded" if journal.records else "ok",
            "journal_bytes": journal.bytes, "journal_records": journal.records, "oldest_record_age_s": oldest,
            "dead_letters": journal.dead_letters, "unrecorded": journal.unrecorded,
        }
