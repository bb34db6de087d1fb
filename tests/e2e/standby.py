"""A private PostgreSQL primary and its hot standby, from the installed server binaries (PG_BIN, else the newest).

The shared server takes no replication connections (no ``replication`` line in its pg_hba.conf,
and its configuration is not the tests' to change), so these start their own: ``initdb`` (trust,
on 127.0.0.1 only) and, for the standby, ``pg_basebackup -R -X stream`` (streaming replication,
``standby.signal`` written). The server refuses to run as root: under root (CI) every command runs
as user ``postgres`` through ``runuser``, and the directories are handed to it. bench/pg_replica_bench.py
uses the same servers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _newest_bin() -> Path:
    """Debian's newest installed server (/usr/lib/postgresql/<major>/bin), 15's path when none is."""
    found = [path for path in Path("/usr/lib/postgresql").glob("*/bin") if path.parent.name.isdigit()]
    return max(found, key=lambda path: int(path.parent.name)) if found else Path("/usr/lib/postgresql/15/bin")


BIN = Path(os.environ.get("PG_BIN") or _newest_bin())
SERVER_BINARIES = ("initdb", "pg_ctl", "pg_basebackup")


def missing_binaries() -> str | None:
    """Why no private server can be started here (None: it can)."""
    absent = [name for name in SERVER_BINARIES if not (BIN / name).exists()]
    if absent:
        return (f"PostgreSQL server binaries missing in {BIN} ({', '.join(absent)}): "
                "apt-get install postgresql, or set PG_BIN")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL's initdb refuses to run as root"
    return None


def as_postgres(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], check=check, capture_output=True, text=True)


def start(data: Path, port: int, log: Path) -> None:
    as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
                f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data.parent}", "start")


def stop(data: Path) -> None:
    if (data / "postmaster.pid").exists():
        as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", check=False)


def _own_directory(directory: Path | None, prefix: str) -> Path:
    """``directory`` made afresh (or a new one in /tmp), the server's user's: it must own its data."""
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix=prefix))
    else:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    return directory


@contextmanager
def private_server(port: int, directory: Path | None = None) -> Iterator[Path]:
    """A throwaway server (a primary: wal_level replica, the default) on 127.0.0.1:``port``; its data directory."""
    directory = _own_directory(directory, "pg-primary-")
    data = directory / "data"
    try:
        as_postgres(str(BIN / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres")
        start(data, port, directory / "server.log")
        yield data
    finally:
        stop(data)
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def hot_standby(*, primary_port: int, port: int, directory: Path | None = None) -> Iterator[Path]:
    """A hot standby of the server on ``primary_port``, streaming from it, on 127.0.0.1:``port``."""
    directory = _own_directory(directory, "pg-standby-")
    data = directory / "data"
    try:
        as_postgres(str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary_port), "-U", "postgres",
                    "-D", str(data), "-R", "-X", "stream", "-c", "fast")
        start(data, port, directory / "server.log")
        yield data
    finally:
        stop(data)
        shutil.rmtree(directory, ignore_errors=True)
