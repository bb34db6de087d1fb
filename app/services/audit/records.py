"""What the audit trail records of a call: the request as it came in, and how it ended."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from app.models import now_ms
from app.models.base import uuid7
from app.providers.base import Conversation

# Where a call's request record is kept (RequestRecord.stored).
STORED_DB = "db"
STORED_JOURNAL = "journal"
STORED_DEAD = "dead"


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
    reason: str | None = None  # why it failed without a status: unreachable, timeout, cut


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
    response_id: str | None = None  # the answer's public id when the client saw one (the Responses API's)
    cost_usd: float | None = None  # by MODEL_PRICES; None: the model has no price
    referable: bool = False  # a later call may name it (previous_response_id): committed before the answer ends


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
    stored: str | None = None  # STORED_DB, STORED_JOURNAL, STORED_DEAD; None: nowhere yet
    closed: bool = False
    # A keyed call's part in its key's counters (services.keys.gate.KeyUse): admitted with the
    # request row, settled with the response row.
    key_use: Any = None

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)


@dataclass(slots=True, frozen=True, kw_only=True)
class WorkerIdentity:
    """The gateway process that records calls: its rows carry ``id``; the sweep watches it."""

    id: str
    host: str
    pid: int
    started_at: int

    @classmethod
    def new(cls) -> WorkerIdentity:
        return cls(id=uuid7().replace("-", ""), host=socket.gethostname()[:255], pid=os.getpid(), started_at=now_ms())
