"""Synthetic audit trail for the history benchmark: sessions, requests and responses at scale.

Rows go in with raw sqlite3 ``executemany`` in large transactions (the ORM would take an hour
for a million rows). Sizes and mixes are meant to look like a busy gateway's: ~1.5 KB JSON
per stored body, a few models over two providers, 60 % streams, 4 % errors, 2 % cut streams.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
import uuid

from app import migrate
from app.db import dispose_engines

DAY_MS = 86_400_000
MODELS = (
    ("lm-studio", "qwen2.5-7b-instruct"),
    ("lm-studio", "llama-3.1-8b-instruct"),
    ("lm-studio", "mistral-7b-instruct"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4.1-mini"),
)
WORDS = (
    "the gateway routes each call to the active provider and records the request the response "
    "tokens latency errors streams sessions conversation audit trail model usage cost debug "
    "summarize explain refactor function database index query page cursor deploy worker"
).split()
BATCH = 20_000


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def fill(path: str, *, responses: int, days: int = 90, seed: int = 3) -> None:
    """Create the schema at ``path`` (Alembic head) and fill it with ``responses`` calls."""
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    dispose_engines()
    rng = random.Random(seed)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-1000000")
    end = int(time.time() * 1000)
    start = end - days * DAY_MS
    step = (end - start) / responses
    session_rows: list[tuple] = []
    request_rows: list[tuple] = []
    response_rows: list[tuple] = []
    session_id = None
    left_in_session = 0
    session_number = 0
    started = time.perf_counter()
    for index in range(1, responses + 1):
        timestamp = int(start + index * step)
        if left_in_session == 0:
            session_number += 1
            session_id = f"session-{session_number:07d}"
            left_in_session = min(int(rng.expovariate(1 / 8)) + 1, 60)
            turns = left_in_session
            session_rows.append((
                session_id, None, None, _text(rng, 80), turns, timestamp,
                timestamp + turns * 60_000, timestamp + turns * 60_000 + 1_800_000,
            ))
        left_in_session -= 1
        provider, model = MODELS[min(int(rng.expovariate(0.7)), len(MODELS) - 1)]
        stream = rng.random() < 0.6
        prompt = _text(rng, rng.randint(900, 1600))
        body = {"model": model, "stream": stream, "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": prompt},
        ]}
        request_rows.append((
            index, session_id, str(uuid.UUID(int=rng.getrandbits(128), version=4)), timestamp,
            "POST", "/v1/chat/completions", _dumps(body), _dumps({**body, "model": model}),
            provider, model, stream, timestamp,
        ))
        roll = rng.random()
        status = "ok" if roll < 0.94 else "error" if roll < 0.98 else "incomplete"
        duration = int(rng.lognormvariate(7.3, 0.8))
        prompt_tokens = len(prompt) // 4 + 12
        completion_tokens = rng.randint(20, 600) if status != "error" else 0
        answer = _text(rng, completion_tokens * 4) if status != "error" else None
        finish = None if status == "error" else rng.choices(("stop", "length", "tool_calls"), (90, 6, 4))[0]
        completion = None if answer is None else {
            "id": f"chatcmpl-{index}", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
        error = "upstream timed out after 120000 ms" if status == "error" else None
        response_rows.append((
            index, index, session_id, str(uuid.UUID(int=rng.getrandbits(128), version=4)), model,
            timestamp + duration, None if stream or completion is None else _dumps(completion),
            None if completion is None else _dumps(completion), None,
            prompt_tokens, completion_tokens, prompt_tokens + completion_tokens,
            stream and rng.random() < 0.05, finish, status,
            200 if status != "error" else 504, error, duration,
            int(duration * rng.uniform(0.05, 0.3)) if stream else None,
            status == "incomplete" and rng.random() < 0.5, timestamp + duration,
        ))
        if index % BATCH == 0 or index == responses:
            _flush(connection, session_rows, request_rows, response_rows)
            print(f"\r  filled {index:,}/{responses:,} ({time.perf_counter() - started:.0f} s)",
                  end="", flush=True)
    print()
    # No ANALYZE: the gateway never runs it, so the planner sees what it sees in production.
    connection.commit()
    connection.close()


def _flush(connection: sqlite3.Connection, sessions: list, requests: list, responses: list) -> None:
    with connection:
        connection.executemany(
            "INSERT INTO sessions (id, chat_id, parent_id, first_user_message, message_count, "
            "created_at, last_accessed, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            sessions,
        )
        connection.executemany(
            "INSERT INTO requests (id, session_id, request_id, timestamp, method, path, "
            "openai_request, provider_request, provider, model, stream, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            requests,
        )
        connection.executemany(
            "INSERT INTO responses (id, request_id, session_id, response_id, model, timestamp, "
            "provider_response, openai_response, parent_id, prompt_tokens, completion_tokens, "
            "total_tokens, usage_estimated, finish_reason, status, status_code, error, duration_ms, "
            "ttft_ms, client_disconnected, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            responses,
        )
    sessions.clear()
    requests.clear()
    responses.clear()
