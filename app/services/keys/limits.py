"""Budgets and rates held across workers and instances: one counter row per key, atomic statements.

Admission is one conditional UPDATE: it passes (and counts the call, reserving its estimated
cost) only while the key's spend plus the cost of its calls in flight is under its budget and
this UTC minute's calls and tokens are under its rpm and tpm. The database serialises the
UPDATEs of one row, so N workers on N instances cannot all pass on the same stale reading.
Settling at the call's end adds its cost, frees its reservation and corrects the tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from app.errors import TooManyRequests
from app.models import GatewayKeyCounter

MINUTE_MS = 60_000
UNLIMITED = 2**62  # binds for "no limit": comparisons stay typed, no NULL parameters
_c = GatewayKeyCounter.__table__.c


def period_start(now_ms: int, period: str) -> int:
    """The start (ms, UTC) of the day or month holding ``now_ms``."""
    moment = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
    return int(start.timestamp() * 1000)


def period_end(start_ms: int, period: str) -> int:
    start = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    if period == "day":
        return start_ms + 86_400_000
    if start.month == 12:
        following = start.replace(year=start.year + 1, month=1)
    else:
        following = start.replace(month=start.month + 1)
    return int(following.timestamp() * 1000)


@dataclass(slots=True, kw_only=True)
class Reservation:
    """What admission counted for one call, so that settling it undoes exactly that."""

    key_id: int
    period_start: int
    minute_start: int
    reserved: float
    tokens: int

    def settle_params(self, *, cost: float, tokens: int) -> dict[str, Any]:
        return {"kid": self.key_id, "pstart": self.period_start, "mstart": self.minute_start,
                "cost": float(cost), "reserved": float(self.reserved), "token_delta": int(tokens) - self.tokens}


def compile_sql(statement: Any, dialect: sa.Dialect) -> str:
    return str(statement.compile(dialect=dialect))


def _p(name: str, type_: sa.types.TypeEngine) -> sa.BindParameter:
    return sa.bindparam(name, type_=type_)


class LimitStatements:
    """The counter statements, compiled once for a dialect."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.postgresql = dialect.name == "postgresql"
        big, num = sa.BigInteger(), sa.Float()
        same_period = _c.period_start == _p("pstart", big)
        same_minute = _c.minute_start == _p("mstart", big)
        zero = sa.literal_column("0")
        admit = (
            sa.update(GatewayKeyCounter.__table__)
            .where(
                _c.key_id == _p("kid", big),
                sa.or_(~same_period, _c.spent_usd + _c.reserved_usd < _p("budget", num)),
                sa.or_(~same_minute, sa.and_(_c.minute_requests < _p("rpm", big),
                                              _c.minute_tokens < _p("tpm", big))),
            )
            .values(
                period_start=_p("pstart", big),
                spent_usd=sa.case((same_period, _c.spent_usd), else_=zero),
                reserved_usd=sa.case((same_period, _c.reserved_usd), else_=zero) + _p("reserve", num),
                calls=sa.case((same_period, _c.calls), else_=zero),
                minute_start=_p("mstart", big),
                minute_requests=sa.case((same_minute, _c.minute_requests), else_=zero) + sa.literal_column("1"),
                minute_tokens=sa.case((same_minute, _c.minute_tokens), else_=zero) + _p("tokens", big),
            )
            .returning(_c.key_id)
        )
        self.admit_sql = compile_sql(admit, dialect)
        # A call admitted in an earlier period than the row's counts nowhere; in a later one, it starts it.
        later = _c.period_start < _p("pstart", big)
        freed = _c.reserved_usd - _p("reserved", num)
        settle = (
            sa.update(GatewayKeyCounter.__table__)
            .where(_c.key_id == _p("kid", big), _c.period_start <= _p("pstart", big))
            .values(
                period_start=_p("pstart", big),
                spent_usd=sa.case((later, zero), else_=_c.spent_usd) + _p("cost", num),
                reserved_usd=sa.case((later, zero), (freed > zero, freed), else_=zero),
                calls=sa.case((later, zero), else_=_c.calls) + sa.literal_column("1"),
                minute_tokens=_c.minute_tokens + sa.case((same_minute, _p("token_delta", big)), else_=zero),
            )
        )
        self.settle_sql = compile_sql(settle, dialect)
        self.read_sql = compile_sql(
            sa.select(_c.period_start, _c.spent_usd, _c.reserved_usd, _c.minute_start, _c.minute_requests,
                      _c.minute_tokens).where(_c.key_id == _p("kid", big)), dialect)

    def admit(self, cursor: Any, *, key: Any, now_ms: int, reserve: float, tokens: int
              ) -> Reservation | TooManyRequests:
        """Count the call against ``key``'s limits; else the refusal (429) saying which."""
        reservation = Reservation(
            key_id=key.id, period_start=period_start(now_ms, key.budget_period),
            minute_start=now_ms - now_ms % MINUTE_MS, reserved=reserve, tokens=tokens,
        )
        if self.postgresql:
            # A counter need not wait for its WAL flush: the row's lock is held microseconds, not a
            # disk sync, so a key's calls do not queue behind each other's fsync. A crash may forget
            # the last few admissions (the recorded calls still hold their cost).
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute(self.admit_sql, {
            "kid": key.id, "pstart": reservation.period_start, "mstart": reservation.minute_start,
            "budget": UNLIMITED if key.budget_usd is None else float(key.budget_usd),
            "rpm": UNLIMITED if key.rpm is None else key.rpm, "tpm": UNLIMITED if key.tpm is None else key.tpm,
            "reserve": float(reserve), "tokens": int(tokens),
        })
        if cursor.fetchone() is not None:
            return reservation
        return self._refusal(cursor, key, reservation, now_ms)

    def settle(self, cursor: Any, params: dict[str, Any]) -> None:
        """Add a finished call's cost, in the transaction of its response row: counted exactly once."""
        cursor.execute(self.settle_sql, params)

    def _refusal(self, cursor: Any, key: Any, reservation: Reservation, now_ms: int) -> TooManyRequests:
        cursor.execute(self.read_sql, {"kid": key.id})
        row = cursor.fetchone()
        if row is not None and row[3] == reservation.minute_start and (
            (key.rpm is not None and row[4] >= key.rpm) or (key.tpm is not None and row[5] >= key.tpm)
        ):
            wait = math.ceil((reservation.minute_start + MINUTE_MS - now_ms) / 1000)
            what = "requests" if key.rpm is not None and row[4] >= key.rpm else "tokens"
            return TooManyRequests(
                f"Gateway key {key.prefix}... is over its rate ({what} per minute); retry after {wait} s.",
                code="rate_limit_exceeded", retry_after_s=wait)
        end = period_end(reservation.period_start, key.budget_period)
        return TooManyRequests(
            f"Gateway key {key.prefix}... has spent its budget of ${key.budget_usd} for this "
            f"{key.budget_period}; it renews at {datetime.fromtimestamp(end / 1000, tz=UTC):%Y-%m-%dT%H:%MZ}.",
            code="budget_exceeded", retry_after_s=math.ceil((end - now_ms) / 1000))
