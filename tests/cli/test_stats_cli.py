"""``stats``: the usage report in a table or JSON."""

from __future__ import annotations

import json

import pytest

from app.models import now_ms
from tests.cli.conftest import failed
from tests.factories import DAY_MS, make_call, make_session


@pytest.fixture
def calls(db_session):
    now = now_ms()
    session = make_session(db_session, "s-1", created_at=now - 3 * DAY_MS)
    make_call(db_session, session, timestamp=now - 2 * DAY_MS, model="gpt-4o", provider="openai", duration_ms=200)
    make_call(db_session, session, timestamp=now - 60_000, model="gpt-4o", provider="openai", duration_ms=100)
    make_call(db_session, session, timestamp=now - 30_000, model="qwen", provider="qwen", status="error",
              duration_ms=50)
    db_session.commit()


def test_totals(run, calls):
    result = run("stats")
    assert result.exit_code == 0, result.output
    total = result.stdout.splitlines()[-1].split()
    assert total[:8] == ["total", "3", "1", "66.7%", "30", "15", "45", "105"]
    assert "Not priced (cost counted as 0): openai/gpt-4o, qwen/qwen" in result.stderr


def test_by_model_json_with_prices(run, calls):
    env = {"MODEL_PRICES": json.dumps({"gpt-4o": {"prompt": 2.5, "completion": 10}})}
    result = run("stats", "--by", "model", "--json", env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(g["key"], g["requests"], g["errors"]) for g in data["groups"]] == [("gpt-4o", 2, 0), ("qwen", 1, 1)]
    assert data["totals"]["success_rate"] == pytest.approx(0.6667)
    assert data["groups"][0]["estimated_cost_usd"] == pytest.approx((20 * 2.5 + 10 * 10) / 1e6)
    assert data["groups"][0]["latency_ms"]["p50"] is not None
    assert data["unpriced_models"] == ["qwen/qwen"]


def test_by_provider_since_and_by_day(run, calls):
    data = json.loads(run("stats", "--by", "provider", "--since", "1h", "--json").stdout)
    assert {g["key"]: g["requests"] for g in data["groups"]} == {"openai": 1, "qwen": 1}
    days = run("stats", "--by", "day")
    assert days.exit_code == 0 and len(days.stdout.splitlines()) >= 3


def test_bad_since(run, calls):
    assert failed(run("stats", "--since", "soon"), "invalid --since")
