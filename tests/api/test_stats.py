"""Statistics: /v1/sessions/<id>/stats, /v1/responses/stats and /v1/stats/usage."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app import create_app
from app.config import ModelPrice
from app.models import now_ms
from tests.factories import DAY_MS, make_call, make_session

# Three days ago (UTC midnight): past days come from the rollups, recent ones are computed live.
DAY0 = now_ms() // DAY_MS * DAY_MS - 3 * DAY_MS
T0 = DAY0 + 1000


def iso(ms: int, fmt: str = "%Y-%m-%dT%H:%M:%S.%fZ") -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime(fmt)


@pytest.fixture
def usage(db_session):
    """Two days of calls: five on day 0 (two models), two on day 1."""
    a = make_session(db_session, "a", created_at=T0)
    b = make_session(db_session, "b", created_at=T0)
    for duration in (10, 20, 30, 40):
        make_call(db_session, a, timestamp=DAY0 + 3_600_000 + duration, duration_ms=duration,
                  prompt_tokens=100, completion_tokens=50)
    make_call(db_session, b, timestamp=DAY0 + 7_200_000, model="qwen", provider="lm-studio", stream=True,
              ttft_ms=7, status="error", finish_reason=None, prompt_tokens=0, completion_tokens=0,
              duration_ms=90, usage_estimated=True)
    make_call(db_session, b, timestamp=DAY0 + DAY_MS + 60_000, model="qwen", provider="lm-studio",
              stream=True, ttft_ms=3, duration_ms=60, prompt_tokens=1_000_000, completion_tokens=2_000_000)
    make_call(db_session, a, timestamp=DAY0 + DAY_MS + 120_000, status="incomplete", finish_reason=None,
              duration_ms=1234, prompt_tokens=10, completion_tokens=0)
    db_session.commit()


def test_session_stats(client, usage):
    body = client.get("/v1/sessions/b/stats").get_json()
    assert (body["session_id"], body["message_count"], body["created_at"]) == ("b", 1, T0)
    assert body["usage"] == {
        "total_responses": 2, "total_prompt_tokens": 1_000_000, "total_completion_tokens": 2_000_000,
        "total_tokens": 3_000_000, "avg_duration_ms": 75.0, "error_count": 1, "success_rate": 0.5,
    }


def test_session_stats_of_a_session_without_calls(client, db_session):
    make_session(db_session, "quiet", created_at=T0)
    db_session.commit()
    usage = client.get("/v1/sessions/quiet/stats").get_json()["usage"]
    assert (usage["total_responses"], usage["avg_duration_ms"], usage["success_rate"]) == (0, None, None)


def test_response_stats_over_everything_or_one_session(client, usage):
    everything = client.get("/v1/responses/stats").get_json()
    assert everything["session_id"] == "all"
    assert everything["statistics"]["total_responses"] == 7
    assert everything["statistics"]["success_rate"] == round(5 / 7, 4)
    assert everything["statistics"]["error_count"] == 1
    assert everything["statistics"]["avg_duration_ms"] == round((10 + 20 + 30 + 40 + 90 + 60 + 1234) / 7, 1)
    one = client.get("/v1/responses/stats?session_id=a").get_json()
    assert (one["session_id"], one["statistics"]["total_responses"], one["statistics"]["total_tokens"]) == (
        "a", 5, 610,
    )


def test_usage_totals(client, usage):
    body = client.get("/v1/stats/usage").get_json()
    assert (body["object"], body["group_by"], body["data"], body["currency"]) == ("usage", None, [], "USD")
    totals = body["totals"]
    assert (totals["requests"], totals["errors"], totals["incomplete"], totals["success_rate"]) == (
        7, 1, 1, round(5 / 7, 4),
    )
    assert (totals["prompt_tokens"], totals["completion_tokens"], totals["total_tokens"]) == (
        1_000_410, 2_000_200, 3_000_610,
    )
    assert totals["usage_estimated"] == 1
    assert totals["avg_duration_ms"] == round((10 + 20 + 30 + 40 + 90 + 60 + 1234) / 7, 1)
    # Nearest rank over 10, 20, 30, 40, 60, 90, 1234; 1234 is in the 1200-1299 bucket (2 digits).
    assert totals["latency_ms"] == {"p50": 40, "p95": 1250, "p99": 1250}
    assert totals["ttft_ms"] == {"p50": 3}


def test_usage_by_day_newest_first(client, usage):
    body = client.get("/v1/stats/usage?group_by=day").get_json()
    assert [(g["key"], g["start_ms"], g["requests"]) for g in body["data"]] == [
        (iso(DAY0 + DAY_MS, "%Y-%m-%d"), DAY0 + DAY_MS, 2), (iso(DAY0, "%Y-%m-%d"), DAY0, 5),
    ]
    day0 = body["data"][1]
    assert (day0["errors"], day0["ttft_ms"]) == (1, {"p50": 7})
    assert day0["latency_ms"] == {"p50": 30, "p95": 90, "p99": 90}


def test_usage_by_hour(client, usage):
    body = client.get("/v1/stats/usage?group_by=hour").get_json()
    hours = [DAY0 + DAY_MS, DAY0 + 2 * 3_600_000, DAY0 + 3_600_000]
    assert [(g["key"], g["requests"]) for g in body["data"]] == [
        (iso(hours[0], "%Y-%m-%dT%H:00Z"), 2), (iso(hours[1], "%Y-%m-%dT%H:00Z"), 1),
        (iso(hours[2], "%Y-%m-%dT%H:00Z"), 4),
    ]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("model", [("gpt-4o", 5, 610), ("qwen", 2, 3_000_000)]),
        ("provider", [("openai", 5, 610), ("lm-studio", 2, 3_000_000)]),
        ("session", [("a", 5, 610), ("b", 2, 3_000_000)]),
    ],
)
def test_usage_by_dimension_busiest_first(client, usage, group_by, expected):
    body = client.get(f"/v1/stats/usage?group_by={group_by}").get_json()
    assert [(g["key"], g["requests"], g["total_tokens"]) for g in body["data"]] == expected
    assert all(g["start_ms"] is None for g in body["data"])


@pytest.mark.parametrize(
    ("query", "requests"),
    [
        ("model=qwen", 2),
        ("provider=openai", 5),
        ("stream=true", 2),
        ("session_id=b", 2),
        (f"start_date={DAY0 + DAY_MS}", 2),
        (f"end_date={DAY0 + DAY_MS - 1}", 5),
        (f"start_date={iso(DAY0 + 7_200_000)}&end_date={iso(DAY0 + DAY_MS + 60_090)}", 2),
        (f"model=gpt-4o&stream=false&start_date={iso(DAY0 + DAY_MS, '%Y-%m-%d')}", 1),
    ],
)
def test_usage_filters(client, usage, query, requests):
    body = client.get(f"/v1/stats/usage?{query}&group_by=day").get_json()
    assert body["totals"]["requests"] == requests
    assert sum(group["requests"] for group in body["data"]) == requests


def test_usage_limit_caps_the_groups(client, usage):
    body = client.get("/v1/stats/usage?group_by=model&limit=1").get_json()
    assert ([g["key"] for g in body["data"]], body["has_more"]) == (["gpt-4o"], True)
    assert body["totals"]["requests"] == 7


def test_estimated_cost_from_the_price_table(make_settings, usage):
    prices = {"lm-studio/qwen": ModelPrice(prompt=1.0, completion=2.0)}
    client = create_app(make_settings(model_prices=prices)).test_client()
    body = client.get("/v1/stats/usage?group_by=model").get_json()
    gpt, qwen = body["data"]
    assert (qwen["estimated_cost_usd"], qwen["cost_complete"], qwen["unpriced_models"]) == (5.0, True, [])
    assert (gpt["estimated_cost_usd"], gpt["cost_complete"], gpt["unpriced_models"]) == (
        0.0, False, ["openai/gpt-4o"],
    )
    assert body["unpriced_models"] == ["openai/gpt-4o"]
    assert (body["totals"]["estimated_cost_usd"], body["totals"]["cost_complete"]) == (5.0, False)


def test_a_bare_model_name_prices_every_provider(make_settings, usage):
    prices = {"gpt-4o": ModelPrice(prompt=2.5, completion=10.0), "qwen": ModelPrice(prompt=0, completion=0)}
    client = create_app(make_settings(model_prices=prices)).test_client()
    totals = client.get("/v1/stats/usage").get_json()["totals"]
    assert totals["estimated_cost_usd"] == round((410 * 2.5 + 200 * 10.0) / 1_000_000, 6)
    assert totals["cost_complete"] is True


def test_usage_of_an_empty_database(client):
    body = client.get("/v1/stats/usage?group_by=day").get_json()
    assert (body["data"], body["totals"]["requests"], body["totals"]["latency_ms"]["p50"]) == ([], 0, None)
    assert body["totals"]["success_rate"] is None


def test_recent_calls_are_counted_live(client, db_session, usage):
    now = now_ms()
    make_call(db_session, make_session(db_session, "today", created_at=now), timestamp=now - 1000)
    db_session.commit()
    body = client.get("/v1/stats/usage?group_by=day").get_json()
    assert body["data"][0]["requests"] == 1
    assert body["totals"]["requests"] == 8
    statistics = client.get("/v1/responses/stats").get_json()["statistics"]
    assert (statistics["total_responses"], statistics["total_tokens"]) == (8, 3_000_610 + 15)


@pytest.mark.parametrize(
    ("query", "param", "code"),
    [
        ("group_by=week", "group_by", "invalid_group_by"),
        ("limit=0", "limit", "invalid_limit"),
        ("start_date=2024-01-02&end_date=2024-01-01", "start_date", "invalid_date_range"),
        ("end_date=soon", "end_date", "invalid_date_range"),
        ("stream=often", "stream", "invalid_stream"),
    ],
)
def test_bad_usage_parameters(client, query, param, code):
    reply = client.get(f"/v1/stats/usage?{query}")
    assert reply.status_code == 400
    error = reply.get_json()["error"]
    assert (error["param"], error["code"]) == (param, code)
