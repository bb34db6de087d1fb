"""Chat calls fired at a real gateway, and the check that each left exactly its rows, contents intact."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
import sqlalchemy as sa

from app.db import get_engine
from tests.faults import wait_until


@dataclass
class Sent:
    """One call as the client saw it."""

    session_id: str
    text: str
    stream: bool
    status: int = 0
    request_id: str | None = None
    answer: str = ""
    seconds: float = 0.0
    error: dict | None = None


@dataclass
class Fired:
    calls: list[Sent] = field(default_factory=list)

    @property
    def answered(self) -> list[Sent]:
        return [call for call in self.calls if call.status == 200]

    def latencies(self) -> list[float]:
        return sorted(call.seconds for call in self.calls)


def chat(base: str, *, text: str, stream: bool, session_id: str | None = None, timeout: float = 60) -> Sent:
    sent = Sent(session_id=session_id or f"s-{uuid.uuid4()}", text=text, stream=stream)
    body = {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": text}]}
    started = time.perf_counter()
    reply = requests.post(base + "/v1/chat/completions", json=body, stream=stream, timeout=timeout,
                          headers={"X-Session-Id": sent.session_id, "Connection": "close"})
    sent.status, sent.request_id = reply.status_code, reply.headers.get("X-Request-Id")
    if reply.status_code != 200:
        sent.error = reply.json().get("error")
    elif stream:
        for line in reply.iter_lines():
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                for choice in chunk.get("choices") or ():
                    sent.answer += choice.get("delta", {}).get("content") or ""
    else:
        sent.answer = reply.json()["choices"][0]["message"]["content"]
    sent.seconds = time.perf_counter() - started
    return sent


def fire(base: str, count: int, *, concurrency: int = 8, tag: str = "call", pause_s: float = 0.0) -> Fired:
    """``count`` calls, every other one streamed, ``concurrency`` at a time; with ``pause_s`` a round
    of ``concurrency`` calls starts every ``pause_s`` seconds (spread over the time of a fault)."""
    start = time.monotonic()

    def one(number: int) -> Sent:
        if pause_s:
            time.sleep(max(0.0, start + pause_s * (number // concurrency) - time.monotonic()))
        return chat(base, text=f"{tag} {number}: {uuid.uuid4()}", stream=number % 2 == 1)

    with ThreadPoolExecutor(concurrency) as pool:
        return Fired(calls=list(pool.map(one, range(count))))


def assert_each_recorded_once(url: str, calls: list[Sent], *, within_s: float = 30.0) -> None:
    """Exactly one request row and one response row per call, none twice, contents as sent and answered."""
    ids = [call.request_id for call in calls]
    assert all(ids) and len(set(ids)) == len(ids), "every answer carries its own X-Request-Id"

    def rows():
        with get_engine(url).connect() as connection:
            found = connection.execute(
                sa.text(
                    "SELECT q.request_id, q.openai_request, s.status, s.openai_response, "
                    "(SELECT count(*) FROM responses r WHERE r.request_id = q.id) "
                    "FROM requests q LEFT JOIN responses s ON s.request_id = q.id "
                    "WHERE q.request_id IN :ids"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": ids},
            ).all()
        complete = len(found) == len(ids) and all(row[2] is not None for row in found)
        return found if complete else None

    found = wait_until(rows, timeout_s=within_s, interval_s=0.5)
    assert found, f"not every call was recorded within {within_s:g} s"
    by_id = {row[0]: row for row in found}
    for call in calls:
        _, openai_request, status, openai_response, responses = by_id[call.request_id]
        assert responses == 1
        assert json.loads(openai_request)["messages"][0]["content"] == call.text
        assert status == "ok", (call, status)
        assert json.loads(openai_response)["choices"][0]["message"]["content"] == call.answer


def row_counts(url: str) -> tuple[int, int]:
    with get_engine(url).connect() as connection:
        return tuple(connection.execute(sa.text(
            "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM responses)")).one())
