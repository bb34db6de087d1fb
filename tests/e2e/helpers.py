"""Reading what a gateway process wrote, for end-to-end assertions."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import requests
import sqlalchemy as sa
from llmock.testing import LLMockServer
from sqlalchemy.orm import Session, joinedload

from app.db import get_engine
from app.models import Request, Response


@dataclass
class Row:
    request: Request
    response: Response | None


def rows_for_session(url: str, session_id: str, *, expect: int = 1, timeout_s: float = 10.0) -> list[Row]:
    """The session's requests, responses and attempts, once ``expect`` responses exist (or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with Session(get_engine(url), expire_on_commit=False) as session:
            # One statement, so the response and its attempts are seen from the same commit.
            requests = session.scalars(
                sa.select(Request).where(Request.session_id == session_id).order_by(Request.id)
                .options(joinedload(Request.response), joinedload(Request.attempts))
            ).unique().all()
            rows = [Row(request, request.response) for request in requests]
        done = sum(row.response is not None for row in rows) >= expect
        if done or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def llmock_gateway_env(database_url: str, upstream: LLMockServer, **extra: str) -> dict[str, str]:
    """A gateway on ``database_url`` whose active provider (lm-studio) is the llmock ``upstream``."""
    return {
        "DATABASE_URL": database_url,
        "DEFAULT_PROVIDER": "lm-studio",
        "LM_STUDIO_BASE_URL": upstream.base_url("openai"),
        **extra,
    }


def gateway_env(database_url: str, upstream: LLMockServer, journal_dir, **extra: str) -> dict[str, str]:
    """``llmock_gateway_env`` with the audit journal in ``journal_dir`` and time for slow calls."""
    return llmock_gateway_env(database_url, upstream, AUDIT_JOURNAL_DIR=str(journal_dir), REQUEST_TIMEOUT="20000",
                              **extra)


def database_recovered(base: str) -> bool:
    """Every worker that answers says its database is fine and nothing waits in the journal."""
    states = {requests.get(base + "/health", headers={"Connection": "close"}, timeout=5).json()["database"]
              for _ in range(6)}
    return states == {"ok"}


SWITCH_BOUND_S = 1.0  # a provider switch must reach every worker within this (issue 4)
WORKERS = 2


def answered_by(base: str) -> tuple[str, str]:
    """One chat call on a new connection (so any worker may take it): (worker pid, provider)."""
    reply = requests.post(
        base + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "who?"}]},
        headers={"Connection": "close"}, timeout=10,
    )
    assert reply.status_code == 200, reply.text
    content = reply.json()["choices"][0]["message"]["content"] or ""
    return reply.headers["X-Gateway-Worker"], "mock" if content.startswith("Mock reply") else "lm-studio"


def calls_until_every_worker_answered(base: str, *, limit: int = 200) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    while len({pid for pid, _ in seen}) < WORKERS:
        assert len(seen) < limit, f"only workers {set(pid for pid, _ in seen)} answered {limit} calls"
        seen.append(answered_by(base))
    return seen


def assert_every_worker_switched(base: str, *, old: str, new: str, switched_at: float) -> float:
    """Keep calling for SWITCH_BOUND_S, then every worker must answer from ``new``.

    Returns how long after the switch the slowest worker still answered from ``old`` (s).
    """
    last_old: dict[str, float] = defaultdict(float)
    while (now := time.monotonic()) < switched_at + SWITCH_BOUND_S:
        pid, provider = answered_by(base)
        if provider == old:
            last_old[pid] = now - switched_at
    after = calls_until_every_worker_answered(base)
    assert {provider for _, provider in after} == {new}, after
    return max(last_old.values(), default=0.0)
