"""Issuing and managing keys: create, list, show, revoke, rotate (the API and the CLI call these)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidRequest, NotFound
from app.models import GatewayKey, GatewayKeyCounter, now_ms
from app.models.keys import BUDGET_PERIODS
from app.services.keys import tags as tag_rules
from app.services.keys.limits import period_start
from app.services.keys.secrets import hash_key, new_key, shown_prefix

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_PATTERNS = 32
DEFAULT_GRACE_S = 3600  # a rotated key keeps working this long unless told otherwise
MAX_GRACE_S = 30 * 86_400


class KeyNotFound(NotFound):
    code = "key_not_found"


class KeyExists(Conflict):
    code = "key_exists"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySpec:
    """What a new key is allowed: all optional but its name."""

    name: str
    budget_usd: float | None = None
    period: str = "month"
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] = ()
    tags: Mapping[str, str] | None = None


def check_spec(spec: KeySpec) -> KeySpec:
    """The spec, or InvalidRequest naming the field."""
    if not NAME_PATTERN.match(spec.name or ""):
        raise InvalidRequest("Invalid 'name': 1-64 of letters, digits, '_', '.', '-'.", param="name",
                             code="invalid_value")
    if spec.budget_usd is not None and not (0 <= spec.budget_usd < 1e12):
        raise InvalidRequest("Invalid 'budget_usd': a non-negative amount.", param="budget_usd", code="invalid_value")
    if spec.period not in BUDGET_PERIODS:
        raise InvalidRequest("Invalid 'period': day or month.", param="period", code="invalid_value")
    for field in ("rpm", "tpm"):
        value = getattr(spec, field)
        if value is not None and not (1 <= value <= 2**31 - 1):
            raise InvalidRequest(f"Invalid '{field}': a whole number from 1.", param=field, code="invalid_value")
    if len(spec.models) > MAX_PATTERNS or any(not p or len(p) > 255 or not p.isprintable() for p in spec.models):
        raise InvalidRequest(f"Invalid 'models': at most {MAX_PATTERNS} patterns of 1-255 printable characters.",
                             param="models", code="invalid_value")
    tag_rules.check_tags(spec.tags or {})
    return spec


def model_allowed(patterns: Iterable[str], *names: str | None) -> bool:
    """Whether any of ``names`` (the model as sent, provider/model as routed) matches a pattern."""
    patterns = tuple(patterns)
    if not patterns:
        return True
    return any(name and fnmatch.fnmatchcase(name, p) for p in patterns for name in names)


def create_key(db: Session, spec: KeySpec) -> tuple[dict[str, Any], str]:
    """A new key: its description and the key itself, which is shown this once and never stored."""
    check_spec(spec)
    if db.scalar(sa.select(GatewayKey.id).where(GatewayKey.name == spec.name)) is not None:
        raise KeyExists(f"A key named {spec.name!r} exists.", param="name")
    key = new_key()
    now = now_ms()
    row = GatewayKey(
        name=spec.name, prefix=shown_prefix(key), key_hash=hash_key(key), budget_usd=spec.budget_usd,
        budget_period=spec.period, rpm=spec.rpm, tpm=spec.tpm, models=list(spec.models) or None,
        tags=tag_rules.check_tags(spec.tags) if spec.tags else None, created_at=now,
    )
    db.add(row)
    db.flush()
    db.add(GatewayKeyCounter(key_id=row.id, period_start=period_start(now, spec.period), spent_usd=0.0,
                             reserved_usd=0.0, calls=0, minute_start=0, minute_requests=0, minute_tokens=0))
    db.flush()
    return describe(row, None), key


def get_key(db: Session, name: str) -> GatewayKey:
    row = db.scalar(sa.select(GatewayKey).where(GatewayKey.name == name))
    if row is None:
        raise KeyNotFound(f"No key named {name!r}.", param="name")
    return row


def list_keys(db: Session) -> list[dict[str, Any]]:
    counters = {c.key_id: c for c in db.scalars(sa.select(GatewayKeyCounter))}
    return [describe(row, counters.get(row.id)) for row in db.scalars(sa.select(GatewayKey).order_by(GatewayKey.name))]


def show_key(db: Session, name: str) -> dict[str, Any]:
    row = get_key(db, name)
    return describe(row, db.get(GatewayKeyCounter, row.id))


def revoke_key(db: Session, name: str) -> dict[str, Any]:
    """Refused from now on (every worker within a second), the rotated-out key too."""
    row = get_key(db, name)
    if row.revoked_at is None:
        row.revoked_at = now_ms()
    row.previous_hash, row.previous_valid_until = None, None
    db.flush()
    return show_key(db, name)


def rotate_key(db: Session, name: str, *, grace_s: int = DEFAULT_GRACE_S) -> tuple[dict[str, Any], str]:
    """A new key for the same name, budget and counters; the old one works ``grace_s`` more seconds."""
    if not (0 <= grace_s <= MAX_GRACE_S):
        raise InvalidRequest(f"Invalid 'grace_seconds': 0 to {MAX_GRACE_S}.", param="grace_seconds",
                             code="invalid_value")
    row = get_key(db, name)
    if row.revoked_at is not None:
        raise Conflict(f"Key {name!r} is revoked; create a new one.", param="name", code="key_revoked")
    key = new_key()
    now = now_ms()
    row.previous_hash = row.key_hash if grace_s else None
    row.previous_valid_until = now + grace_s * 1000 if grace_s else None
    row.key_hash, row.prefix, row.rotated_at = hash_key(key), shown_prefix(key), now
    db.flush()
    return show_key(db, name), key


def describe(row: GatewayKey, counter: GatewayKeyCounter | None) -> dict[str, Any]:
    """A key as listed: never the key itself, only its first characters."""
    now = now_ms()
    current = counter is not None and counter.period_start == period_start(now, row.budget_period)
    return {
        "name": row.name, "prefix": row.prefix, "budget_usd": row.budget_usd, "period": row.budget_period,
        "rpm": row.rpm, "tpm": row.tpm, "models": row.models or [], "tags": row.tags or {},
        "created_at": row.created_at, "rotated_at": row.rotated_at, "revoked_at": row.revoked_at,
        "previous_valid_until": row.previous_valid_until if (row.previous_valid_until or 0) > now else None,
        "status": "revoked" if row.revoked_at is not None else "active",
        "spent_usd": round(counter.spent_usd, 10) if current else 0.0,
        "calls": counter.calls if current else 0,
        "period_start": period_start(now, row.budget_period),
    }
