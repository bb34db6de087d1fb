"""The sweep on both engines: a dead worker's open calls end as interrupted; a live worker's never do."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.db import get_engine
from app.models import AuditWorker, Request, Response, now_ms
from app.services.audit.connection import Transactions
from app.services.audit.journal import Journal
from app.services.audit.records import WorkerIdentity
from app.services.audit.statements import AuditStatements
from app.services.audit.sweep import INTERRUPTED, Sweeper
from tests.factories import make_call, make_session

GRACE_MS = 60_000


@pytest.fixture
def sweeper_for(database_url, tmp_path):
    made = []

    def make(worker: WorkerIdentity | None = None) -> Sweeper:
        engine = get_engine(database_url)
        tx = Transactions(engine, wait_s=1.0)
        made.append(tx)
        return Sweeper(tx, AuditStatements(engine.dialect), worker=worker or WorkerIdentity.new(),
                       journal_dir=tmp_path, grace_ms=GRACE_MS)

    yield make
    for tx in made:
        tx.release()


def worker_row(db_session, worker_id: str, *, seen_ago_ms: int, oldest_open_at: int) -> None:
    now = now_ms()
    db_session.add(AuditWorker(id=worker_id, host="elsewhere", pid=1, started_at=now - 10 * GRACE_MS,
                               seen_at=now - seen_ago_ms, oldest_open_at=oldest_open_at))


def calls_of(db_session, worker_id: str, *, open_: int, closed: int, at: int) -> None:
    """``open_`` calls still running (no response yet) and ``closed`` ended ones, handled by ``worker_id``."""
    session = make_session(db_session, f"session-{worker_id}")
    for number in range(open_ + closed):
        request = make_call(db_session, session, timestamp=at + number, status=None if number < open_ else "ok")
        request.worker_id = worker_id
    db_session.commit()


def endings(db_session) -> dict[str, int]:
    rows = db_session.execute(sa.select(Response.status, sa.func.count()).group_by(Response.status)).all()
    return dict(rows)


def test_a_worker_of_another_host_unseen_past_the_grace_has_its_open_calls_ended(sweeper_for, db_session):
    at = now_ms() - 5 * GRACE_MS
    worker_row(db_session, "gone" * 8, seen_ago_ms=2 * GRACE_MS, oldest_open_at=at)
    calls_of(db_session, "gone" * 8, open_=3, closed=2, at=at)
    assert sweeper_for().sweep() == 3
    db_session.expire_all()
    assert endings(db_session) == {"ok": 2, "interrupted": 3}
    interrupted = db_session.scalars(sa.select(Response).where(Response.status == "interrupted")).first()
    assert interrupted.error == INTERRUPTED and interrupted.provider and interrupted.model
    assert db_session.get(AuditWorker, "gone" * 8) is None
    assert sweeper_for().sweep() == 0  # nothing twice


def test_a_worker_seen_within_the_grace_keeps_its_calls_open_however_long_they_run(sweeper_for, db_session):
    at = now_ms() - 100 * GRACE_MS  # a stream open for far longer than any timeout
    worker_row(db_session, "busy" * 8, seen_ago_ms=GRACE_MS // 2, oldest_open_at=at)
    calls_of(db_session, "busy" * 8, open_=2, closed=0, at=at)
    assert sweeper_for().sweep() == 0
    assert endings(db_session) == {}


def test_a_worker_of_this_host_that_died_is_swept_at_once(sweeper_for, db_session, tmp_path, database_url):
    victim = WorkerIdentity.new()
    journal = Journal(tmp_path, worker_id=victim.id, target=database_url, max_bytes=1 << 30)
    journal.open()  # holds its liveness lock, as a running worker does
    at = now_ms()
    worker_row(db_session, victim.id, seen_ago_ms=0, oldest_open_at=at)
    calls_of(db_session, victim.id, open_=2, closed=1, at=at)
    assert sweeper_for().sweep() == 0  # alive: untouched
    journal.close()  # what the kernel does when the process is killed
    assert sweeper_for().sweep() == 2
    assert not (tmp_path / f"{victim.id}.alive").exists()


def test_a_worker_that_died_before_its_first_heartbeat_is_found_by_its_marker(
    sweeper_for, db_session, tmp_path, database_url
):
    victim = WorkerIdentity.new()
    journal = Journal(tmp_path, worker_id=victim.id, target=database_url, max_bytes=1 << 30)
    journal.open()
    journal.close()
    calls_of(db_session, victim.id, open_=1, closed=0, at=victim.started_at + 1)
    assert sweeper_for().sweep() == 1


def test_two_sweepers_end_each_call_once(sweeper_for, db_session):
    at = now_ms() - 5 * GRACE_MS
    worker_row(db_session, "dead" * 8, seen_ago_ms=2 * GRACE_MS, oldest_open_at=at)
    calls_of(db_session, "dead" * 8, open_=4, closed=0, at=at)
    first, second = sweeper_for(), sweeper_for()
    assert first.sweep() + second.sweep() == 4
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Response)) == 4


def test_the_heartbeat_keeps_a_worker_alive_and_leaving_removes_it(sweeper_for, db_session):
    me = WorkerIdentity.new()
    sweeper = sweeper_for(me)
    sweeper.heartbeat(oldest_open_at=None)
    sweeper.heartbeat(oldest_open_at=123)
    row = db_session.get(AuditWorker, me.id)
    assert (row.pid, row.oldest_open_at) == (me.pid, 123)
    sweeper.retire()
    db_session.expire_all()
    assert db_session.get(AuditWorker, me.id) is None
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Request)) == 0


def test_each_call_the_sweep_ends_is_told_with_its_path_provider_and_model(database_url, tmp_path, db_session):
    told = []
    engine = get_engine(database_url)
    tx = Transactions(engine, wait_s=1.0)
    sweeper = Sweeper(tx, AuditStatements(engine.dialect), worker=WorkerIdentity.new(), journal_dir=tmp_path,
                      grace_ms=GRACE_MS, interrupted=lambda **call: told.append(call))
    at = now_ms() - 5 * GRACE_MS
    worker_row(db_session, "dead" * 8, seen_ago_ms=2 * GRACE_MS, oldest_open_at=at)
    calls_of(db_session, "dead" * 8, open_=2, closed=1, at=at)
    try:
        assert sweeper.sweep() == 2
    finally:
        tx.release()
    assert told == [{"path": "/v1/chat/completions", "provider": "openai", "model": "gpt-4o"}] * 2
