"""``keys`` create|list|show|revoke|rotate and ``stats --by key``."""

from __future__ import annotations

import json

import sqlalchemy as sa

from app.models import GatewayKey, Request, now_ms
from tests.cli.conftest import failed
from tests.factories import make_call, make_session


def test_create_prints_the_key_once_and_list_show_never(run):
    created = run("keys", "create", "search", "--budget-usd", "50", "--period", "day", "--rpm", "60",
                  "--models", "mock/*, qwen/*", "--tag", "team=search")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("pr-") and len(key) == 43 and "not shown again" in created.stderr
    listed, shown = run("keys", "list"), run("keys", "show", "search", "--json")
    assert key not in listed.output and key not in shown.output and key[:11] in listed.output
    detail = json.loads(shown.stdout)
    assert detail["models"] == ["mock/*", "qwen/*"] and detail["tags"] == {"team": "search"}
    assert detail["budget_usd"] == 50 and detail["period"] == "day" and detail["rpm"] == 60
    assert failed(run("keys", "create", "search"), "exists")
    assert failed(run("keys", "create", "bad", "--tag", "novalue"), "NAME=VALUE")


def test_rotate_and_revoke(run, db_session):
    first = run("keys", "create", "team-b").stdout.strip()
    rotated = run("keys", "rotate", "team-b", "--grace", "60", "--json")
    assert rotated.exit_code == 0, rotated.output
    second = json.loads(rotated.stdout)["key"]
    assert second != first and json.loads(rotated.stdout)["previous_valid_until"] is not None
    assert run("keys", "revoke", "team-b").exit_code == 0
    row = db_session.scalar(sa.select(GatewayKey).where(GatewayKey.name == "team-b"))
    assert row.revoked_at is not None and row.previous_hash is None
    assert json.loads(run("keys", "show", "team-b", "--json").stdout)["status"] == "revoked"
    assert failed(run("keys", "show", "nope"), "No key named 'nope'")


def test_stats_by_key(run, db_session):
    run("keys", "create", "alpha")
    key_id = db_session.scalar(sa.select(GatewayKey.id).where(GatewayKey.name == "alpha"))
    session = make_session(db_session, "s-keys")
    make_call(db_session, session, model="m", provider="p", timestamp=now_ms() - 1000)
    make_call(db_session, session, model="m", provider="p", timestamp=now_ms() - 500)
    db_session.flush()
    db_session.execute(sa.update(Request).where(Request.id == sa.select(sa.func.min(Request.id)).scalar_subquery())
                       .values(key_id=key_id))
    db_session.commit()
    result = run("stats", "--by", "key", "--json")
    assert result.exit_code == 0, result.output
    groups = {group["key"]: group["requests"] for group in json.loads(result.stdout)["groups"]}
    assert groups == {"alpha": 1, "": 1}
    assert run("stats", "--by", "nonsense").exit_code == 2
