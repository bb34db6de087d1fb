"""A writer's hold on the journal directory: the database it is claimed for, the liveness lock, the unrecorded count.

Its files (see ``journal.py`` for the whole directory): ``TARGET``, the database
the records belong to; ``<worker>.alive``, locked (``flock``) by a live gateway
process for its lifetime; ``<worker>.unrecorded``, how many calls that process
could record nowhere. A drainer's claim on a segment is ``segments.claimed``.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

COUNTER_WIDTH = 20  # digits of a counter file, rewritten in place (no new block on a full disk)
TARGET_FILE = "TARGET"
ALIVE = ".alive"
UNRECORDED = ".unrecorded"


def alive_file(directory: Path, worker_id: str) -> Path:
    """The file a live worker holds locked."""
    return directory / f"{worker_id}{ALIVE}"


def unrecorded_file(directory: Path, worker_id: str) -> Path:
    """The count of the calls a worker could record nowhere."""
    return directory / f"{worker_id}{UNRECORDED}"


class JournalMismatch(RuntimeError):
    """The journal directory belongs to another database."""


class DirectoryClaim:
    """This process's claim, ``.alive`` lock and ``.unrecorded`` counter; the journal calls it under its lock."""

    def __init__(self, directory: Path, *, worker_id: str, target: str) -> None:
        self.directory = directory
        self.worker_id = worker_id
        self.target = target
        self._alive: int | None = None
        self._unrecorded_fd: int | None = None
        self.unrecorded = 0

    def take(self) -> None:
        """Claim the (existing) directory for our database, and hold our liveness lock."""
        target_file = self.directory / TARGET_FILE
        # Written aside, then linked into place: the workers of a first start claim the directory
        # at once, and one must never read the claim half written (an empty TARGET: a mismatch).
        written = self.directory / f".{TARGET_FILE}.{self.worker_id}.{os.getpid()}"
        written.write_text(self.target + "\n")
        try:
            os.link(written, target_file)
        except FileExistsError:
            found = target_file.read_text().strip()
            if found != self.target:
                raise JournalMismatch(
                    f"the audit journal {self.directory} belongs to {found}, not {self.target}: "
                    "give each database its own AUDIT_JOURNAL_DIR"
                ) from None
        finally:
            written.unlink(missing_ok=True)
        self._alive = os.open(alive_file(self.directory, self.worker_id), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._unrecorded_fd = os.open(unrecorded_file(self.directory, self.worker_id), os.O_RDWR | os.O_CREAT, 0o644)
        os.pwrite(self._unrecorded_fd, b"0".rjust(COUNTER_WIDTH) + b"\n", 0)

    def count_unrecorded(self) -> int:
        """One more call recorded nowhere; the count survives restarts (rewritten in place)."""
        self.unrecorded += 1
        if self._unrecorded_fd is not None:
            try:
                os.pwrite(self._unrecorded_fd, str(self.unrecorded).encode().rjust(COUNTER_WIDTH) + b"\n", 0)
            except OSError as exc:
                log.error("cannot update the unrecorded count in %s: %s", self.directory, exc)
        return self.unrecorded

    def release(self) -> None:
        """Give up our liveness lock and counter file."""
        for fd in (self._unrecorded_fd, self._alive):
            if fd is not None:
                os.close(fd)
        self._unrecorded_fd = self._alive = None
