"""Original Node gateway databases for the import tests, built from the original schemas.

v1 is seed 004's schema.sql verbatim; v2 is seed 001's requests/responses (qwen_request,
qwen_response), REFERENCE section 3's sessions and metadata, and the settings table
kept from v1 (seed 002).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.db import get_engine

TABLES = ("sessions", "requests", "responses")
BOOLEANS = {"stream", "retained", "usage_estimated", "client_disconnected"}

V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))
);
CREATE TABLE IF NOT EXISTS request_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    method TEXT NOT NULL,
    request_body TEXT,  -- JSON
    response_body TEXT, -- JSON
    status_code INTEGER,
    duration_ms INTEGER,
    error TEXT,
    created_at INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))
);
CREATE INDEX IF NOT EXISTS idx_request_logs_provider ON request_logs(provider);
CREATE INDEX IF NOT EXISTS idx_request_logs_created_at ON request_logs(created_at DESC);
CREATE INDEX IF NOT EXISTS idx_request_logs_request_id ON request_logs(request_id);
INSERT OR IGNORE INTO settings (key, value) VALUES ('active_provider', 'lm-studio');
"""

V2_SCHEMA = """
CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))
);
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  chat_id TEXT,
  parent_id TEXT,
  first_user_message TEXT,
  message_count INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  last_accessed INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  session_id TEXT NOT NULL,
  request_id TEXT NOT NULL UNIQUE,
  timestamp INTEGER NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  openai_request TEXT NOT NULL,
  qwen_request TEXT NOT NULL,
  model TEXT NOT NULL,
  stream BOOLEAN NOT NULL,
  created_at INTEGER NOT NULL,
  FOREIGN KEY (session_id) REFERENCES sessions(id) ON DELETE CASCADE
);
CREATE TABLE responses (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  request_id INTEGER NOT NULL,
  session_id TEXT NOT NULL,
  response_id TEXT NOT NULL UNIQUE,
  timestamp INTEGER NOT NULL,
  qwen_response TEXT,
  openai_response TEXT,
  parent_id TEXT,
  completion_tokens INTEGER,
  prompt_tokens INTEGER,
  total_tokens INTEGER,
  finish_reason TEXT,
  error TEXT,
  duration_ms INTEGER,
  created_at INTEGER NOT NULL,
  FOREIGN KEY (request_id) REFERENCES requests(id) ON DELETE CASCADE,
  FOREIGN KEY (session_id) REFERENCES sessions(id) ON DELETE CASCADE
);
CREATE INDEX idx_sessions_expires_at ON sessions(expires_at);
CREATE INDEX idx_sessions_chat_id ON sessions(chat_id);
CREATE INDEX idx_sessions_created_at ON sessions(created_at);
CREATE INDEX idx_requests_session_id ON requests(session_id);
CREATE INDEX idx_requests_timestamp ON requests(timestamp);
CREATE INDEX idx_requests_request_id ON requests(request_id);
CREATE INDEX idx_requests_created_at ON requests(created_at);
CREATE INDEX idx_responses_request_id ON responses(request_id);
CREATE INDEX idx_responses_session_id ON responses(session_id);
CREATE INDEX idx_responses_response_id ON responses(response_id);
CREATE INDEX idx_responses_timestamp ON responses(timestamp);
CREATE INDEX idx_responses_created_at ON responses(created_at);
INSERT INTO metadata (key, value) VALUES ('schema_version', '2');
INSERT INTO settings (key, value, updated_at) VALUES ('active_provider', 'qwen', 1761869000);
"""

V1_START_S = 1_761_869_496
V2_START_MS = 1_761_900_000_000
MALFORMED = '{"model": "qwen3-max", "messages": [{"role": "user", "content": "cut'


def _chat_body(i: int, *, stream: bool) -> str:
    return json.dumps({
        "model": "qwen3-max" if i % 2 else "llama-3.1-8b",
        "messages": [{"role": "user", "content": f"question {i}"}],
        "stream": stream,
    })


