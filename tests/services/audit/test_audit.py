"""The audit hot path against a real database: rows, continuity, and what happens when the database fails."""

from __future__ import annotations

import shutil
import threading

import pytest
import sqlalchemy as sa

from app.db import get_engine
from app.errors import AuditUnavailable
from app.models import ChatSession, Request, Response
from app.services.audit.drainer import AuditDrainer
from app.services.audit.log import AuditLog
from app.services.audit.records import STORED_DB, STORED_JOURNAL, Outcome
from app.services.audit.segments import status

BROKEN = "sqlite:////nonexistent-directory/x.db"


@pytest.fixture
def make_audit(database_url, tmp_path):
    made = []

    def make(**options) -> AuditLog:
        audit = AuditLog.for_url(database_url, session_timeout_ms=60_000, journal_dir=tmp_path / "journal", **options)
        made.append(audit)
        return audit

    yield make
    for audit in made:
        audit.stop()
        audit.journal.close()


def open_request(audit: AuditLog, session_id: str = "s-1"):
    return audit.open(
        session_id=session_id, first_user_message="hi", openai_request='{"model":"m"}',
        provider="mock", model="m", stream=False, method="POST", path="/v1/chat/completions",
        build=lambda conversation: {"model": "m", "chat": conversation.chat_id},
    )


def break_database(audit: AuditLog, monkeypatch) -> sa.Engine:
    healthy = audit.tx.engine
    monkeypatch.setattr(audit.tx, "engine", sa.create_engine(BROKEN))
    audit.tx.release()
    return healthy


def test_request_row_exists_before_open_returns(make_audit, db_session):
    audit = make_audit()
    record, payload = open_request(audit)
    row = db_session.scalars(sa.select(Request)).one()
    assert (row.request_id, row.provider_request, row.worker_id) == (record.request_id, payload, audit.worker.id)
    assert record.stored == STORED_DB
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Response)) == 0


def test_close_writes_one_response_and_advances_continuity(make_audit, db_session):
    audit = make_audit()
    record, _ = open_request(audit)
    outcome = Outcome(status="ok", status_code=200, prompt_tokens=0, completion_tokens=0, total_tokens=0,
                      chat_id="chat-9", parent_id="parent-9")
    audit.close(record, outcome)
    audit.close(record, outcome)  # a second close is ignored
    audit.flush()
    response = db_session.scalars(sa.select(Response)).one()
    assert (response.prompt_tokens, response.total_tokens, response.status) == (0, 0, "ok")
    session = db_session.get(ChatSession, "s-1")
    assert (session.chat_id, session.parent_id) == ("chat-9", "parent-9")
    _, payload = open_request(audit)
    assert payload["chat"] == "chat-9"  # the next turn sees the stored continuity


def test_a_failing_database_sends_the_call_to_the_journal_and_the_drainer_replays_it(
    make_audit, db_session, monkeypatch, caplog
):
    audit = make_audit()
    healthy = break_database(audit, monkeypatch)
    record, payload = open_request(audit)
    assert record.stored == STORED_JOURNAL and payload == {"model": "m", "chat": None}
    assert "AUDIT DATABASE UNUSABLE" in caplog.text and not audit.healthy
    audit.close(record, Outcome(status="ok", status_code=200, completion_tokens=3))
    assert audit.counts == {"journaled": 2, "dead_letters": 0, "unrecorded": 0}
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Request)) == 0
    assert audit.status()["database"] == "down"

    monkeypatch.setattr(audit.tx, "engine", healthy)
    drainer = AuditDrainer(audit, grace_ms=60_000)
    drainer.tick()  # the heartbeat finds the database writable, then the journal is replayed
    assert audit.healthy
    request = db_session.scalars(sa.select(Request)).one()
    assert (request.request_id, request.worker_id) == (record.request_id, audit.worker.id)
    response = db_session.scalars(sa.select(Response)).one()
    assert (response.request_id, response.completion_tokens) == (request.id, 3)
    assert status(audit.journal.directory).records == 0
    drainer.tick()  # nothing replayed twice
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Response)) == 1
    drainer.tx.release()


