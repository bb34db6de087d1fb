"""``provider-cli audit``: the journal's status, replaying it by hand, and its dead letters."""

from __future__ import annotations

import json

import sqlalchemy as sa

from app.models import Request, Response
from app.services.audit.journal import Journal
from tests.services.audit.test_replay import call


def journal_of(settings, worker_id: str = "w-cli") -> Journal:
    """A gateway process's journal (not opened: no liveness marker, as if written by a process now gone)."""
    journal = Journal(settings.audit_journal_dir, worker_id=worker_id, target="x", max_bytes=1 << 30)
    (settings.audit_journal_dir / "dead").mkdir(parents=True, exist_ok=True)
    return journal


def test_status_shows_what_waits_and_what_was_lost(run, settings):
    journal = journal_of(settings)
    for number in range(3):
        for record in call(number):
            journal.append(record, admit=True, durable=True)
    journal.dead_letter(call(9)[0], "DataError: nope")
    (settings.audit_journal_dir / "w-cli.unrecorded").write_text("2\n")
    result = run("audit", "status", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["records"], shown["segments"], shown["dead_letters"], shown["unrecorded"]) == (6, 1, 1, 2)
    assert shown["database"] == "reachable" and shown["oldest_record_age_s"] > 0
    text = run("audit", "status").stdout
    assert "6 records in 1 segments" in text and "Dead letters: 1" in text and "2 calls" in text


def test_replay_writes_the_journal_and_leaves_what_a_running_writer_holds(run, settings, db_session):
    journal = journal_of(settings)
    for record in call(1):
        journal.append(record, admit=True, durable=True)
    result = run("audit", "replay", "--json")
    assert json.loads(result.stdout)["left_to_running_gateway"] == ["w-cli.00000001.seg"]  # still being written
    journal.seal()
    result = run("audit", "replay")
    assert result.exit_code == 0 and "Replayed 2 journal records" in result.stdout
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Response)) == 1


def test_dead_letters_are_listed_and_retried(run, settings, db_session):
    journal = journal_of(settings)
    opened, closed = call(1)
    journal.dead_letter(opened, "OperationalError: it was a bad day")
    journal.dead_letter(closed, "its request was refused")
    listed = json.loads(run("audit", "dead-letters", "--json").stdout)
    assert [(d["kind"], d["request_id"]) for d in listed] == [("open", opened["request"]["request_id"])] + [
        ("close", opened["request"]["request_id"])]
    assert "2 dead letters" in run("audit", "dead-letters").stdout
    result = run("audit", "replay", "--dead-letters")
    assert result.exit_code == 0 and "Replayed 2 dead letters; 0 refused" in result.stdout
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Request)) == 1
    assert json.loads(run("audit", "dead-letters", "--json").stdout) == []
