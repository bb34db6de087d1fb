"""The audit journal: records the database could not take, kept durably on local disk until it can.

An append-only file of our own rather than a second SQLite database: an append is
one ``write(2)``, and its ``fsync`` runs on a thread so a gevent worker keeps
serving while the disk syncs (SQLite's own fsync would stall every stream of the
worker); each record is framed with its length and a CRC32, so the torn last
record of a killed process is found and left out; and it shares nothing with the
database that is failing (its lock, its busy handler, its full file).

One directory per database (``AUDIT_JOURNAL_DIR``; its claim and a worker's ``.alive``
and ``.unrecorded`` are ``claim.py``'s):

- ``TARGET``: the database these records belong to; never replayed into another.
- ``<worker>.alive``: locked (``flock``) by a live gateway process for its lifetime.
- ``<worker>.<seq>.seg``: that process's records, in order; the one it is writing is
  locked, a sealed one is free for any drainer (``drainer.py``) to replay and delete.
- ``<worker>.unrecorded``: how many calls that process could record nowhere.
- ``dead/<worker>.dead``: records the database refused even after repair, with the error.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.services.audit.claim import DirectoryClaim
from app.services.audit.disk import fsync

log = logging.getLogger(__name__)

MAGIC = b"PRJ1"
HEADER = struct.Struct("<4sII")  # magic, payload length, CRC32 of the payload
SEGMENT_BYTES = 64 << 20  # a segment is sealed (and can be replayed) past this size
# Less room than this (under the cap, free on its disk): the journal counts as unusable (/health/ready).
ROOM_FOR_A_CALL = 4096
MIN_FREE_BYTES = 1 << 20
DEAD_DIR = "dead"


def frame(record: dict[str, Any]) -> bytes:
    """One record as stored: header and ASCII JSON (any text, NUL and lone surrogates included, round-trips)."""
    payload = json.dumps(record, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def read_frames(path: Path, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(offset after it, record)`` for each whole record from ``start``; stops at a torn or damaged one."""
    with open(path, "rb") as handle:
        handle.seek(start)
        offset = start
        while True:
            header = handle.read(HEADER.size)
            if len(header) < HEADER.size:
                return
            magic, length, crc = HEADER.unpack(header)
            if magic != MAGIC:
                return
            payload = handle.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return
            offset += HEADER.size + length
            yield offset, json.loads(payload)


def segment_name(worker_id: str, seq: int) -> str:
    return f"{worker_id}.{seq:08d}.seg"


def parse_segment_name(name: str) -> tuple[str, int] | None:
    parts = name.split(".")
    if len(parts) != 3 or parts[2] != "seg" or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


