"""Real faults for the audit trail's database: a TCP proxy that refuses, stalls and resets; a small
filesystem that fills up or turns read-only; another process holding SQLite's write lock."""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


class TcpProxy:
    """A loopback proxy in front of a server, with the faults a network gives a database.

    ``mode``: ``pass`` (forward), ``refuse`` (no listener: connections are refused),
    ``stall`` (accept, but forward nothing either way: a hung peer), and ``reset()``
    drops every open connection with an RST.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = "pass"
        self._listener: socket.socket | None = None
        self.port = 0
        self._selector = selectors.DefaultSelector()
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._stop = False
        self._listen()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def set_mode(self, mode: str) -> None:
        assert mode in ("pass", "refuse", "stall")
        with self._lock:
            if mode == "refuse":
                self._close_listener()
                self._reset_locked()
            elif self._listener is None:
                self._listen()
            self.mode = mode

    def reset(self) -> None:
        """Drop every open connection with an RST (a database restart, a NAT timeout)."""
        with self._lock:
            self._reset_locked()

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        with self._lock:
            self._close_listener()
            self._reset_locked()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, "accept")

    def _close_listener(self) -> None:
        if self._listener is not None:
            with suppress(KeyError, ValueError):
                self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None

    def _reset_locked(self) -> None:
        for sock in list(self._pairs):
            self._drop(sock, rst=True)

    def _drop(self, sock: socket.socket, *, rst: bool = False) -> None:
        other = self._pairs.pop(sock, None)
        for victim in (sock, other):
            if victim is None:
                continue
            self._pairs.pop(victim, None)
            with suppress(KeyError, ValueError, OSError):
                self._selector.unregister(victim)
            if rst:
                with suppress(OSError):
                    victim.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            victim.close()

    def _run(self) -> None:
        while not self._stop:
            events = self._selector.select(timeout=0.05)
            with self._lock:
                for key, _ in events:
                    if key.data == "accept":
                        self._accept()
                    elif self.mode == "pass" and key.fileobj in self._pairs:
                        self._pump(key.fileobj)
            if self.mode == "stall":
                time.sleep(0.05)  # sockets stay readable while nothing is read: don't spin

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except (BlockingIOError, OSError, AttributeError):
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setblocking(False)
        self._pairs[client], self._pairs[server] = server, client
        self._selector.register(client, selectors.EVENT_READ, "pump")
        self._selector.register(server, selectors.EVENT_READ, "pump")

    def _pump(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        other = self._pairs[sock]
        other.setblocking(True)
        try:
            other.sendall(data)
        except OSError:
            self._drop(sock)
        finally:
            with suppress(OSError):
                other.setblocking(False)


class LoopDisk:
    """A small ext4 filesystem on a loop device, for a database that lives on it.

    ``fill()`` takes every free byte (SQLite: "database or disk is full");
    ``fail()`` makes the filesystem hit an error, and ext4 (errors=remount-ro)
    turns read-only under the open files, as a failing disk does; ``recover()``
    checks it and mounts it afresh at the same place.
    """

    def __init__(self, image: Path, mountpoint: Path, *, size_mib: int) -> None:
        self.image, self.path = image, mountpoint
        mountpoint.mkdir(parents=True, exist_ok=True)
        with open(image, "wb") as handle:
            handle.truncate(size_mib << 20)
        self._run_or_skip(["mkfs.ext4", "-q", "-F", str(image)])
        self._run_or_skip(["mount", "-o", "loop,errors=remount-ro", str(image), str(mountpoint)])
        self.device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mountpoint)],
                                     capture_output=True, text=True, check=True).stdout.strip()

    @staticmethod
    def _run_or_skip(command: list[str]) -> None:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            reason = f"cannot prepare a loop-mounted filesystem ({' '.join(command[:2])}): {result.stderr.strip()}"
            if IN_CI:
                pytest.fail(f"{reason} (CI=true: the fault tests must run)")
            pytest.skip(reason)

    def fill(self) -> None:
        with open(self.path / "filler", "wb") as handle, suppress(OSError):
            while True:
                handle.write(b"\0" * (1 << 16))
                handle.flush()
                os.fsync(handle.fileno())

    def free(self) -> None:
        with suppress(FileNotFoundError):
            (self.path / "filler").unlink()

    def fail(self) -> None:
        """An ext4 error, as a failing disk gives: the filesystem goes read-only at once."""
        Path(f"/sys/fs/ext4/{Path(self.device).name}/trigger_fs_error").write_text("fault injected by a test\n")

    def recover(self) -> None:
        """Check the filesystem and mount it again (what an operator does after a disk error).

        The failed filesystem stays alive in the kernel while files on it are open, and mounting
        the same image would hand it back; the checked copy is a new device, as a replaced disk is.
        """
        subprocess.run(["umount", "-l", str(self.path)], check=True)
        repaired = self.image.with_name(self.image.name + ".repaired")
        shutil.copyfile(self.image, repaired)
        subprocess.run(["e2fsck", "-fy", str(repaired)], capture_output=True, check=False)
        self.image = repaired
        subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@contextmanager
def sqlite_lock_held(path: Path, *, seconds: float):
    """Another process holds SQLite's write lock (``BEGIN IMMEDIATE``), as a backup or a shell would."""
    code = (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(path)!r}, isolation_level=None, timeout=30)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
        "c.execute('ROLLBACK')\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.wait(timeout=seconds + 30)


def wait_until(predicate, *, timeout_s: float, interval_s: float = 0.2):
    """Poll ``predicate`` until it returns something true; that value, or the last one at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)
