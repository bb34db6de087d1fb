"""Every call gets an ending through real gunicorn: workers killed with live streams, a graceful stop,
and a journal that is full while the database is away (in both failure modes)."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from llmock.scenarios import Reply, StreamFault

from app import migrate
from app.cli import cli
from app.db import dispose_engines, get_engine
from tests.e2e.calls import chat, row_counts
from tests.faults import sqlite_lock_held, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("audit-faults")]
STREAMS = 40


@pytest.fixture
def stalling(upstream):
    """Streams that send three chunks, then nothing for a minute: live streams with partial content."""
    upstream.state.reset()
    upstream.state.scenarios.add(Reply(text="partial " * 40, times=None))
    upstream.state.scenarios.add(StreamFault("stall", after_chunks=3, stall_seconds=60, times=None))
    yield upstream
    upstream.state.reset()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade(url)
    dispose_engines()
    return url


def env_for(url: str, upstream, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": url, "DEFAULT_PROVIDER": "lm-studio", "LM_STUDIO_BASE_URL": upstream.base_url("openai"),
        "AUDIT_JOURNAL_DIR": str(tmp_path / "journal"), "REQUEST_TIMEOUT": "90000", **extra,
    }


def open_streams(base: str, count: int) -> tuple[list[threading.Thread], list[bytes], threading.Barrier]:
    """``count`` streams that have each received their first bytes when the barrier releases."""
    bodies: list[bytes] = []
    started = threading.Barrier(count + 1, timeout=60)

    def one(number: int) -> None:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": f"stream {number}"}]}
        with requests.post(base + "/v1/chat/completions", json=body, stream=True, timeout=90,
                           headers={"X-Session-Id": f"live-{number}", "Connection": "close"}) as reply:
            chunks = reply.iter_content(None)
            received = next(chunks)
            started.wait()
            try:
                for chunk in chunks:
                    received += chunk
            except requests.RequestException:
                pass  # the worker died under it
            bodies.append(received)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    return threads, bodies, started


def workers_of(master: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if ppid == master and b"gunicorn" in command:
                children.append(int(entry.name))
    return children


def endings(url: str) -> dict[str, int]:
    with get_engine(url).connect() as connection:
        return dict(connection.execute(sa.text("SELECT status, count(*) FROM responses GROUP BY status")).all())


def test_workers_killed_with_live_streams_leave_every_call_an_ending(
    stalling, sqlite_url, start_gateway, tmp_path
):
    with start_gateway(env_for(sqlite_url, stalling, tmp_path)) as base:
        threads, _, started = open_streams(base, STREAMS)
        started.wait()
        victims = workers_of(base.pid)
        assert len(victims) == 2
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=60)
        # The workers gunicorn starts in their place sweep at once: the dead ones' liveness locks are free.
        assert wait_until(lambda: endings(sqlite_url) == {"interrupted": STREAMS}, timeout_s=30), endings(sqlite_url)
        assert row_counts(sqlite_url) == (STREAMS, STREAMS)
        with get_engine(sqlite_url).connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_a_graceful_stop_ends_live_streams_as_incomplete_with_what_they_said(
    stalling, sqlite_url, start_gateway, tmp_path
):
    with start_gateway(env_for(sqlite_url, stalling, tmp_path, GRACEFUL_TIMEOUT="4")) as base:
        threads, bodies, started = open_streams(base, STREAMS)
        started.wait()
        os.kill(base.pid, signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=60)
    assert len(bodies) == STREAMS
    for body in bodies:  # each client got a proper end: an error event, then [DONE]
        assert b'"code": "gateway_shutting_down"' in body and body.endswith(b"data: [DONE]\n\n")
    with get_engine(sqlite_url).connect() as connection:
        rows = connection.execute(sa.text("SELECT status, error, openai_response FROM responses")).all()
    assert len(rows) == STREAMS and {status for status, _, _ in rows} == {"incomplete"}
    for _, error, answer in rows:
        assert "shutting down" in error
        assert json.loads(answer)["choices"][0]["message"]["content"].startswith("partial")


def audit_status(url: str, journal: Path) -> dict:
    result = CliRunner().invoke(cli, ["audit", "status", "--json"],
                                env={"DATABASE_URL": url, "AUDIT_JOURNAL_DIR": str(journal)})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def answering(upstream):
    upstream.state.reset()
    upstream.state.scenarios.add(Reply(text="recorded or counted", times=None))
    yield upstream
    upstream.state.reset()


def test_a_full_journal_in_open_mode_serves_and_counts_every_unrecorded_call_exactly(
    answering, sqlite_url, start_gateway, tmp_path
):
    env = env_for(sqlite_url, answering, tmp_path, AUDIT_JOURNAL_MAX_BYTES="8K")
    with start_gateway(env) as base:
        with sqlite_lock_held(tmp_path / "gateway.db", seconds=8):
            calls = [chat(base, text=f"call {n}", stream=n % 2 == 1) for n in range(30)]
        assert {call.status for call in calls} == {200}
        journal = tmp_path / "journal"
        assert wait_until(lambda: audit_status(sqlite_url, journal)["records"] == 0, timeout_s=30)
        requests_, responses_ = row_counts(sqlite_url)
        unrecorded = audit_status(sqlite_url, journal)["unrecorded"]
        assert requests_ == responses_ and 0 < unrecorded < len(calls)
        assert requests_ + unrecorded == len(calls)  # every call is either recorded whole or counted


def test_a_full_journal_in_closed_mode_refuses_calls_before_any_reaches_upstream(
    answering, sqlite_url, start_gateway, tmp_path
):
    env = env_for(sqlite_url, answering, tmp_path, AUDIT_JOURNAL_MAX_BYTES="8K", AUDIT_FAILURE_MODE="closed")
    with start_gateway(env) as base:
        with sqlite_lock_held(tmp_path / "gateway.db", seconds=8):
            calls = [chat(base, text=f"call {n}", stream=n % 2 == 1) for n in range(30)]
        refused = [call for call in calls if call.status == 503]
        served = [call for call in calls if call.status == 200]
        assert refused and served and len(refused) + len(served) == len(calls)
        assert {call.error["code"] for call in refused} == {"audit_unavailable"}
        upstream_calls = [r for r in answering.state.journal.records(wait=1) if r.path.endswith("/chat/completions")]
        assert len(upstream_calls) == len(served)  # a refused call never reached the provider
        assert wait_until(lambda: row_counts(sqlite_url) == (len(served), len(served)), timeout_s=30)
        assert audit_status(sqlite_url, tmp_path / "journal")["unrecorded"] == 0
