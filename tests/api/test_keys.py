"""Gateway keys in process, on SQLite and PostgreSQL: the admin API, every refusal and its record, tags."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.config import ModelPrice
from app.models import GatewayKey, GatewayKeyCounter, Request, Response

PRICES = {"mock/priced": ModelPrice(prompt=1000.0, completion=0.0)}
CHAT = "/v1/chat/completions"


@pytest.fixture
def settings(make_settings):
    return make_settings(gateway_keys="required", model_prices=PRICES)


def create(client, **body) -> dict:
    reply = client.post("/v1/keys", json=body)
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


def chat(client, key: str | None, *, model: str = "mock/priced", headers: dict | None = None, session: str = "k"):
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(CHAT, json={"model": model, "messages": [{"role": "user", "content": "hello there"}]},
                       headers={**auth, "X-Session-Id": session, **(headers or {})})


def rows(db_session, session: str) -> list[tuple[Request, Response]]:
    db_session.expire_all()
    return db_session.execute(
        sa.select(Request, Response).join(Response, Response.request_id == Request.id)
        .where(Request.session_id == session).order_by(Request.id)
    ).all()


def test_keys_api_issues_a_key_once_and_never_shows_it_again(client):
    issued = create(client, name="search", budget_usd=5, period="day", rpm=10, models=["mock/*"],
                    tags={"team": "search"})
    key = issued["key"]
    assert key.startswith("pr-") and len(key) == 43 and issued["prefix"] == key[:11]
    answers = [client.get("/v1/keys"), client.get("/v1/keys/search"), client.post("/v1/keys/search/rotate"),
               client.get("/v1/keys/search")]
    assert all(reply.status_code == 200 for reply in answers)
    assert all(key not in reply.get_data(as_text=True) for reply in answers)
    listed = answers[0].get_json()["data"][0]
    assert listed["name"] == "search" and listed["budget_usd"] == 5 and listed["tags"] == {"team": "search"}
    assert "key" not in listed
    assert client.post("/v1/keys", json={"name": "search"}).get_json()["error"]["code"] == "key_exists"
    assert client.get("/v1/keys/nope").status_code == 404
    bad = client.post("/v1/keys", json={"name": "x", "period": "week"})
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "period"


def test_required_mode_refuses_and_records_each_refusal(client, flush_audit, db_session):
    key = create(client, name="team-a", models=["mock/priced"])["key"]
    assert chat(client, None, session="r1").status_code == 401
    assert chat(client, "sk-something", session="r2").status_code == 401
    wrong = chat(client, "pr-" + "x" * 40, session="r3")
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "invalid_api_key"
    denied = chat(client, key, model="mock/other", session="r4")
    assert denied.status_code == 403 and denied.get_json()["error"]["code"] == "model_not_allowed"
    assert chat(client, key, session="r5").status_code == 200
    flush_audit()
    for session, status in (("r1", 401), ("r2", 401), ("r3", 401), ("r4", 403)):
        [(request, response)] = rows(db_session, session)
        assert response.status == "error" and response.status_code == status and response.error
    [(request, response)] = rows(db_session, "r5")
    key_id = db_session.scalar(sa.select(GatewayKey.id).where(GatewayKey.name == "team-a"))
    assert request.key_id == key_id and response.status == "ok" and response.cost_usd > 0


def test_a_budget_refuses_once_spent_and_the_spend_is_the_recorded_cost(client, flush_audit, db_session):
    first = chat(client, create(client, name="probe")["key"], session="probe")
    assert first.status_code == 200
    flush_audit()
    [(_, probe)] = rows(db_session, "probe")
    key = create(client, name="small", budget_usd=probe.cost_usd * 3, period="day")["key"]
    statuses = [chat(client, key, session="b").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = chat(client, key, session="b")
    assert refused.get_json()["error"]["code"] == "budget_exceeded" and int(refused.headers["Retry-After"]) > 0
    flush_audit()
    recorded = rows(db_session, "b")
    assert [r.status_code for _, r in recorded] == [200, 200, 200, 429, 429, 429]
    spent = client.get("/v1/keys/small").get_json()["spent_usd"]
    assert spent == pytest.approx(sum(r.cost_usd or 0 for _, r in recorded))
    by_key = client.get("/v1/stats/usage?group_by=key").get_json()["data"]
    small = next(group for group in by_key if group["key"] == "small")
    assert small["requests"] == 6 and small["estimated_cost_usd"] == pytest.approx(spent)


def test_a_rate_limit_refuses_with_retry_after(client, flush_audit, db_session):
    key = create(client, name="slow", rpm=2)["key"]
    replies = [chat(client, key, session="rate") for _ in range(3)]
    assert [reply.status_code for reply in replies] in ([200, 200, 429], [200, 200, 200])  # a minute may turn
    refused = replies[-1] if replies[-1].status_code == 429 else chat(client, key, session="rate")
    if refused.status_code == 200:  # the minute turned between the calls: two more fill it
        refused = chat(client, key, session="rate")
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    flush_audit()
    assert rows(db_session, "rate")[-1][1].status_code == 429


def test_tags_are_recorded_filtered_and_grouped(client, flush_audit, db_session):
    key = create(client, name="tagged", tags={"team": "search"})["key"]
    assert chat(client, key, headers={"X-Tag-Feature": "autocomplete", "X-Tag-Team": "other"},
                session="t1").status_code == 200
    assert chat(client, key, headers={"X-Tag-Feature": "rerank"}, session="t2").status_code == 200
    bad = chat(client, key, headers={"X-Tag-Bad Name!": "x"}, session="t3")
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_tag"
    too_many = chat(client, key, headers={f"X-Tag-T{i}": "v" for i in range(20)}, session="t4")
    assert too_many.status_code == 400
    flush_audit()
    [(request, _)] = rows(db_session, "t1")
    assert request.tags == {"team": "search", "feature": "autocomplete"}  # the key's own tag wins
    listed = client.get("/v1/requests?tag=feature:rerank").get_json()["data"]
    assert [row["session_id"] for row in listed] == ["t2"] and listed[0]["tags"]["team"] == "search"
    assert client.get("/v1/requests?tag=team:search&limit=10").get_json()["data"]
    assert client.get("/v1/requests?tag=nocolon").status_code == 400
    groups = client.get("/v1/stats/usage?group_by=tag:feature").get_json()["data"]
    assert {g["key"]: g["requests"] for g in groups if g["key"]} == {"autocomplete": 1, "rerank": 1}
    assert client.get("/v1/stats/usage?tag=team:search").get_json()["totals"]["requests"] == 2  # 400s: no tags


def test_optional_mode_attributes_keys_and_ignores_other_bearers(make_settings, flush_audit, db_session):
    from app import create_app

    app = create_app(make_settings(model_prices=PRICES))
    try:
        client = app.test_client()
        issued = create(client, name="opt")
        assert chat(client, None, session="o1").status_code == 200
        assert chat(client, "sk-from-the-sdk", session="o2").status_code == 200
        assert chat(client, issued["key"], session="o3").status_code == 200
        assert client.post("/v1/keys/opt/revoke").status_code == 200
        assert chat(client, issued["key"], session="o4").status_code == 401
        app.extensions["gateway"].chat.audit.flush()
        assert [rows(db_session, s)[0][0].key_id is not None for s in ("o1", "o2", "o3")] == [False, False, True]
        counter = db_session.get(GatewayKeyCounter, rows(db_session, "o3")[0][0].key_id)
        assert counter.calls == 1
    finally:
        app.extensions["gateway"].stop_background()


def test_rotation_keeps_the_old_key_for_its_grace_then_refuses_it(client):
    old = create(client, name="rot")["key"]
    new = client.post("/v1/keys/rot/rotate?grace_seconds=3600").get_json()["key"]
    assert chat(client, old).status_code == 200 and chat(client, new).status_code == 200
    newer = client.post("/v1/keys/rot/rotate?grace_seconds=0").get_json()["key"]
    assert chat(client, old).status_code == 401 and chat(client, new).status_code == 401
    assert chat(client, newer).status_code == 200
