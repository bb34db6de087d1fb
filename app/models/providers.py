"""The upstream providers an operator configures at run time."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONText, now_ms


class ProviderRow(Base):
    """One upstream: its type, where it is, and the NAME of the variable holding its key."""

    __tablename__ = "providers"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(32))
    base_url: Mapped[str] = mapped_column(sa.String(2048))
    # The environment variable to read the key from; the key itself is never stored.
    api_key_env: Mapped[str | None] = mapped_column(sa.String(128))
    default_model: Mapped[str | None] = mapped_column(sa.String(255))
    # NULL: the gateway's REQUEST_TIMEOUT.
    timeout_ms: Mapped[int | None] = mapped_column(sa.Integer)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    # Type-specific settings, e.g. Qwen's {"cookies_env": "QWEN_COOKIES"}.
    options: Mapped[dict | None] = mapped_column(JSONText)
    created_at: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms)
    updated_at: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms, onupdate=now_ms)
