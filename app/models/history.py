"""The audit trail: sessions, the requests made in them, one response per request, and retried attempts."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, BigId, JSONText, now_ms

# Response.status values: ok, error (the call failed), incomplete (the stream was cut, or the
# gateway shut down while it ran), interrupted (the process handling the call died; found by the sweep).
RESPONSE_STATUSES = ("ok", "error", "incomplete", "interrupted")
STATUS_CHECK = "status IN ('ok', 'error', 'incomplete', 'interrupted')"


# Every index is written on the hot path (one page per index per row), so each
# one here serves a query the history API or CLI runs: time ranges, a session's
# rows, per-model and per-provider stats, expiry.


class LegacyMixin:
    """Where an imported row came from (node-v1, node-v2 and its id there); NULL for the gateway's own."""

    legacy_source: Mapped[str | None] = mapped_column(sa.String(32))
    legacy_id: Mapped[str | None] = mapped_column(sa.Text)


def legacy_index(table: str) -> sa.Index:
    """Unique original ids per source, so a second import adds nothing.

    Partial: the gateway's own rows (NULL) stay out of it and cost the hot path no index write.
    """
    where = sa.text("legacy_id IS NOT NULL")
    return sa.Index(
        f"ix_{table}_legacy_source_legacy_id", "legacy_source", "legacy_id",
        unique=True, sqlite_where=where, postgresql_where=where,
    )


class ChatSession(LegacyMixin, Base):
    """A conversation; expiry ends its continuity but never deletes its history."""

    __tablename__ = "sessions"
    __table_args__ = (legacy_index("sessions"),)

    id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    chat_id: Mapped[str | None] = mapped_column(sa.String(128))
    parent_id: Mapped[str | None] = mapped_column(sa.String(128))
    first_user_message: Mapped[str | None] = mapped_column(sa.Text)
    message_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms, index=True)
    last_accessed: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms)
    # Not indexed: every chat call moves it, and an index entry moved per call cost the hot
    # path ~7% of its SQLite work; only expiry cleanup, a rare maintenance pass, filters on it.
    expires_at: Mapped[int] = mapped_column(sa.BigInteger)
    # Retained sessions (imported history) are never deleted by expiry cleanup; a server
    # default so the hot path, which binds raw SQL, need not name it.
    retained: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())

    requests: Mapped[list[Request]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True
    )


