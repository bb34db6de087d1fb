"""Usage reports: rollups agree with live SQL, notice changed history, and percentiles are nearest-rank."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.models import Response, UsageRollup, UsageRollupDay, UsageRollupHour, UsageRollupHourCell, now_ms
from app.services.history import records, rollups, stats
from app.services.history.usage_sql import UsageFilters, bucket, bucket_width
from tests.factories import DAY_MS, make_call, make_session

HOUR_MS = 3_600_000

TODAY = now_ms() // DAY_MS * DAY_MS


@pytest.fixture
def week(db_session):
    """Three calls a day over the last six whole days, plus one today."""
    session = make_session(db_session, "w", created_at=TODAY - 6 * DAY_MS)
    for day in range(1, 7):
        for n, (model, duration) in enumerate((("a", 10 * day), ("b", 200 + day), ("a", 5000 + day))):
            make_call(db_session, session, timestamp=TODAY - day * DAY_MS + n * 60_000, model=model,
                      duration_ms=duration, prompt_tokens=day, completion_tokens=n, stream=n == 1,
                      ttft_ms=day if n == 1 else None)
    make_call(db_session, session, timestamp=now_ms() - 1000, model="b", duration_ms=1)
    db_session.commit()
    return session


def report(db, **kwargs):
    db.expire_all()
    return stats.usage_report(db, filters=UsageFilters(**kwargs.pop("filters", {})), prices={}, **kwargs)


def summary(metrics) -> tuple:
    return (metrics.requests, metrics.prompt_tokens, metrics.completion_tokens, metrics.latency_ms,
            metrics.ttft_ms)


def test_rolled_up_days_and_hours_agree_with_live_sql(db_session, week):
    by_day = report(db_session, group_by="day")
    assert db_session.scalar(sa.select(sa.func.count()).select_from(UsageRollupDay)) >= 6
    by_hour = report(db_session, group_by="hour", limit=1000)  # closed hours from the hourly rollups
    assert db_session.scalar(sa.select(sa.func.count()).select_from(UsageRollupHour)) >= 6 * 24
    live = report(db_session, group_by="session")  # no rollup keeps sessions
    assert summary(by_day.totals) == summary(by_hour.totals) == summary(live.totals)
    assert [(g.start_ms, g.requests) for g in by_hour.groups][1:] == [
        (TODAY - day * DAY_MS, 3) for day in range(1, 7)]
    assert [g.requests for g in by_day.groups] == [1, 3, 3, 3, 3, 3, 3]
    assert by_day.groups[1].latency_ms == {"p50": 205, "p95": 5050, "p99": 5050}


def test_rollups_and_live_edges_add_up_with_filters(db_session, week):
    start = TODAY - 3 * DAY_MS + 30_000  # mid-day: that day is partly live, partly cut
    rolled = report(db_session, group_by="model", filters={"start_ms": start, "stream": False})
    assert [(g.key, g.requests) for g in rolled.groups] == [("a", 5), ("b", 1)]
    live = report(db_session, group_by="session", filters={"start_ms": start, "stream": False})
    assert summary(live.totals) == summary(rolled.totals)


def test_partial_days_come_from_closed_hours_and_the_rest_live(db_session, week):
    """A range from mid-day to mid-day: whole days from daily rollups, whole hours at both edges
    from hourly ones, the minutes left over live; the same totals as live SQL over the range."""
    start, end = TODAY - 5 * DAY_MS - 2 * HOUR_MS + 30_000, TODAY - DAY_MS + HOUR_MS + 90_000
    make_call(db_session, week, timestamp=start + 1000, model="b", duration_ms=7)  # in a partial hour: live
    db_session.commit()
    window = {"start_ms": start, "end_ms": end}
    rolled = report(db_session, filters=window)
    hours = db_session.scalars(sa.select(UsageRollupHour.hour).order_by(UsageRollupHour.hour)).all()
    assert hours == [TODAY - 5 * DAY_MS - HOUR_MS, TODAY - DAY_MS]  # the edges' whole hours
    assert summary(rolled.totals) == summary(report(db_session, group_by="session", filters=window).totals)
    assert rolled.totals.requests == 3 * 4 + 3 + 1  # days 2-5, day 1's first hour, the call in a partial hour
    by_model = report(db_session, group_by="model", filters={**window, "model": "a"})  # hours can't: live
    assert summary(by_model.totals) == summary(report(db_session, group_by="session", filters={
        **window, "model": "a"}).totals)


def test_a_changed_hour_is_recomputed_and_deleting_a_day_drops_its_hours(db_session, week):
    report(db_session, group_by="hour", limit=1000)
    hour = TODAY - 2 * DAY_MS
    make_call(db_session, week, timestamp=hour + 5, prompt_tokens=1000)  # an import into a rolled-up hour
    db_session.commit()
    again = report(db_session, group_by="hour", limit=1000)
    assert next(g for g in again.groups if g.start_ms == hour).prompt_tokens == 3 * 2 + 1000
    victim = db_session.scalar(sa.select(Response).where(Response.prompt_tokens == 1000))
    records.delete_request(db_session, victim.request_id)
    db_session.commit()
    assert db_session.get(UsageRollupHour, hour) is None
    assert not db_session.scalars(sa.select(UsageRollupHourCell).where(
        UsageRollupHourCell.hour >= hour, UsageRollupHourCell.hour < hour + DAY_MS)).all()


def test_history_changed_behind_the_rollups_is_noticed(db_session, week):
    assert report(db_session).totals.requests == 19
    # An import adds a call to a day already rolled up; the next report counts it.
    make_call(db_session, week, timestamp=TODAY - 4 * DAY_MS + 5, prompt_tokens=1000)
    db_session.commit()
    after = report(db_session, group_by="day")
    assert after.totals.requests == 20
    assert after.groups[4].prompt_tokens == 4 * 3 + 1000


def test_deleting_history_drops_the_days_it_touched(db_session, week):
    report(db_session)
    victim = db_session.scalar(sa.select(Response).where(Response.timestamp < TODAY - 5 * DAY_MS).limit(1))
    day = rollups.day_of(victim.timestamp)
    records.delete_request(db_session, victim.request_id)
    db_session.commit()
    assert db_session.get(UsageRollupDay, day) is None
    assert not db_session.scalars(sa.select(UsageRollup).where(UsageRollup.day == day)).all()
    assert report(db_session).totals.requests == 18


def test_the_open_day_is_never_rolled_up(db_session, week):
    report(db_session)
    assert db_session.get(UsageRollupDay, TODAY) is None


def test_runs_group_consecutive_days():
    days = [0, DAY_MS, 2 * DAY_MS, 5 * DAY_MS]
    assert rollups._runs(rollups.DAYS, days) == [(0, 3 * DAY_MS), (5 * DAY_MS, 6 * DAY_MS)]
    many = [n * DAY_MS for n in range(10)]
    assert rollups._runs(rollups.DAYS, many) == [(0, 7 * DAY_MS), (7 * DAY_MS, 10 * DAY_MS)]


def test_closed_days_are_whole_and_over():
    now = TODAY + 3_600_000
    assert rollups.closed_days(TODAY - 2 * DAY_MS, now, now=now) == (TODAY - 2 * DAY_MS, TODAY)
    assert rollups.closed_days(TODAY - 2 * DAY_MS + 1, now, now=now) == (TODAY - DAY_MS, TODAY)
    assert rollups.closed_days(TODAY - DAY_MS, TODAY - 2, now=now) == (TODAY - DAY_MS, TODAY - DAY_MS)
    # Just after midnight the day before is not settled yet.
    assert rollups.closed_days(TODAY - DAY_MS, TODAY + 60_000, now=TODAY + 60_000)[1] == TODAY - DAY_MS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0), (99, 99), (100, 100), (109, 100), (999, 990), (1234, 1200), (56_789, 56_000),
        (1_234_567, 1_200_000),
    ],
)
def test_buckets_keep_two_significant_digits(db_session, value, expected):
    assert db_session.scalar(sa.select(bucket(sa.literal(value)))) == expected
    assert expected <= value < expected + bucket_width(expected)


def test_percentiles_are_nearest_rank_on_bucket_middles(db_session):
    session = make_session(db_session, "p", created_at=TODAY)
    for duration in (10, 20, 30, 40, 1234):
        make_call(db_session, session, timestamp=now_ms() - 60_000, duration_ms=duration)
    db_session.commit()
    totals = report(db_session).totals
    # ranks: p50 -> 3rd (30), p95 and p99 -> 5th (1234, in the 1200-1299 bucket: its middle)
    assert totals.latency_ms == {"p50": 30, "p95": 1250, "p99": 1250}
    assert stats.bucket_value(None) is None


def test_percentiles_count_a_bucket_found_in_several_histograms_once_per_row(db_session):
    """Rollups and live spans can both hold (key, bucket): the running sum must add them up."""
    from app.services.history.usage_sql import percentiles

    def histogram(*rows):
        union = sa.union_all(*(
            sa.select(sa.literal(key).label("key"), sa.literal(bucket_).label("bucket"),
                      sa.literal(count).label("count"))
            for key, bucket_, count in rows
        )).subquery()
        return sa.select(union.c.key, union.c.bucket, union.c["count"])

    rollup = histogram(("a", 10, 3), ("a", 20, 1), ("b", 10, 1))
    live = histogram(("a", 20, 3), ("a", 30, 2), ("b", 40, 4))
    rows = {
        (row.total, row.key): (row.p50, row.p90)
        for row in percentiles(db_session, [rollup, live], (50, 90))
    }
    # a: 3 x 10, 4 x 20, 2 x 30 (n=9): the 5th is 20, the 9th 30. b: 1 x 10, 4 x 40 (n=5).
    # All: 4 x 10, 4 x 20, 2 x 30, 4 x 40 (n=14): the 7th is 20, the 13th 40.
    assert rows == {(0, "a"): (20, 30), (0, "b"): (40, 40), (1, None): (20, 40)}
