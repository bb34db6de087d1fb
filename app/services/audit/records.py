"""What the audit trail records of a call: the request as it came in, and how it ended."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from app.providers.base import Conversation


def dumps(value: Any) -> str | None:
    """A body as stored: text as it is, anything else as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True, kw_only=True)
class AttemptRecord:
    """One upstream call, as the attempts table keeps it."""

    number: int
    provider: str
    model: str
    started_at: int
    duration_ms: int = 0
    status_code: int | None = None
    error: str | None = None


@dataclass(slots=True, kw_only=True)
class Outcome:
    """How a call ended, as the response row records it."""

    status: str
    status_code: int | None
    openai_response: dict[str, Any] | None = None
    provider_response: dict[str, Any] | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    usage_estimated: bool = False
    error: str | None = None
    ttft_ms: int | None = None
    client_disconnected: bool = False
    parent_id: str | None = None
    chat_id: str | None = None
    provider: str | None = None  # the one that answered (or failed last)
    attempts: list[AttemptRecord] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class RequestRecord:
    """A request as written (or still to be written) to the audit trail."""

    request_id: str
    session_id: str
    conversation: Conversation
    started_ms: int
    started: float
    session_row: dict[str, Any] = field(default_factory=dict)
    request_row: dict[str, Any] = field(default_factory=dict)
    db_id: int | None = None
    closed: bool = False

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)