class Request(LegacyMixin, Base):
    """One call to /v1/chat/completions, written before the upstream is called."""

    __tablename__ = "requests"
    __table_args__ = (
        sa.Index("ix_requests_model_timestamp", "model", "timestamp"),
        sa.Index("ix_requests_provider_timestamp", "provider", "timestamp"),
        legacy_index("requests"),
        sa.Index("ix_requests_stream_timestamp", "stream", "timestamp"),
        # Partial: calls without a key cost the hot path no index write.
        sa.Index("ix_requests_key_id_timestamp", "key_id", "timestamp",
                 sqlite_where=sa.text("key_id IS NOT NULL"), postgresql_where=sa.text("key_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    request_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    timestamp: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms, index=True)
    method: Mapped[str] = mapped_column(sa.String(8), default="POST")
    path: Mapped[str] = mapped_column(sa.String(255))
    openai_request: Mapped[dict | None] = mapped_column(JSONText)
    provider_request: Mapped[dict | None] = mapped_column(JSONText)
    provider: Mapped[str] = mapped_column(sa.String(64))
    model: Mapped[str] = mapped_column(sa.String(255))
    stream: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # Equal to timestamp for rows the gateway writes; kept for the original's shape.
    created_at: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms)
    # The gateway process that handled the call (audit_workers.id): the sweep ends its open
    # calls when it dies. NULL for imported rows.
    worker_id: Mapped[str | None] = mapped_column(sa.String(40))
    # What the gateway changed so that the database would take the row (NUL escaped, ...).
    repaired: Mapped[str | None] = mapped_column(sa.Text)
    # The gateway key the call came with (gateway_keys.id; NULL: none), and its tags as a JSON object.
    key_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    tags: Mapped[dict | None] = mapped_column(JSONText)
    # The OpenTelemetry trace of the call (32 hex digits); NULL when tracing is off.
    trace_id: Mapped[str | None] = mapped_column(sa.String(32))

    session: Mapped[ChatSession] = relationship(back_populates="requests")
    response: Mapped[Response | None] = relationship(
        back_populates="request", cascade="all, delete-orphan", passive_deletes=True
    )
    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="request", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Attempt.attempt",
    )


class Response(LegacyMixin, Base):
    """How a request ended, whatever the way: exactly one per request."""

    __tablename__ = "responses"
    __table_args__ = (
        sa.CheckConstraint(STATUS_CHECK, name="status_known"),
        legacy_index("responses"),
        # Covers usage statistics over a time range: aggregates read the index, not the bodies.
        sa.Index(
            "ix_responses_timestamp_usage", "timestamp", "status", "duration_ms", "ttft_ms",
            "prompt_tokens", "completion_tokens", "total_tokens", "usage_estimated", "request_id",
        ),
        # The requests with a given outcome (and model), without reading response rows.
        sa.Index("ix_responses_outcome", "status", "model", "request_id", "finish_reason", "duration_ms"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("requests.id", ondelete="CASCADE"), unique=True
    )
    # The session of its request, kept for readers of the row; queries by session go through
    # requests.session_id (a foreign key and index here too cost the hot path a page per commit).
    session_id: Mapped[str] = mapped_column(sa.String(128))
    response_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    # A copy of the request's model, so that an outcome and a model filter meet in one index.
    model: Mapped[str | None] = mapped_column(sa.String(255))
    timestamp: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms)
    provider_response: Mapped[dict | None] = mapped_column(JSONText)
    openai_response: Mapped[dict | None] = mapped_column(JSONText)
    parent_id: Mapped[str | None] = mapped_column(sa.String(128))
    prompt_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    completion_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    total_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    usage_estimated: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    finish_reason: Mapped[str | None] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16))
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)
    # The provider that produced this answer: a fallback's, when the routed one failed.
    provider: Mapped[str | None] = mapped_column(sa.String(64))
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer)
    ttft_ms: Mapped[int | None] = mapped_column(sa.Integer)
    client_disconnected: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms)
    repaired: Mapped[str | None] = mapped_column(sa.Text)
    # What the call cost by MODEL_PRICES when it ended (NULL: its model has no price).
    cost_usd: Mapped[float | None] = mapped_column(sa.Float)

    request: Mapped[Request] = relationship(back_populates="response")


class Attempt(Base):
    """One upstream call of a request that needed more than one (retries, fallbacks).

    A request answered by its first call has no attempt rows: its request and
    response rows already say everything, and the hot path writes one row less.
    """

    __tablename__ = "attempts"
    # The unique index serves lookups by request too: no separate index on request_id.
    __table_args__ = (sa.UniqueConstraint("request_id", "attempt"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("requests.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(sa.Integer)  # 1, 2, ... in the order they were made
    provider: Mapped[str] = mapped_column(sa.String(64))
    model: Mapped[str] = mapped_column(sa.String(255))
    status_code: Mapped[int | None] = mapped_column(sa.Integer)  # NULL: no HTTP answer at all
    error: Mapped[str | None] = mapped_column(sa.Text)
    duration_ms: Mapped[int] = mapped_column(sa.Integer)
    started_at: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms)

    request: Mapped[Request] = relationship(back_populates="attempts")


class AuditWorker(Base):
    """A gateway process that records calls, and when it was last seen alive.

    Each worker rewrites its row every few seconds. When a row goes stale (or the
    process is gone from this host), the sweep gives that worker's open calls
    their ending, ``interrupted``.
    """

    __tablename__ = "audit_workers"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int] = mapped_column(sa.Integer)
    started_at: Mapped[int] = mapped_column(sa.BigInteger)
    seen_at: Mapped[int] = mapped_column(sa.BigInteger)
    # The start of its oldest call still open when last seen: the sweep reads from there.
    oldest_open_at: Mapped[int] = mapped_column(sa.BigInteger)
