"""Originals with rows lost or added along the way: nothing is dropped, everything is counted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.services.legacy.importer import import_database
from tests.legacy_dbs import V1_SCHEMA, assert_foreign_keys_hold, build_v2, counts, target_rows, v1_rows

LOST_SESSION = f"{5:032x}"


def build_damaged_v2(path: Path) -> Path:
    """A v2 file whose foreign keys were not enforced, plus the undocumented v3 provider tables."""
    build_v2(path, sessions=40, requests=120)
    connection = sqlite3.connect(path)  # foreign keys off, as in many an original deployment
    with connection:
        connection.execute("DELETE FROM sessions WHERE id = ?", (LOST_SESSION,))
        for request_id, response_id in ((9999, "orphan-response"), (1, "second-response")):
            connection.execute(
                "INSERT INTO responses (request_id, session_id, response_id, timestamp, completion_tokens,"
                " finish_reason, duration_ms, created_at) VALUES (?, ?, ?, 1761900000500, 7, 'stop', 40,"
                " 1761900000500)",
                (request_id, f"{0:032x}", response_id),
            )
        connection.executescript("""
            CREATE TABLE providers (id TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT,
                                    enabled INTEGER, config TEXT, created_at INTEGER);
            INSERT INTO providers VALUES ('lm-studio', 'LM Studio', 'lm-studio', 1,
                                          '{"base_url": "http://localhost:1234/v1"}', 1761869000);
            INSERT INTO providers VALUES ('qwen', 'Qwen', 'qwen', 0,
                                          '{"base_url": "https://chat.qwen.ai"}', NULL);
            CREATE TABLE provider_configs (provider_id TEXT, key TEXT, value TEXT);
            INSERT INTO provider_configs VALUES ('qwen', 'token', 'x'), ('qwen', 'cookies', 'y'),
                                                ('lm-studio', 'timeout', '120000');
        """)
    connection.close()
    return path


def test_lost_and_extra_rows_are_imported_with_placeholders(database_url: str, tmp_path: Path):
    original = build_damaged_v2(tmp_path / "damaged.db")
    summary = import_database(path=original, database_url=database_url, batch_size=25)

    # settings: the original's active_provider, and the config_version the provider import bumped
    assert counts(database_url) == {"sessions": 40, "requests": 122, "responses": 118, "settings": 2}
    assert summary.placeholders == 3
    tables = summary.tables.items()
    assert {name: (c.read, c.imported, c.duplicates, c.not_imported) for name, c in tables} == {
        "sessions": (39, 39, 0, 0), "requests": (120, 120, 0, 0), "responses": (118, 118, 0, 0),
        "settings": (1, 1, 0, 0), "provider_configs": (3, 0, 0, 3), "providers": (2, 2, 0, 0),
    }
    problems = "\n".join(summary.problems)
    assert f"session '{LOST_SESSION}' not in the original" not in problems  # its requests recreated it
    assert f"session {LOST_SESSION} not in the original; an empty one was recreated" in problems
    assert "its request (id 9999) is missing in the original" in problems
    assert "its request has another response; a copy of the request holds this one" in problems
    assert "provider_configs: 3 rows not imported: this database has no provider_configs table" in (
        summary.notes
    )

    requests = {row["legacy_id"]: row for row in target_rows(database_url, "requests")}
    copy = requests["00000000-0000-4000-8000-000000000000#response:second-response"]
    first = requests["00000000-0000-4000-8000-000000000000"]
    assert {**copy, "id": 0, "request_id": "", "legacy_id": ""} == {
        **first, "id": 0, "request_id": "", "legacy_id": ""
    }
    assert requests["missing#response:orphan-response"]["provider"] == "unknown"
    lost = next(row for row in target_rows(database_url, "sessions") if row["legacy_id"] == LOST_SESSION)
    assert lost["retained"] and sum(row["session_id"] == lost["id"] for row in requests.values()) == 3
    providers = {row["name"]: row for row in target_rows(database_url, "providers")}
    assert {name: (row["type"], row["base_url"], row["enabled"], row["api_key_env"])
            for name, row in providers.items()} == {
        "lm-studio": ("lm-studio", "http://localhost:1234/v1", True, None),
        "qwen": ("qwen", "https://chat.qwen.ai", False, "QWEN_TOKEN"),
    }
    assert providers["lm-studio"]["created_at"] == 1761869000 * 1000
    assert_foreign_keys_hold(database_url)

    again = import_database(path=original, database_url=database_url, batch_size=25)
    assert again.total.imported == 0 and again.placeholders == 0
    assert counts(database_url) == {"sessions": 40, "requests": 122, "responses": 118, "settings": 2}
    assert again.tables["providers"].duplicates == 2


def test_a_file_with_both_schemas_imports_both(database_url: str, tmp_path: Path):
    original = build_v2(tmp_path / "half-migrated.db", sessions=10, requests=20)
    with sqlite3.connect(original) as connection:
        connection.executescript(V1_SCHEMA.replace("INSERT OR IGNORE", "-- "))
        connection.executemany(
            "INSERT INTO request_logs (request_id, provider, endpoint, method, request_body, response_body,"
            " status_code, duration_ms, error, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            v1_rows(15),
        )
    connection.close()

    summary = import_database(path=original, database_url=database_url)

    assert summary.schemas == ["v1", "v2"]
    assert counts(database_url)["requests"] == 35
    assert any("both request_logs (v1) and v2 tables" in note for note in summary.notes)
