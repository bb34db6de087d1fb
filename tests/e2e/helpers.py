"""Reading what a gateway process wrote, for end-to-end assertions."""

from __future__ import annotations

import time
from dataclasses import dataclass

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
