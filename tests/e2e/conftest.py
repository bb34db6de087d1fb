"""End-to-end fixtures: a real gunicorn gateway in front of a real llmock upstream."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from llmock.scenarios import Reply
from llmock.testing import LLMockServer

from app import migrate
from app.config import PROJECT_ROOT
from app.db import dispose_engines
from tests.conftest import _empty_tables

STARTUP_TIMEOUT_S = 90  # generous: a loaded 2-core host takes long to import and fork
LOG_TAIL_CHARS = 4000
WORKERS_SEEN_S = 10  # how long to wait for the other workers once one has answered
# Each gateway's log and when it stopped (None: running), for a failing test's report.
_gateway_logs: dict[Path, float | None] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failing e2e test's report ends with the logs' tails of the gateways that ran during it (CI keeps no files)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for path, stopped in _gateway_logs.items():
            if stopped is None or stopped >= call.start:
                tail = path.read_text(errors="replace")[-LOG_TAIL_CHARS:] if path.exists() else "(no log)"
                report.sections.append((f"gateway log {path}", tail))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayURL(str):
    """A running gateway's base URL; ``pid`` is its gunicorn master's."""

    pid: int


@contextmanager
def run_gateway(env: dict[str, str], *, workers: int = 2, log_path: Path) -> Iterator[GatewayURL]:
    """Start ``gunicorn wsgi:app`` with gunicorn.conf.py; yield its base URL; stop it.

    gunicorn inherits a socket bound here (``fd://``): a port chosen free and bound later could be
    taken meanwhile by another xdist worker's gateway, which would then answer this one's tests
    until it stopped (the mid-module "Connection refused").
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    full_env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "OPENAI_"))},
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "LOG_LEVEL": "WARNING",
        # Each gateway its own audit journal, never the checkout's data/.
        "AUDIT_JOURNAL_DIR": str(log_path.parent / f"journal-{port}"),
        **env,
    }
    with open(log_path, "ab") as log:
        with listener:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"fd://{listener.fileno()}",
                 "wsgi:app"],
                cwd=PROJECT_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, pass_fds=[listener.fileno()],
            )
    base = GatewayURL(f"http://127.0.0.1:{port}")
    base.pid = process.pid
    _gateway_logs[log_path] = None
    try:
        _wait_ready(base, process, log_path, workers=workers)
        yield base
    finally:
        _gateway_logs[log_path] = time.time()
        process.send_signal(signal.SIGINT)  # quick shutdown: the tests have read their rows
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(base: str, process: subprocess.Popen, log_path: Path, *, workers: int) -> None:
    """Until every worker has answered (each loads the app, and reads the database, as it boots).

    A test that cuts the database while a worker still boots would make it fail to boot, and
    gunicorn then stops. /health/live, not /health: /health starts a background probe of the
    providers (GET /models), which llmock counts as a request and lets consume the scenarios a
    test queues right after start-up (the chat then got llmock's default answer).
    """
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    answered: set[str] = set()
    first = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            reply = requests.get(base + "/health/live", headers={"Connection": "close"}, timeout=1)
            if reply.status_code == 200:
                answered.add(reply.headers.get("X-Worker", ""))
                first = first or time.monotonic()
        except requests.RequestException:
            pass
        # Each worker seen, or (the kernel may keep handing one worker the connections) a while after the first.
        if len(answered) >= workers or (first is not None and time.monotonic() - first > WORKERS_SEEN_S):
            return
        time.sleep(0.05)
    raise RuntimeError(f"gunicorn did not become ready:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def upstream() -> Iterator[LLMockServer]:
    """A real OpenAI-compatible server (llmock) on a free port."""
    with LLMockServer() as server:
        yield server


@pytest.fixture
def fresh_upstream(upstream: LLMockServer) -> LLMockServer:
    upstream.state.reset()
    return upstream


@pytest.fixture
def answering(upstream: LLMockServer) -> LLMockServer:
    """The upstream, answering every call with the same text."""
    upstream.state.reset()
    upstream.state.scenarios.add(Reply(text="a steady answer from upstream", times=None))
    return upstream


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def e2e_database_url(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'gateway.db'}"
        migrate.upgrade(url)
        dispose_engines()
        yield url
    else:
        url = request.getfixturevalue("pg_url")
        _empty_tables(url)  # providers are seeded from each gateway's environment
        yield url


@pytest.fixture(scope="module")
def start_gateway(tmp_path_factory) -> Callable[..., contextmanager]:
    """Start gateways with extra environment; each stops when its ``with`` block ends."""
    log_dir = tmp_path_factory.mktemp("gunicorn-logs")

    def start(env: dict[str, str], *, workers: int = 2):
        return run_gateway(env, workers=workers, log_path=start.log_path)

    start.log_path = log_dir / "gunicorn.log"
    return start