def _answer(i: int, *, usage: dict | None, finish: str = "stop") -> str:
    body = {
        "id": f"chatcmpl-{i}", "object": "chat.completion", "model": "qwen3-max",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {i}"},
                     "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body)


def v1_rows(count: int) -> list[tuple]:
    """request_logs rows: chats, streams, errors, model lists, NULL and zero tokens, bad JSON."""
    rows = []
    for i in range(count):
        request_id = f"{1761869496793 + i}-r{i:05d}"
        provider = ("lm-studio", "qwen", "openai")[i % 3]
        created = V1_START_S + i * 7
        if i % 10 == 3:  # a failed call: upstream error, nothing answered
            rows.append((request_id, provider, "/v1/chat/completions", "POST", _chat_body(i, stream=False),
                         None, 502, 1200 + i, f"connect ECONNREFUSED 127.0.0.1:1234 ({i})", created))
        elif i % 10 == 5:  # a stream: the original never saw a JSON answer
            rows.append((request_id, provider, "/v1/chat/completions", "POST", _chat_body(i, stream=True),
                         None, 200, 3000 + i, None, created))
        elif i % 10 == 7:  # GET /v1/models
            rows.append((request_id, provider, "/v1/models", "GET", "{}",
                         json.dumps({"object": "list", "data": [{"id": "m"}]}), 200, 8, None, created))
        elif i % 10 == 9:  # answered without usage: tokens unknown (NULL)
            rows.append((request_id, provider, "/v1/chat/completions", "POST", _chat_body(i, stream=False),
                         _answer(i, usage=None), 200, 300 + i, None, created))
        else:
            usage = {"prompt_tokens": 10 + i, "completion_tokens": 0 if i % 10 == 1 else 5 + i,
                     "total_tokens": 15 + 2 * i if i % 10 != 1 else 10 + i}
            rows.append((request_id, provider, "/v1/chat/completions", "POST", _chat_body(i, stream=False),
                         _answer(i, usage=usage), None if i % 10 == 8 else 200, 150 + i, None, created))
    rows[11] = (*rows[11][:4], MALFORMED, *rows[11][5:])
    request_id, provider, endpoint, method, request_body, _, _, duration, _, created = rows[12]
    rows[12] = (request_id, provider, endpoint, method, request_body, "<html>Bad Gateway</html>", 502,
                duration, "upstream said 502", created)
    return rows


def build_v1(path: Path, *, count: int = 120) -> Path:
    """A v1 database (seed 004's schema) with ``count`` request_logs rows."""
    return write_v1(path, v1_rows(count))


def write_v1(path: Path, rows: Iterable[tuple]) -> Path:
    """A v1 database (seed 004's schema) holding ``rows`` (request_logs columns but ``id``)."""
    connection = sqlite3.connect(path)
    with connection:
        connection.executescript(V1_SCHEMA)
        connection.executemany(
            "INSERT INTO request_logs (request_id, provider, endpoint, method, request_body, response_body,"
            " status_code, duration_ms, error, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    connection.close()
    return path


def build_v2(path: Path, *, sessions: int = 40, requests: int = 120) -> Path:
    """A v2 database: sessions with continuity fields, requests (some unanswered), responses."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA foreign_keys = ON")
    with connection:
        connection.executescript(V2_SCHEMA)
        for s in range(sessions):
            created = V2_START_MS + s * 60_000
            connection.execute(
                "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?)",
                (f"{s:032x}", f"chat-{s}" if s % 4 else None, f"parent-{s}" if s % 4 else None,
                 f"question {s}", 3, created, created + 30_000, created + 1_830_000),
            )
        for i in range(requests):
            session = f"{i % sessions:032x}"
            stamp = V2_START_MS + i * 1_000
            stream = i % 5 == 2
            qwen = {"stream": stream, "incremental_output": True, "chat_id": f"chat-{i % sessions}",
                    "chat_mode": "guest", "model": "qwen3-max", "parent_id": None,
                    "messages": [{"role": "user", "content": f"question {i}"}]}
            openai_request = MALFORMED if i == 17 else _chat_body(i, stream=stream)
            connection.execute(
                "INSERT INTO requests (session_id, request_id, timestamp, method, path, openai_request,"
                " qwen_request, model, stream, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (session, f"00000000-0000-4000-8000-{i:012d}", stamp, "POST", "/v1/chat/completions",
                 openai_request, json.dumps(qwen), "qwen3-max", 1 if stream else 0, stamp),
            )
            if i % 30 == 29:  # the process died before the answer: a request without response
                continue
            error = f"Qwen API error: 429 rate limited ({i})" if i % 10 == 4 else None
            usage = None if error or i % 10 == 6 else (10 + i, 0 if i % 10 == 8 else 20 + i)
            connection.execute(
                "INSERT INTO responses (request_id, session_id, response_id, timestamp, qwen_response,"
                " openai_response, parent_id, completion_tokens, prompt_tokens, total_tokens,"
                " finish_reason, error, duration_ms, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (i + 1, session, f"10000000-0000-4000-8000-{i:012d}", stamp + 900,
                 None if stream or error else json.dumps({"success": True, "data": {"parent_id": f"p{i}"}}),
                 None if error else _answer(i, usage=None), None if error else f"p{i}",
                 usage and usage[1], usage and usage[0], usage and usage[0] + usage[1],
                 "error" if error else "stop", error, 900 + i, stamp + 900),
            )
    connection.close()
    return path


def source_rows(path: Path, table: str) -> list[dict[str, Any]]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    rows = [dict(row) for row in connection.execute(f"SELECT * FROM {table} ORDER BY id")]
    connection.close()
    return rows


def target_rows(url: str, table: str) -> list[dict[str, Any]]:
    """Rows exactly as stored: bodies as text, booleans as bool."""
    with get_engine(url).connect() as connection:
        rows = [dict(row) for row in connection.execute(sa.text(f"SELECT * FROM {table}")).mappings()]
    return [{key: bool(value) if key in BOOLEANS else value for key, value in row.items()} for row in rows]


def counts(url: str) -> dict[str, int]:
    with get_engine(url).connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in (*TABLES, "settings")
        }


def assert_foreign_keys_hold(url: str) -> None:
    with get_engine(url).connect() as connection:
        if connection.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        orphans = connection.execute(sa.text(
            "SELECT count(*) FROM responses r LEFT JOIN requests q ON q.id = r.request_id "
            "LEFT JOIN sessions s ON s.id = r.session_id WHERE q.id IS NULL OR s.id IS NULL"
        )).scalar_one()
        orphans += connection.execute(sa.text(
            "SELECT count(*) FROM requests q LEFT JOIN sessions s ON s.id = q.session_id WHERE s.id IS NULL"
        )).scalar_one()
    assert orphans == 0
