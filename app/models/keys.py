"""Gateway keys: who may call models, within which budget and rate, and their shared counters."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, JSONText, now_ms

# GatewayKey.budget_period values.
BUDGET_PERIODS = ("day", "month")


class GatewayKey(Base):
    """A team's key: only its SHA-256 is kept, and its first characters to tell keys apart."""

    __tablename__ = "gateway_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # After a rotation the replaced key keeps working until previous_valid_until (ms).
    previous_hash: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    previous_valid_until: Mapped[int | None] = mapped_column(sa.BigInteger)
    budget_usd: Mapped[float | None] = mapped_column(sa.Float)
    budget_period: Mapped[str] = mapped_column(sa.String(8), default="month")
    rpm: Mapped[int | None] = mapped_column(sa.Integer)
    tpm: Mapped[int | None] = mapped_column(sa.Integer)
    models: Mapped[list | None] = mapped_column(JSONText)  # fnmatch patterns; NULL: every model
    tags: Mapped[dict | None] = mapped_column(JSONText)  # default tags of its calls
    created_at: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms)
    rotated_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(sa.BigInteger)


class GatewayKeyCounter(Base):
    """A key's spend in its budget period and its calls and tokens in the current UTC minute.

    One row per key, changed by single atomic statements (``services/keys/limits.py``), so every
    worker of every instance on the database counts against the same numbers.
    """

    __tablename__ = "gateway_key_counters"

    key_id: Mapped[int] = mapped_column(
        sa.ForeignKey("gateway_keys.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    period_start: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    spent_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    # Estimated cost of the calls admitted and not yet finished: admission counts it as spent.
    reserved_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    calls: Mapped[int] = mapped_column(sa.Integer, default=0)
    minute_start: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    minute_requests: Mapped[int] = mapped_column(sa.Integer, default=0)
    minute_tokens: Mapped[int] = mapped_column(sa.Integer, default=0)
