"""The drainer on both engines: it replays in order, adopts a dead process's journal, and ends its calls."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import sqlalchemy as sa

from app.config import PROJECT_ROOT
from app.models import Request, Response, now_ms
from app.services.audit.drainer import AuditDrainer
from app.services.audit.log import AuditLog
from app.services.audit.records import Outcome, WorkerIdentity
from app.services.audit.segments import segments, status
from tests.services.audit.test_audit import break_database, open_request
from tests.services.audit.test_replay import call


def test_a_call_split_across_segments_is_replayed_in_order(make_settings, monkeypatch, db_session):
    audit = AuditLog.for_settings(make_settings())
    healthy = break_database(audit, monkeypatch)
    record, _ = open_request(audit)
    audit.journal.seal()  # the request in one segment, its ending in the next
    audit.close(record, Outcome(status="ok", status_code=200))
    assert [seq for _, seq, _ in segments(audit.journal.directory)] == [1, 2]
    monkeypatch.setattr(audit.tx, "engine", healthy)
    drainer = AuditDrainer(audit, grace_ms=60_000)
    drainer.tick()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Response)) == 1
    assert segments(audit.journal.directory) == []
    drainer.stop()
    audit.journal.close()


def test_the_journal_of_a_killed_process_is_replayed_and_its_open_call_ended(make_settings, db_session, database_url):
    settings = make_settings()
    opened, _ = call(7)
    victim = WorkerIdentity.new().id  # as the killed process was
    opened["request"].update(worker_id=victim, timestamp=now_ms())
    code = (
        "import json, sys, time\n"
        "from app.services.audit.journal import Journal\n"
        f"j = Journal({str(settings.audit_journal_dir)!r}, worker_id={victim!r}, target={database_url!r},"
        " max_bytes=1 << 30)\n"
        "j.open()\n"
        f"j.append(json.loads({json.dumps(json.dumps(opened))}), admit=True, durable=True)\n"
        "print('journaled', flush=True)\n"
        "time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    assert writer.stdout.readline().strip() == "journaled"
    writer.send_signal(signal.SIGKILL)  # mid-call: its ending was never written anywhere
    writer.wait()
    audit = AuditLog.for_settings(settings)
    drainer = AuditDrainer(audit, grace_ms=60_000)
    drainer.tick()
    request = db_session.scalars(sa.select(Request)).one()
    response = db_session.scalars(sa.select(Response)).one()
    assert (request.request_id, request.worker_id) == (opened["request"]["request_id"], victim)
    assert (response.request_id, response.status) == (request.id, "interrupted")
    assert status(settings.audit_journal_dir).records == 0
    assert not (settings.audit_journal_dir / f"{victim}.alive").exists()
    drainer.stop()
    audit.journal.close()
