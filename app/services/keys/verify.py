"""Which key a bearer token is: from a short-lived in-process cache, else one indexed read.

Known keys keep working from the cache for a while when the database cannot be read; a key
the cache does not know is refused then (auth never fails open).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.models import GatewayKey, now_ms
from app.services.keys.secrets import hash_key

log = logging.getLogger(__name__)

FRESH_S = 1.0  # a revocation reaches every worker within this
STALE_S = 300.0  # how long a known key keeps working while the database cannot be read
MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    budget_usd: float | None
    budget_period: str
    rpm: int | None
    tpm: int | None
    models: tuple[str, ...]
    tags: dict[str, str]
    revoked: bool
    expires_at: int | None = None  # a rotated-out key: its grace ends then (ms)

    @property
    def limited(self) -> bool:
        return self.budget_usd is not None or self.rpm is not None or self.tpm is not None

    def usable(self, now: int) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


class KeysUnavailable(Exception):
    """The database cannot be read and the key is not in the cache."""


class KeyVerifier:
    def __init__(self, engine: Engine, *, fresh_s: float = FRESH_S, stale_s: float = STALE_S) -> None:
        self.engine = engine
        self.fresh_s, self.stale_s = fresh_s, stale_s
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()
        _keys = GatewayKey.__table__.c
        self._query = sa.select(
            _keys.id, _keys.name, _keys.prefix, _keys.budget_usd, _keys.budget_period, _keys.rpm, _keys.tpm,
            GatewayKey.models, GatewayKey.tags, _keys.revoked_at, _keys.key_hash, _keys.previous_valid_until,
        ).where(sa.or_(_keys.key_hash == sa.bindparam("h"), _keys.previous_hash == sa.bindparam("h")))

    def lookup(self, key: str) -> KeyInfo | None:
        """The key's description (None: no such key); KeysUnavailable when that cannot be told."""
        digest = hash_key(key)
        now = time.monotonic()
        entry = self._cache.get(digest)
        if entry is not None and now - entry[0] < self.fresh_s:
            return entry[1]
        try:
            info = self._load(digest)
        except sa.exc.DBAPIError as exc:
            if entry is not None and entry[1] is not None and now - entry[0] < self.stale_s:
                return entry[1]
            log.warning("gateway key not verifiable (database: %s): refused", type(exc.orig or exc).__name__)
            raise KeysUnavailable from exc
        with self._lock:
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.clear()
            self._cache[digest] = (now, info)
        return info

    def forget(self) -> None:
        """Drop the cache (after a change made by this process)."""
        self._cache.clear()

    def _load(self, digest: str) -> KeyInfo | None:
        with self.engine.connect() as connection:
            row: Any = connection.execute(self._query, {"h": digest}).first()
        if row is None:
            return None
        previous = row.key_hash != digest
        return KeyInfo(
            id=row.id, name=row.name, prefix=row.prefix, budget_usd=row.budget_usd, budget_period=row.budget_period,
            rpm=row.rpm, tpm=row.tpm, models=tuple(row.models or ()), tags=dict(row.tags or {}),
            revoked=row.revoked_at is not None,
            expires_at=(row.previous_valid_until or now_ms()) if previous else None,
        )
