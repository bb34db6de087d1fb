"""A worker booted while PostgreSQL refused connections (a real TCP proxy in front of it): it serves, journals,
and runs its owed start-up work once, before the drainer replays; an outdated schema keeps the journal."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from app import create_app, migrate
from app.db import get_engine
from app.services.audit.drainer import AuditDrainer
from app.services.audit.segments import status

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(pg_url):
    """PostgreSQL only: a server that can be cut off."""
    return pg_url


@pytest.fixture
def booted(pg_proxy, make_settings):
    """(the app of a worker booted while the proxy refused connections, the proxy, a drainer not running)."""
    proxy, url = pg_proxy
    proxy.set_mode("refuse")
    app = create_app(make_settings(database_url=url))
    gateway = app.extensions["gateway"]
    gateway.drainer = AuditDrainer(gateway.chat.audit, grace_ms=60_000, ready=gateway.deferred)
    yield app, proxy, gateway.drainer
    gateway.stop_background()


def chat(app, text: str) -> None:
    reply = app.test_client().post("/v1/chat/completions",
                                   json={"model": "mock/echo", "messages": [{"role": "user", "content": text}]})
    assert reply.status_code == 200, reply.get_json()


def recorded(url: str) -> tuple[int, int]:
    with get_engine(url).connect() as connection:
        return tuple(connection.execute(sa.text(
            "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM responses)")).one())


@contextmanager
def changed(url: str, change: str, *, undo: str, **params) -> Iterator[None]:
    """The database as an operator left it (``change``) for the block's time; ``undo`` restores it."""
    with get_engine(url).begin() as connection:
        connection.execute(sa.text(change))
    try:
        yield
    finally:
        with get_engine(url).begin() as connection:
            connection.execute(sa.text(undo), params)


def failing_ticks(drainer, caplog, count: int = 3) -> None:
    """The drainer's ticks while the owed work cannot be done: each fails, the logs at ERROR captured."""
    with caplog.at_level(logging.ERROR):
        for _ in range(count):
            assert drainer.tick() is False


def test_a_worker_booted_without_its_database_serves_and_journals(booted, pg_url):
    app, _, _ = booted
    gateway = app.extensions["gateway"]
    assert gateway.deferred is not None and gateway.chat.audit.healthy is False
    chat(app, "during the outage")
    assert status(gateway.chat.audit.journal.directory).records == 2  # its request and its ending
    history = app.test_client().get("/v1/requests")
    assert history.status_code == 503
    assert history.get_json()["error"]["code"] == "database_unavailable"


def test_the_owed_work_runs_once_before_the_journal_is_replayed(booted, pg_url):
    app, proxy, drainer = booted
    gateway = app.extensions["gateway"]
    started = []
    gateway.deferred.then(lambda: started.append(recorded(pg_url)))
    chat(app, "during the outage")
    assert drainer.tick() is False  # still refused: nothing tried but the probe
    proxy.set_mode("pass")
    drainer.tick()
    assert started == [(0, 0)], "the owed work, then the replay"
    assert recorded(pg_url) == (1, 1)
    assert gateway.deferred() is True and drainer.ready is None
    assert started == [(0, 0)]


def test_an_outdated_schema_found_after_the_outage_keeps_the_journal(booted, pg_url, caplog):
    app, proxy, drainer = booted
    audit = app.extensions["gateway"].chat.audit
    chat(app, "during the outage")
    head = migrate.current_revision(pg_url)
    with changed(pg_url, "UPDATE alembic_version SET version_num = '0000_older'",
                 undo="UPDATE alembic_version SET version_num = :head", head=head):
        proxy.set_mode("pass")
        failing_ticks(drainer, caplog)
        assert caplog.text.count("DATABASE NOT READY") == 1, "said once, checked again each time"
        assert "alembic upgrade head" in caplog.text
        journal = status(audit.journal.directory)
        assert (journal.records, journal.dead_letters) == (2, 0)
        assert recorded(pg_url) == (0, 0)
    drainer.tick()
    assert recorded(pg_url) == (1, 1)
    assert status(audit.journal.directory).records == 0


def test_owed_work_that_fails_otherwise_is_said_once_and_keeps_the_journal(booted, pg_url, caplog):
    """Not an outage, not an old schema: any other database error (here the providers' table gone) is
    logged once, without a traceback, and tried again; the calls wait in the journal."""
    app, proxy, drainer = booted
    audit = app.extensions["gateway"].chat.audit
    chat(app, "during the outage")
    with changed(pg_url, "ALTER TABLE providers RENAME TO providers_away",
                 undo="ALTER TABLE providers_away RENAME TO providers"):
        proxy.set_mode("pass")
        failing_ticks(drainer, caplog)
        assert caplog.text.count("DATABASE NOT READY (the start-up work failed") == 1
        assert "providers" in caplog.text and "Traceback" not in caplog.text
        assert (status(audit.journal.directory).records, recorded(pg_url)) == (2, (0, 0))
    drainer.tick()
    assert recorded(pg_url) == (1, 1)
