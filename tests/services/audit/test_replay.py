"""Replaying the journal on both engines: idempotent, in order, repairing what the database refuses."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.db import get_engine
from app.models import Attempt, ChatSession, Request, Response
from app.services.audit.connection import Transactions
from app.services.audit.journal import Journal
from app.services.audit.manual import list_dead_letters, replay_dead_letters
from app.services.audit.replay import Replayer
from app.services.audit.segments import claimed, segments
from app.services.audit.statements import AuditStatements
from app.services.audit.sweep import INTERRUPTED


@pytest.fixture
def journal(settings, database_url) -> Journal:
    opened = Journal(settings.audit_journal_dir, worker_id="w1", target=database_url, max_bytes=1 << 30)
    opened.open()
    yield opened
    opened.close()


@pytest.fixture
def replayer(database_url, journal) -> Replayer:
    engine = get_engine(database_url)
    tx = Transactions(engine, wait_s=1.0)
    yield Replayer(tx, AuditStatements(engine.dialect), journal)
    tx.release()


def call(number: int, *, session: str = "s", text: str = "hi", model: str = "m") -> tuple[dict, dict]:
    request_id = f"00000000-0000-7000-8000-{number:012d}"
    at = 1_700_000_000_000 + number
    opened = {
        "kind": "open",
        "session": {"id": session, "chat_id": None, "parent_id": None, "first_user_message": text,
                    "message_count": 1, "created_at": at, "last_accessed": at, "expires_at": at + 60_000},
        "request": {"session_id": session, "request_id": request_id, "timestamp": at, "method": "POST",
                    "path": "/v1/chat/completions", "openai_request": '{"messages":[]}', "provider_request": None,
                    "provider": "mock", "model": model, "stream": False, "created_at": at, "worker_id": "w1"},
    }
    closed = {
        "kind": "close", "request_id": request_id, "continuation": None,
        "attempts": [
            {"request_id": None, "attempt": n, "provider": "mock", "model": model, "status_code": 500,
             "error": "boom", "duration_ms": 1, "started_at": at} for n in (1, 2)
        ],
        "response": {"request_id": None, "session_id": session, "response_id": f"10000000-0000-7000-8000-{number:012d}",
                     "model": model, "timestamp": at + 5, "provider_response": None,
                     "openai_response": '{"choices":[]}', "parent_id": None, "prompt_tokens": 1,
                     "completion_tokens": 2, "total_tokens": 3, "usage_estimated": False, "finish_reason": "stop",
                     "status": "ok", "status_code": 200, "error": text, "provider": "mock", "duration_ms": 5,
                     "ttft_ms": None, "client_disconnected": False, "created_at": at + 5},
    }
    return opened, closed


def replay_all(journal: Journal, replayer: Replayer) -> None:
    journal.seal()
    for _, _, path in segments(journal.directory):
        with claimed(path) as fd:
            assert fd is not None
            assert replayer.segment(path, deadline=float("inf")).done


def counts(url: str) -> tuple[int, int, int, int]:
    with get_engine(url).connect() as connection:
        return tuple(connection.execute(sa.text(
            "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM requests), "
            "(SELECT count(*) FROM responses), (SELECT count(*) FROM attempts)")).one())


def test_replaying_twice_writes_nothing_twice(journal, replayer, database_url, db_session):
    for number in range(3):
        for record in call(number):
            journal.append(record, admit=True, durable=True)
    replay_all(journal, replayer)
    assert counts(database_url) == (1, 3, 3, 6)
    assert db_session.get(ChatSession, "s").message_count == 3
    for _, _, path in segments(journal.directory):  # a drainer killed before it deleted them
        path.with_name(path.name + ".pos").unlink(missing_ok=True)
        with claimed(path):
            replayer.segment(path, deadline=float("inf"))
    assert counts(database_url) == (1, 3, 3, 6)
    assert db_session.get(ChatSession, "s").message_count == 3


def test_an_ending_from_the_journal_replaces_the_interrupted_one(journal, replayer, database_url, db_session):
    opened, closed = call(1)
    journal.append(opened, admit=True, durable=True)
    replay_all(journal, replayer)
    request = db_session.scalars(sa.select(Request)).one()
    with get_engine(database_url).begin() as connection:  # what a sweep on another host wrote meanwhile
        connection.execute(sa.insert(Response).values(
            request_id=request.id, session_id="s", response_id="interrupted-1", timestamp=1, status="interrupted",
            error=INTERRUPTED, usage_estimated=False, client_disconnected=False, created_at=1))
    journal.append(closed, admit=True, durable=True)
    replay_all(journal, replayer)
    response = db_session.scalars(sa.select(Response)).one()
    assert (response.status, response.response_id) == ("ok", closed["response"]["response_id"])
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Attempt)) == 2


def test_an_ending_without_its_request_anywhere_becomes_a_dead_letter(journal, replayer, database_url):
    _, closed = call(1)
    journal.append(closed, admit=True, durable=True)
    replay_all(journal, replayer)
    assert counts(database_url) == (0, 0, 0, 0)
    [letter] = list_dead_letters(journal.directory)
    assert letter["kind"] == "close" and "is not recorded" in letter["error"]


def test_content_the_database_refuses_is_repaired_and_flagged(journal, replayer, database_url, db_session):
    opened, closed = call(1, text="nul \x00 and lone \ud800", model="m" * 300)
    journal.append(opened, admit=True, durable=True)
    journal.append(closed, admit=True, durable=True)
    replay_all(journal, replayer)
    request = db_session.scalars(sa.select(Request)).one()
    response = db_session.scalars(sa.select(Response)).one()
    session = db_session.get(ChatSession, "s")
    assert "\ud800" not in session.first_user_message and "lone \ufffd" in session.first_user_message
    assert "session.first_user_message" in request.repaired and "response.error" in response.repaired
    # A repaired row is made storable on either engine alike: NUL escaped, text cut to its column.
    assert session.first_user_message.startswith("nul \\u0000")
    assert request.model == "m" * 255 and "request.model: cut to 255 characters" in request.repaired


def test_a_record_refused_even_after_repair_waits_as_a_dead_letter_until_fixed(
    journal, replayer, database_url, settings
):
    opened, closed = call(1)
    closed["response"]["status"] = "exploded"  # the CHECK constraint refuses it; no repair can help
    journal.append(opened, admit=True, durable=True)
    journal.append(closed, admit=True, durable=True)
    replay_all(journal, replayer)
    assert counts(database_url) == (1, 1, 0, 0)
    [letter] = list_dead_letters(journal.directory)
    assert letter["kind"] == "close" and letter["request_id"] == opened["request"]["request_id"]
    report = replay_dead_letters(settings)  # still refused: kept
    assert (report.records, report.dead_letters, len(list_dead_letters(journal.directory))) == (0, 1, 1)
