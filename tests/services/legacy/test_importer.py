"""Importing original Node gateway databases: counts, every field, foreign keys, idempotency."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.db import get_engine
from app.models import Request
from app.services.history.retention import purgeable_sessions
from app.services.legacy.importer import import_database
from app.services.legacy.target import Target
from tests.legacy_dbs import (
    MALFORMED,
    assert_foreign_keys_hold,
    build_v1,
    build_v2,
    counts,
    source_rows,
    target_rows,
)


def test_v1_import_keeps_every_field(database_url: str, tmp_path: Path):
    original = build_v1(tmp_path / "v1.db", count=120)
    summary = import_database(path=original, database_url=database_url, batch_size=50)

    assert counts(database_url) == {"sessions": 120, "requests": 120, "responses": 120, "settings": 1}
    logs = summary.tables["request_logs"]
    assert (logs.read, logs.imported, logs.duplicates, logs.problems) == (120, 120, 0, 2)
    requests = {row["legacy_id"]: row for row in target_rows(database_url, "requests")}
    responses = {row["request_id"]: row for row in target_rows(database_url, "responses")}
    sessions = {row["id"]: row for row in target_rows(database_url, "sessions")}
    for src in source_rows(original, "request_logs"):
        request = requests[src["request_id"]]
        sent = _json(src["request_body"])
        assert request | {"id": None, "session_id": None} == {
            "id": None, "session_id": None, "request_id": src["request_id"],
            "timestamp": src["created_at"] * 1000, "created_at": src["created_at"] * 1000,
            "method": src["method"], "path": src["endpoint"], "provider": src["provider"],
            "openai_request": src["request_body"], "provider_request": None,
            "model": sent.get("model", ""), "stream": sent.get("stream") is True,
            "legacy_source": "node-v1", "legacy_id": src["request_id"], "worker_id": None, "repaired": None,
            "key_id": None, "tags": None, "trace_id": None,
        }
        response = responses[request["id"]]
        usage = _json(src["response_body"]).get("usage", {})
        failed = bool(src["error"]) or (src["status_code"] or 0) >= 400
        assert response["session_id"] == request["session_id"]
        assert {key: response[key] for key in (
            "openai_response", "provider_response", "status_code", "duration_ms", "error", "status",
            "prompt_tokens", "completion_tokens", "total_tokens", "usage_estimated", "timestamp", "legacy_id",
        )} == {
            "openai_response": src["response_body"], "provider_response": None,
            "status_code": src["status_code"], "duration_ms": src["duration_ms"], "error": src["error"],
            "status": "error" if failed else "ok", "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"), "total_tokens": usage.get("total_tokens"),
            "usage_estimated": False, "timestamp": src["created_at"] * 1000, "legacy_id": src["request_id"],
        }
        session = sessions[request["session_id"]]
        assert (session["retained"], session["legacy_source"], session["created_at"]) == (
            True, "node-v1", src["created_at"] * 1000
        )
    assert [row["status"] for row in responses.values()].count("error") == 13
    assert {None, 0} <= {row["completion_tokens"] for row in responses.values()}
    assert_foreign_keys_hold(database_url)


def test_v2_import_keeps_every_field(database_url: str, tmp_path: Path):
    original = build_v2(tmp_path / "v2.db", sessions=40, requests=120)
    summary = import_database(path=original, database_url=database_url, batch_size=32)

    assert counts(database_url) == {"sessions": 40, "requests": 120, "responses": 116, "settings": 1}
    assert summary.original_version == "2" and summary.total.problems == 1
    sessions = {row["legacy_id"]: row for row in target_rows(database_url, "sessions")}
    for src in source_rows(original, "sessions"):
        provenance = {"retained": True, "legacy_source": "node-v2", "legacy_id": src["id"]}
        assert sessions[src["id"]] == {**src, **provenance}
    requests = {row["legacy_id"]: row for row in target_rows(database_url, "requests")}
    by_original_id = {}
    for src in source_rows(original, "requests"):
        request = requests[src["request_id"]]
        by_original_id[src["id"]] = request
        assert request == {
            **{key: src[key] for key in ("session_id", "request_id", "timestamp", "method", "path",
                                         "openai_request", "model", "created_at")},
            "id": request["id"], "stream": bool(src["stream"]), "provider_request": src["qwen_request"],
            "provider": "qwen", "legacy_source": "node-v2", "legacy_id": src["request_id"],
            "worker_id": None, "repaired": None, "key_id": None, "tags": None, "trace_id": None,
        }
    responses = {row["legacy_id"]: row for row in target_rows(database_url, "responses")}
    for src in source_rows(original, "responses"):
        response = responses[src["response_id"]]
        assert response == {
            **{key: src[key] for key in (
                "session_id", "response_id", "timestamp", "openai_response", "parent_id", "prompt_tokens",
                "completion_tokens", "total_tokens", "finish_reason", "error", "duration_ms", "created_at")},
            "id": response["id"], "request_id": by_original_id[src["request_id"]]["id"],
            "provider_response": src["qwen_response"], "status": "error" if src["error"] else "ok",
            "status_code": None, "usage_estimated": False, "ttft_ms": None, "client_disconnected": False,
            # The original never recorded which provider answered; the request row carries its provider.
            "provider": None, "legacy_source": "node-v2", "legacy_id": src["response_id"],
            "model": by_original_id[src["request_id"]]["model"],  # copied from its request
            "repaired": None, "cost_usd": None,
        }
    assert_foreign_keys_hold(database_url)


@pytest.mark.parametrize("build", [build_v1, build_v2])
def test_a_second_import_of_the_same_file_adds_nothing(database_url: str, tmp_path: Path, build):
    original = build(tmp_path / "original.db")
    first = import_database(path=original, database_url=database_url)
    before = counts(database_url)

    again = import_database(path=original, database_url=database_url)

    assert counts(database_url) == before
    assert again.total.imported == 0 and again.total.duplicates == again.total.read == first.total.read


def test_a_grown_file_imports_only_its_new_rows(database_url: str, tmp_path: Path):
    original = build_v1(tmp_path / "v1.db", count=120)
    import_database(path=original, database_url=database_url)
    extra = build_v1(tmp_path / "more.db", count=150)
    with sqlite3.connect(original) as connection:
        connection.execute("ATTACH ? AS more", (str(extra),))
        connection.execute("INSERT INTO request_logs SELECT * FROM more.request_logs WHERE id > 120")
    connection.close()

    summary = import_database(path=original, database_url=database_url)

    logs = summary.tables["request_logs"]
    assert (logs.read, logs.imported, logs.duplicates) == (150, 30, 120)
    assert counts(database_url)["requests"] == 150


def test_an_interrupted_import_continues_where_it_stopped(database_url: str, tmp_path: Path, monkeypatch):
    original = build_v2(tmp_path / "v2.db", sessions=40, requests=120)
    real_insert, calls = Target.insert, []

    def failing_insert(self, connection, table, rows):
        calls.append(table.name)
        if calls.count("responses") == 3:
            raise RuntimeError("disk full")
        real_insert(self, connection, table, rows)

    monkeypatch.setattr(Target, "insert", failing_insert)
    with pytest.raises(RuntimeError, match="disk full"):
        import_database(path=original, database_url=database_url, batch_size=25)
    partial = counts(database_url)
    monkeypatch.setattr(Target, "insert", real_insert)

    summary = import_database(path=original, database_url=database_url, batch_size=25)

    # Whole batches only: the failed one left no request without its response.
    assert partial["requests"] == 50 and partial["responses"] == 49
    assert counts(database_url) == {"sessions": 40, "requests": 120, "responses": 116, "settings": 1}
    assert summary.tables["requests"].duplicates == 50 and summary.tables["requests"].imported == 70
    assert_foreign_keys_hold(database_url)


def test_malformed_json_is_kept_as_text_and_counted(database_url: str, db_session, tmp_path: Path):
    summary = import_database(path=build_v1(tmp_path / "v1.db"), database_url=database_url)

    request = db_session.scalars(sa.select(Request).where(Request.legacy_id == "1761869496804-r00011")).one()
    assert request.openai_request == MALFORMED  # JSONText hands back text that is not JSON
    assert request.model == "" and request.response.status == "ok"
    assert sorted(summary.problems) == [
        "request_logs 1761869496804-r00011: request_body is not valid JSON; kept as text",
        "request_logs 1761869496805-r00012: response_body is not valid JSON; kept as text",
    ]


def test_dry_run_reports_the_same_and_writes_nothing(database_url: str, tmp_path: Path):
    original = build_v2(tmp_path / "v2.db")
    dry = import_database(path=original, database_url=database_url, dry_run=True)
    assert counts(database_url) == {"sessions": 0, "requests": 0, "responses": 0, "settings": 0}

    real = import_database(path=original, database_url=database_url)
    assert dry.as_dict() | {"dry_run": None} == real.as_dict() | {"dry_run": None}


def test_dry_run_against_a_database_not_created_yet(tmp_path: Path):
    target = tmp_path / "new" / "gateway.db"
    original = build_v1(tmp_path / "v1.db")
    summary = import_database(path=original, database_url=f"sqlite:///{target}", dry_run=True)
    assert summary.total.imported == 121 and not target.parent.exists()


def test_ids_already_used_here_are_minted_anew_and_the_originals_kept(database_url: str, tmp_path: Path):
    taken_session, taken_request = f"{0:032x}", "00000000-0000-4000-8000-000000000000"
    with get_engine(database_url).begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO sessions (id, message_count, created_at, last_accessed, expires_at) "
            "VALUES (:id, 1, 1, 1, 1)"), {"id": taken_session})
        connection.execute(sa.text(
            "INSERT INTO requests (session_id, request_id, timestamp, method, path, provider, model, stream, "
            "created_at) VALUES (:s, :r, 1, 'POST', '/v1/chat/completions', 'mock', 'm', false, 1)"
        ), {"s": taken_session, "r": taken_request})

    summary = import_database(path=build_v2(tmp_path / "v2.db"), database_url=database_url)

    session = next(row for row in target_rows(database_url, "sessions") if row["legacy_id"] == taken_session)
    request = next(row for row in target_rows(database_url, "requests") if row["legacy_id"] == taken_request)
    assert session["id"].startswith("node-v2-") and request["request_id"] != taken_request
    assert request["session_id"] == session["id"]
    assert summary.total.imported == summary.total.read and summary.total.problems == 3
    assert f"sessions {taken_session}: session id too long or already in use here; a new one was minted" in (
        summary.problems
    )
    assert_foreign_keys_hold(database_url)


def test_imported_sessions_are_never_purgeable(database_url: str, tmp_path: Path):
    import_database(path=build_v2(tmp_path / "v2.db", sessions=130, requests=120), database_url=database_url)
    with get_engine(database_url).begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO sessions (id, message_count, created_at, last_accessed, expires_at) "
            "VALUES ('live-expired', 0, 1, 1, 2)"))
        empty_imported = connection.execute(sa.text(
            "SELECT count(*) FROM sessions s WHERE retained AND NOT EXISTS "
            "(SELECT 1 FROM requests WHERE session_id = s.id)")).scalar_one()
        purgeable = connection.scalars(purgeable_sessions(now_ms=2**62)).all()
    assert empty_imported == 10 and purgeable == ["live-expired"]


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
