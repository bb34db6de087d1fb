"""Real peers for the scale-out tests: HAProxy in front of gateway instances, PgBouncer in front of
PostgreSQL (Debian's packages; `.ci/run` installs them). Without them a test skips, except under CI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port
from tests.faults import IN_CI


def need(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if path is None:
        reason = f"{binary} is not installed (apt-get install {binary}; .ci/run does it)"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the scale-out tests must run)")
        pytest.skip(reason)
    return path


def _wait_port(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-2000:] if log.exists() else ''}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def haproxy(backends: list[str]) -> Iterator[str]:
    """Round robin over the gateways at ``backends`` (base URLs), each request balanced on its own."""
    binary = need("haproxy")
    folder = Path(tempfile.mkdtemp(prefix="haproxy-"))
    port = free_port()
    servers = "\n".join(
        f"    server g{n} {url.split('//', 1)[1]} check inter 500ms fall 2 rise 1"
        for n, url in enumerate(backends)
    )
    (folder / "haproxy.cfg").write_text(f"""
global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    option redispatch
    retries 2
frontend gateway
    bind 127.0.0.1:{port}
    default_backend instances
backend instances
    balance roundrobin
    option httpchk GET /health
{servers}
""")
    log = folder / "haproxy.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([binary, "-db", "-f", str(folder / "haproxy.cfg")], stdout=out, stderr=out)
    try:
        _wait_port(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def pgbouncer(database_url: str) -> Iterator[str]:
    """PgBouncer in transaction pooling mode in front of ``database_url``'s server; its URL."""
    import sqlalchemy as sa

    binary = need("pgbouncer")
    url = sa.make_url(database_url)
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    # pgbouncer refuses to run as root: it runs as postgres, which must read its files and write its log.
    shutil.chown(folder, "postgres")
    port = free_port()
    (folder / "userlist.txt").write_text(f'"{url.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""
[databases]
* = host={url.host} port={url.port or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
default_pool_size = 10
max_client_conn = 2000
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
""")
    for name in ("userlist.txt", "pgbouncer.ini"):
        (folder / name).chmod(0o644)
    log = folder / "pgbouncer.log"
    process = subprocess.Popen([binary, "-u", "postgres", str(folder / "pgbouncer.ini")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, process, log)
        yield url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
