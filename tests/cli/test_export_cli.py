"""``export``: every matching request as JSON lines or CSV, to stdout or a file."""

from __future__ import annotations

import csv
import io
import json

import pytest

from app.models import now_ms
from app.services.history import export as export_service
from tests.cli.conftest import failed
from tests.factories import make_call, make_session


@pytest.fixture
def calls(db_session):
    now = now_ms()
    session = make_session(db_session, "s-1", created_at=now - 10_000)
    made = [make_call(db_session, session, timestamp=now - 9_000 + i, model=f"m{i % 2}") for i in range(7)]
    made.append(make_call(db_session, session, timestamp=now - 100, status="error", error="boom"))
    made.append(make_call(db_session, session, timestamp=now - 50, status=None))  # still in flight
    db_session.commit()
    return made


def test_jsonl_to_stdout_has_every_request_with_bodies_oldest_first(run, calls, monkeypatch):
    monkeypatch.setattr(export_service, "BATCH_SIZE", 2)  # several keyset batches
    result = run("export", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["request_id"] for row in rows] == [c.request_id for c in calls]
    assert rows[0]["request"]["messages"] == [{"role": "user", "content": "hello"}]
    assert rows[0]["response"] == {"choices": [{"message": {"content": "hi"}}]}
    assert (rows[0]["status"], rows[0]["total_tokens"], rows[0]["stream"]) == ("ok", 15, False)
    assert (rows[7]["status"], rows[7]["error"]) == ("error", "boom")
    assert rows[8]["status"] is None and rows[8]["response"] is None
    assert rows[0]["time"].endswith("Z")
    assert result.stderr == ""  # nothing but rows when piped: no bar


def test_csv_to_a_file_with_filters(run, calls, tmp_path):
    target = tmp_path / "out.csv"
    result = run("export", "--format", "csv", "--model", "m1", "--status", "ok", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Exported 3 requests to {target}.\n"
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [row["request_id"] for row in rows] == [c.request_id for c in calls[1:7:2]]
    assert rows[0]["model"] == "m1" and rows[0]["total_tokens"] == "15" and "request" not in rows[0]


def test_since_and_session_filters(run, calls):
    assert len(run("export", "--since", "1m").stdout.splitlines()) == 9
    assert run("export", "--session", "nope").stdout == ""


def test_bad_format_and_since(run, calls, tmp_path):
    result = run("export", "--format", "xml")
    assert result.exit_code == 2 and "Invalid value for '--format'" in result.stderr
    assert failed(run("export", "--since", "later"), "invalid --since")
    assert failed(run("export", "-o", str(tmp_path / "missing" / "x.jsonl")), "No such file")


def test_a_terminal_gets_a_progress_bar_and_the_same_rows(run, calls, tmp_path, monkeypatch):
    import app.cli.export as export_cli

    monkeypatch.setattr(export_cli, "progress_wanted", lambda: True)
    target = tmp_path / "out.jsonl"
    result = run("export", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert len(target.read_text().splitlines()) == 9
