"""The audit hot path against a real database: rows, continuity, and recovery from a failed write."""

from __future__ import annotations

import sqlalchemy as sa

from app.db import get_engine
from app.models import ChatSession, Request, Response
from app.services.audit.log import AuditLog
from app.services.audit.records import Outcome


def open_request(audit: AuditLog, session_id: str = "s-1"):
    return audit.open(
        session_id=session_id, first_user_message="hi", openai_request='{"model":"m"}',
        provider="mock", model="m", stream=False, method="POST", path="/v1/chat/completions",
        build=lambda conversation: {"model": "m", "chat": conversation.chat_id},
    )


def test_request_row_exists_before_open_returns(database_url, db_session):
    audit = AuditLog.for_url(database_url, session_timeout_ms=60_000)
    record, payload = open_request(audit)
    row = db_session.scalars(sa.select(Request)).one()
    assert (row.request_id, row.provider_request) == (record.request_id, payload)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Response)) == 0
    audit.stop()


def test_close_writes_one_response_and_advances_continuity(database_url, db_session):
    audit = AuditLog.for_url(database_url, session_timeout_ms=60_000)
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
    audit.stop()


def test_failed_request_write_is_retried_with_its_response(database_url, db_session, monkeypatch, caplog):
    audit = AuditLog.for_url(database_url, session_timeout_ms=60_000)
    healthy = audit.engine
    monkeypatch.setattr(audit, "engine", sa.create_engine("sqlite:////nonexistent-directory/x.db"))
    record, payload = open_request(audit)
    assert record.db_id is None and payload == {"model": "m", "chat": None}
    assert "AUDIT WRITE FAILED" in caplog.text
    monkeypatch.setattr(audit, "engine", healthy)
    audit.close(record, Outcome(status="ok", status_code=200))
    audit.flush()
    request = db_session.scalars(sa.select(Request)).one()
    assert request.request_id == record.request_id
    assert db_session.scalars(sa.select(Response)).one().request_id == request.id
    audit.stop()


def test_concurrent_writers_on_one_sqlite_file_never_report_locked(tmp_path, sqlite_template):
    import shutil

    shutil.copyfile(sqlite_template, tmp_path / "shared.db")
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    audits = [AuditLog.for_url(database_url, session_timeout_ms=60_000) for _ in range(2)]
    audits[1].engine = sa.create_engine(database_url)  # a second pool: as another process would have
    import threading

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
    with get_engine(database_url).connect() as connection:
        counts = connection.execute(sa.text(
            "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM responses)")).one()
    assert tuple(counts) == (200, 200)
