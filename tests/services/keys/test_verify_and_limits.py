"""Key verification when the database goes away, and the counters' periods, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.db import get_engine
from app.errors import TooManyRequests
from app.services.keys import store
from app.services.keys.gate import Counters, KeyGate
from app.services.keys.limits import LimitStatements, period_end, period_start
from app.services.keys.verify import KeysUnavailable, KeyVerifier

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=1"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def issue(database_url: str, name: str, **limits) -> str:
    with Session(get_engine(database_url)) as db:
        _, key = store.create_key(db, store.KeySpec(name=name, **limits))
        db.commit()
    return key


def test_known_keys_keep_working_from_the_cache_and_unknown_ones_are_refused_when_the_database_is_away(
        database_url):
    known = issue(database_url, "known")
    later = issue(database_url, "later")  # exists, but this worker never verified it
    verifier = KeyVerifier(get_engine(database_url), fresh_s=0.0)
    assert verifier.lookup(known).name == "known"
    assert verifier.lookup("pr-" + "z" * 40) is None
    verifier.engine = sa.create_engine(UNREACHABLE)  # the database is gone: connections are refused
    assert verifier.lookup(known).name == "known"  # from the cache
    with pytest.raises(KeysUnavailable):
        verifier.lookup(later)
    with pytest.raises(KeysUnavailable):  # a key it knew to be unknown is not let in either
        verifier.lookup("pr-" + "z" * 40)
    gate = KeyGate(verifier=verifier, limits=LimitStatements(get_engine(database_url).dialect),
                   counters=Counters(get_engine(database_url), wait_s=1.0), mode="optional")
    refused = gate.identify(authorization=f"Bearer {later}", tag_headers={})
    assert refused.refusal is not None and refused.refusal.status == 401
    assert gate.identify(authorization=f"Bearer {known}", tag_headers={}).refusal is None
    assert gate.identify(authorization="Bearer sk-not-a-gateway-key", tag_headers={}).refusal is None
    verifier.stale_s = 0.0  # the cache's entry too old: refused as well
    with pytest.raises(KeysUnavailable):
        verifier.lookup(known)


def test_admission_counts_against_the_budget_atomically_and_renews_with_the_period(database_url):
    issue(database_url, "budgeted", budget_usd=1.0, period="day", rpm=1000)
    engine = get_engine(database_url)
    verifier = KeyVerifier(engine)
    with Session(engine) as db:
        key_hash = db.scalar(sa.text("SELECT key_hash FROM gateway_keys WHERE name = 'budgeted'"))
    info = verifier._load(key_hash)
    limits = LimitStatements(engine.dialect)
    counters = Counters(engine, wait_s=1.0)
    now = ms("2026-12-03T10:00:00")
    results = []
    for _ in range(3):
        counters.run(lambda cursor: results.append(limits.admit(cursor, key=info, now_ms=now, reserve=0.4, tokens=1)))
    assert [type(r).__name__ for r in results] == ["Reservation", "Reservation", "Reservation"]
    refused = []
    counters.run(lambda cursor: refused.append(limits.admit(cursor, key=info, now_ms=now, reserve=0.4, tokens=1)))
    assert isinstance(refused[0], TooManyRequests) and refused[0].code == "budget_exceeded"
    for reservation in results:  # the calls end costing 0.1 each: their reservations are released
        counters.run(lambda cursor, r=reservation: limits.settle(cursor, r.settle_params(cost=0.1, tokens=2)))
    again = []
    counters.run(lambda cursor: again.append(limits.admit(cursor, key=info, now_ms=now, reserve=0.4, tokens=1)))
    assert type(again[0]).__name__ == "Reservation"
    tomorrow = []
    counters.run(lambda cursor: tomorrow.append(
        limits.admit(cursor, key=info, now_ms=ms("2026-12-04T00:00:01"), reserve=0.9, tokens=1)))
    assert type(tomorrow[0]).__name__ == "Reservation"
    with engine.connect() as connection:
        spent, reserved = connection.execute(sa.text("SELECT spent_usd, reserved_usd FROM gateway_key_counters "
                                                     "WHERE key_id = :id"), {"id": info.id}).one()
    assert (spent, reserved) == (0.0, pytest.approx(0.9))  # a new day: yesterday's spend is not counted


def test_periods_are_utc_days_and_months():
    assert period_start(ms("2026-12-31T23:59:59"), "day") == ms("2026-12-31T00:00:00")
    assert period_start(ms("2026-12-31T23:59:59"), "month") == ms("2026-12-01T00:00:00")
    assert period_end(ms("2026-12-01T00:00:00"), "month") == ms("2027-01-01T00:00:00")
    assert period_end(ms("2026-02-01T00:00:00"), "month") == ms("2026-03-01T00:00:00")
