"""Daily usage rollups: what /v1/stats/usage reads for whole past days instead of a million rows.

Derived data only: any day can be dropped and recomputed from the responses at any time.
A day is rolled up once it is over (UTC); ``UsageRollupDay`` records how many responses it
covered, so a later change to that day's history (an import, a deletion) is noticed and the
day recomputed.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, now_ms

# UsageRollupLatency.kind values: total duration of every call, time to first token of streams.
LATENCY_KINDS = ("duration", "ttft")
# Keyed tables, read in key order: SQLite keeps the rows in the primary key's b-tree.
_CLUSTERED = {"sqlite_with_rowid": False}
# The sums every rollup cell holds, in the order reports add them up.
SUMS = ("requests", "errors", "incomplete", "prompt_tokens", "completion_tokens", "total_tokens",
        "usage_estimated", "durations", "duration_ms_sum")


class UsageCellMixin:
    """A cell's key after its period (provider, model, stream kind) and its counts and sums."""

    provider: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    model: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    stream: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    requests: Mapped[int] = mapped_column(sa.BigInteger)
    errors: Mapped[int] = mapped_column(sa.BigInteger)
    incomplete: Mapped[int] = mapped_column(sa.BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(sa.BigInteger)
    completion_tokens: Mapped[int] = mapped_column(sa.BigInteger)
    total_tokens: Mapped[int] = mapped_column(sa.BigInteger)
    usage_estimated: Mapped[int] = mapped_column(sa.BigInteger)
    durations: Mapped[int] = mapped_column(sa.BigInteger)  # responses with a duration
    duration_ms_sum: Mapped[int] = mapped_column(sa.BigInteger)


class UsageRollupDay(Base):
    """A UTC day whose rollups are complete."""

    __tablename__ = "usage_rollup_days"
    __table_args__ = _CLUSTERED

    day: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    responses: Mapped[int] = mapped_column(sa.BigInteger)
    computed_at: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms)


class UsageRollup(UsageCellMixin, Base):
    """Counts and token sums of one day's responses for one provider, model and stream kind."""

    __tablename__ = "usage_rollups"
    __table_args__ = _CLUSTERED

    day: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)


class UsageRollupLatency(Base):
    """A latency histogram: how many of those responses fell in each bucket (2 significant digits).

    The key starts with kind, day and bucket so that a report merges a day's buckets in key order.
    """

    __tablename__ = "usage_rollup_latencies"
    __table_args__ = _CLUSTERED

    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    day: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    provider: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    model: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    stream: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    count: Mapped[int] = mapped_column(sa.BigInteger)


class UsageRollupDayLatency(Base):
    """The same histograms over all of a day's responses: what an unfiltered report reads."""

    __tablename__ = "usage_rollup_day_latencies"
    __table_args__ = _CLUSTERED

    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    day: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(sa.BigInteger)


# Hourly rollups: the partial days at a report's edges (today, a range starting mid-day) are read
# from closed hours instead of the raw tables. Counts and the histograms over all models only:
# a report filtered or grouped by model reads those hours live.

class UsageRollupHour(Base):
    """A UTC hour whose rollups are complete."""

    __tablename__ = "usage_rollup_hours"
    __table_args__ = _CLUSTERED

    hour: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    responses: Mapped[int] = mapped_column(sa.BigInteger)
    computed_at: Mapped[int] = mapped_column(sa.BigInteger, default=now_ms)


class UsageRollupHourCell(UsageCellMixin, Base):
    """``UsageRollup``'s counts and sums for one hour."""

    __tablename__ = "usage_rollup_hour_cells"
    __table_args__ = _CLUSTERED

    hour: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)


class UsageRollupHourLatency(Base):
    """An hour's latency histogram over all its responses."""

    __tablename__ = "usage_rollup_hour_latencies"
    __table_args__ = _CLUSTERED

    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    hour: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(sa.BigInteger)
