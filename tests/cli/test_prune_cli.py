"""``prune --older-than``: old history goes in batches; imported sessions and recent history stay."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from app.models import Attempt, ChatSession, Request, Response, now_ms
from app.models.usage import UsageRollup
from tests.cli.conftest import failed
from tests.factories import DAY_MS, make_call, make_session


@pytest.fixture
def history(db_session):
    now = now_ms()
    old = make_session(db_session, "old", created_at=now - 60 * DAY_MS)
    for i in range(7):
        call = make_call(db_session, old, timestamp=now - 50 * DAY_MS + i)
    db_session.add(Attempt(request_id=call.id, attempt=1, provider="openai", model="gpt-4o", status_code=500,
                           duration_ms=5, started_at=call.timestamp))
    mixed = make_session(db_session, "mixed", created_at=now - 40 * DAY_MS)
    make_call(db_session, mixed, timestamp=now - 40 * DAY_MS)
    make_call(db_session, mixed, timestamp=now - DAY_MS)
    imported = make_session(db_session, "imported", created_at=now - 90 * DAY_MS, retained=True)
    make_call(db_session, imported, timestamp=now - 90 * DAY_MS)
    make_session(db_session, "fresh-empty", created_at=now)
    db_session.commit()


def counts(db_session):
    db_session.expire_all()
    return {model.__tablename__: db_session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (ChatSession, Request, Response, Attempt)}


def test_dry_run_counts_and_deletes_nothing(run, history, db_session):
    before = counts(db_session)
    result = run("prune", "--older-than", "30d", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Would remove 9 requests (with their responses) older than ")
    assert result.stdout.rstrip().endswith("and 1 sessions left empty.")
    assert counts(db_session) == before


def test_prune_in_batches_keeps_recent_and_imported_sessions(run, history, db_session, database_url):
    result = run("prune", "--older-than", "30d", "--batch-size", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["requests"], data["sessions"], data["dry_run"]) == (9, 1, False)
    assert counts(db_session) == {"sessions": 3, "requests": 1, "responses": 1, "attempts": 0}
    assert set(db_session.scalars(sa.select(ChatSession.id))) == {"mixed", "imported", "fresh-empty"}
    assert run("prune", "--older-than", "30d", "--json").stdout.count('"requests": 0') == 1


def test_the_prune_rests_after_each_batch_in_proportion_to_it(history, db_session, database_url):
    """--rest 2: after each batch, twice its time; --rest 0: flat out."""
    from app.db import get_engine
    from app.services.history.retention import prune

    rests: list[float] = []
    clock = iter(range(0, 1000, 3))  # each batch "takes" 3 s of a fake clock read at its start and end
    engine, before = get_engine(database_url), now_ms() - 30 * DAY_MS
    counts_ = prune(engine, before_ms=before, batch_size=4, rest=2.0, sleep=rests.append,
                    clock=lambda: next(clock))
    assert counts_.requests == 9 and rests == [6, 6, 6]  # batches of 4, 4 and 1: each rested 2 x 3 s
    assert prune(engine, before_ms=before, rest=0.0, sleep=rests.append).requests == 0 and len(rests) == 3


def test_prune_drops_the_rollups_of_the_days_it_touched(run, history, db_session):
    assert run("stats", "--by", "day").exit_code == 0  # builds the daily rollups
    assert db_session.scalar(sa.select(sa.func.count()).select_from(UsageRollup)) > 0
    assert run("prune", "--older-than", "30d").exit_code == 0
    data = json.loads(run("stats", "--json").stdout)
    assert data["totals"]["requests"] == 1


def test_sqlite_gets_vacuum_advice(run, history, database_url):
    result = run("prune", "--older-than", "30d")
    advice = "VACUUM; ANALYZE" in result.stdout
    assert advice == database_url.startswith("sqlite")


@pytest.mark.parametrize("span", ["30", "0d", "month", "-3d"])
def test_a_bad_span(run, span):
    assert failed(run("prune", "--older-than", span), "invalid --older-than")


def test_older_than_is_required(run):
    result = run("prune")
    assert result.exit_code == 2 and "Missing option '--older-than'" in result.stderr


def test_a_terminal_gets_a_progress_bar(run, history, db_session, monkeypatch):
    import app.cli.prune as prune_cli

    monkeypatch.setattr(prune_cli, "progress_wanted", lambda: True)
    result = run("prune", "--older-than", "30d", "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert counts(db_session)["requests"] == 1