class Journal:
    """This process's side of the journal: appends, dead letters and the unrecorded count."""

    def __init__(self, directory: Path, *, worker_id: str, target: str, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.worker_id = worker_id
        self.max_bytes = max_bytes
        self._mutex = threading.Lock()
        self._fd: int | None = None  # the active segment, locked while we write it
        self._seq = 0
        self._size = 0
        self._written = 0  # appends so far (a generation); _synced: how many are on disk
        self._synced = 0
        self._sync_ok = True
        self._syncing = False
        self._sync_round = threading.Event()
        self._background_sync = False
        self._claim = DirectoryClaim(self.directory, worker_id=worker_id, target=target)
        self.counted_bytes = 0  # what the directory's files held when last counted (every process's)
        self.own_bytes = 0  # what this process appended since then

    def open(self) -> None:
        """Create the directory, claim it for our database, and hold our liveness lock."""
        (self.directory / DEAD_DIR).mkdir(parents=True, exist_ok=True)
        self._claim.take()

    @property
    def total_bytes(self) -> int:
        """The journal's size as this process knows it (within a drainer tick of the truth)."""
        return self.counted_bytes + self.own_bytes

    def recount(self, total: int) -> None:
        with self._mutex:
            self.counted_bytes, self.own_bytes = total, 0

    def append(self, record: dict[str, Any], *, admit: bool, durable: bool) -> bool:
        """Add a record; True once it is stored (on disk, with ``durable``).

        ``admit``: a new call, refused past the size cap; a call already admitted
        may finish past it, so that every call the journal took gets its ending.
        """
        data = frame(record)
        with self._mutex:
            if admit and self.total_bytes + len(data) > self.max_bytes:
                return False
            try:
                fd = self._active_fd()
                _write_all(fd, data, self._size)
            except OSError as exc:
                log.error("AUDIT JOURNAL WRITE FAILED (%s): %s", self.directory, exc)
                return False
            self._size += len(data)
            self.own_bytes += len(data)
            self._written += 1
            generation = self._written
            if self._size >= SEGMENT_BYTES:
                self._seal_locked()
        if durable:
            return self._sync_until(generation)
        self._want_background_sync()
        return True

    def usable(self) -> bool:
        """Whether a new call could be journaled now: under its cap, on a filesystem that takes writes."""
        if self.total_bytes + ROOM_FOR_A_CALL > self.max_bytes:
            return False
        try:
            disk = os.statvfs(self.directory)
        except OSError:
            return False
        return not disk.f_flag & os.ST_RDONLY and disk.f_bavail * disk.f_frsize >= MIN_FREE_BYTES

    def seal(self) -> bool:
        """Close the active segment so that it can be replayed; False when there was none."""
        with self._mutex:
            if self._fd is None:
                return False
            self._seal_locked()
            return True

    def dead_letter(self, record: dict[str, Any], error: str) -> bool:
        """Keep a record the database refused, with why; listed and replayed by ``provider-cli audit``."""
        data = frame({"record": record, "error": error[:2000]})
        path = self.directory / DEAD_DIR / f"{self.worker_id}.dead"
        with self._mutex:
            try:
                fd = _open_locked_for_append(path)
                try:
                    _write_all(fd, data, None)
                    fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                log.error("AUDIT DEAD LETTER WRITE FAILED (%s): %s", path, exc)
                return False
            self.own_bytes += len(data)
        return True

    def count_unrecorded(self) -> int:
        """One more call recorded nowhere; the count survives restarts (rewritten in place)."""
        with self._mutex:
            return self._claim.count_unrecorded()

    def close(self) -> None:
        """Seal what we wrote and give up our liveness lock (at exit)."""
        with self._mutex:
            if self._fd is not None:
                self._seal_locked()
            self._claim.release()

    def _active_fd(self) -> int:
        if self._fd is None:
            self._seq = max(self._seq, _last_seq(self.directory, self.worker_id)) + 1
            path = self.directory / segment_name(self.worker_id, self._seq)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            fsync(os.open(self.directory, os.O_RDONLY), close=True)  # the new name survives a crash
            self._fd, self._size = fd, 0
        return self._fd

    def _seal_locked(self) -> None:
        fd, self._fd = self._fd, None
        try:
            fsync(fd)
            self._synced = self._written
        except OSError as exc:
            log.error("AUDIT JOURNAL SYNC FAILED (%s): %s", self.directory, exc)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def _sync_until(self, generation: int) -> bool:
        """Group fsync: one sync covers every append made before it started."""
        while True:
            with self._mutex:
                if self._synced >= generation:
                    return self._sync_ok
                lead = not self._syncing
                if lead:
                    self._syncing = True
                    target = self._written
                    fd = os.dup(self._fd) if self._fd is not None else None
                round_done = self._sync_round
            if not lead:
                round_done.wait()
                continue
            ok = True
            try:
                if fd is not None:
                    fsync(fd, close=True)
            except OSError as exc:
                log.error("AUDIT JOURNAL SYNC FAILED (%s): %s", self.directory, exc)
                ok = False
            with self._mutex:
                self._synced = max(self._synced, target)
                self._sync_ok = ok
                self._syncing = False
                self._sync_round = threading.Event()
            round_done.set()

    def _want_background_sync(self) -> None:
        with self._mutex:
            if self._background_sync:
                return
            self._background_sync = True
        threading.Thread(target=self._background, name="audit-journal-sync", daemon=True).start()

    def _background(self) -> None:
        with self._mutex:
            self._background_sync = False
            generation = self._written
        self._sync_until(generation)


def _write_all(fd: int, data: bytes, end: int | None) -> None:
    """Write every byte; on failure cut a partial record back off (``end``: where the segment ended)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        if end is not None and len(view) != len(data):
            try:
                os.ftruncate(fd, end)
            except OSError:
                pass  # a torn record is found and skipped when the segment is read
        raise


def _open_locked_for_append(path: Path) -> int:
    """The file, locked: ``provider-cli audit replay --dead-letters`` replaces it under the same lock."""
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return fd
        os.close(fd)  # replaced while we waited for the lock: append to the new one


def _last_seq(directory: Path, worker_id: str) -> int:
    seqs = [parsed[1] for path in directory.glob(f"{worker_id}.*.seg") if (parsed := parse_segment_name(path.name))]
    return max(seqs, default=0)