def test_closed_mode_refuses_a_call_it_cannot_record_anywhere(make_audit, monkeypatch):
    audit = make_audit(failure_mode="closed", journal_max_bytes=1)
    break_database(audit, monkeypatch)
    with pytest.raises(AuditUnavailable) as refused:
        open_request(audit)
    assert refused.value.status == 503 and refused.value.code == "audit_unavailable"
    assert audit.open_calls == {}


def test_open_mode_counts_a_call_recorded_nowhere(make_audit, monkeypatch, caplog):
    audit = make_audit(journal_max_bytes=1)
    break_database(audit, monkeypatch)
    record, _ = open_request(audit)
    assert record.stored is None
    audit.close(record, Outcome(status="ok", status_code=200))
    assert audit.counts["unrecorded"] == 1
    assert status(audit.journal.directory).unrecorded == 1
    assert "AUDIT UNRECORDED" in caplog.text


def test_a_call_taken_by_the_journal_gets_its_ending_past_the_size_cap(make_audit, monkeypatch):
    audit = make_audit()
    break_database(audit, monkeypatch)
    record, _ = open_request(audit)
    assert record.stored == STORED_JOURNAL
    audit.journal.max_bytes = 1  # full now: new calls are refused, this one still ends
    audit.close(record, Outcome(status="ok", status_code=200))
    assert audit.counts == {"journaled": 2, "dead_letters": 0, "unrecorded": 0}


def test_concurrent_writers_on_one_sqlite_file_never_report_locked(tmp_path, sqlite_template):
    shutil.copyfile(sqlite_template, tmp_path / "shared.db")
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    audits = [
        AuditLog.for_url(database_url, session_timeout_ms=60_000, journal_dir=tmp_path / "journal")
        for _ in range(2)
    ]
    audits[1].tx.engine = sa.create_engine(database_url)  # a second pool: as another process would have

    def work(audit: AuditLog, prefix: str) -> None:
        for index in range(100):
            record, _ = open_request(audit, session_id=f"{prefix}-{index % 5}")
            audit.close(record, Outcome(status="ok", status_code=200))

    threads = [threading.Thread(target=work, args=(audit, f"t{n}")) for n, audit in enumerate(audits)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for audit in audits:
        audit.stop()
        assert audit.counts == {"journaled": 0, "dead_letters": 0, "unrecorded": 0}  # busy is not sick
    with get_engine(database_url).connect() as connection:
        counts = connection.execute(sa.text(
            "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM responses)")).one()
    assert tuple(counts) == (200, 200)


def test_an_ending_replaces_the_interrupted_one_a_sweep_wrote_while_this_worker_looked_dead(
    make_audit, db_session, database_url
):
    audit = make_audit()
    record, _ = open_request(audit)
    with get_engine(database_url).begin() as connection:  # a sweep elsewhere, our heartbeat stale
        connection.execute(sa.insert(Response).values(
            request_id=record.db_id, session_id="s-1", response_id="swept", timestamp=1, status="interrupted",
            usage_estimated=False, client_disconnected=False, created_at=1))
    audit.close(record, Outcome(status="ok", status_code=200, completion_tokens=4))
    audit.flush()
    response = db_session.scalars(sa.select(Response)).one()
    assert (response.status, response.completion_tokens) == ("ok", 4)
    assert audit.counts == {"journaled": 0, "dead_letters": 0, "unrecorded": 0}


def test_an_ending_that_moves_the_conversation_on_is_committed_before_close_returns(make_audit, database_url):
    audit = make_audit()
    record, _ = open_request(audit)
    open_request(audit, session_id="s-2")  # another call in flight: a plain ending would linger for it
    audit.close(record, Outcome(status="ok", status_code=200, chat_id="chat-1", parent_id="parent-2"))
    with get_engine(database_url).connect() as connection:  # no flush: another worker reads it now
        state = connection.execute(sa.text("SELECT chat_id, parent_id FROM sessions WHERE id = 's-1'")).one()
    assert tuple(state) == ("chat-1", "parent-2")
