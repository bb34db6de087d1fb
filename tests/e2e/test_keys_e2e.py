"""Gateway keys through real gunicorn (2 workers) on SQLite and PostgreSQL: every refusal and its row,
rotation's grace, a key found nowhere after its creation; and a budget held by 2 instances x 2 workers."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from app.db import get_engine
from app.models import Base
from tests.conftest import _empty_tables
from tests.e2e.helpers import llmock_gateway_env, rows_for_session
from tests.faults import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-keys")]

PRICES = json.dumps({"mock/priced": {"prompt": 1000, "completion": 0}})
MESSAGES = [{"role": "user", "content": "How much is this call?"}]
ENDPOINT_BODIES = {
    "/v1/chat/completions": {"model": "mock/priced", "messages": MESSAGES},
    "/v1/completions": {"model": "mock/priced", "prompt": "How much?"},
    "/v1/responses": {"model": "mock/priced", "input": "How much?"},
    "/v1/embeddings": {"model": "mock/priced", "input": "How much?"},
}


@pytest.fixture(scope="module")
def gateway(start_gateway, upstream, e2e_database_url):
    env = llmock_gateway_env(e2e_database_url, upstream, GATEWAY_KEYS="required", MODEL_PRICES=PRICES,
                             EXPOSE_WORKER_PID="true")
    with start_gateway(env) as base:
        base.database_url = e2e_database_url
        base.log_path = start_gateway.log_path
        yield base


def new_key(base: str, **body) -> str:
    name = body.pop("name", None) or f"k-{uuid.uuid4().hex[:10]}"
    reply = requests.post(base + "/v1/keys", json={"name": name, **body}, timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()["key"]


def call(base: str, key: str | None, session: str, *, path: str = "/v1/chat/completions", model: str | None = None,
         headers: dict | None = None) -> requests.Response:
    body = dict(ENDPOINT_BODIES[path])
    if model is not None:
        body["model"] = model
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(base + path, json=body, timeout=30,
                         headers={**auth, "X-Session-Id": session, "Connection": "close", **(headers or {})})


def endings(base: str, session: str, expect: int) -> list[tuple[int, str | None, int | None]]:
    """(status code, error, key id) of each recorded call of the session, oldest first."""
    rows = rows_for_session(base.database_url, session, expect=expect)
    assert len(rows) == expect and all(row.response is not None for row in rows)
    return [(row.response.status_code, row.response.error, row.request.key_id) for row in rows]


def test_every_refusal_is_answered_openai_style_and_recorded(gateway):
    session = f"refusals-{uuid.uuid4()}"
    key = new_key(gateway, models=["mock/priced"], tags={"team": "e2e"})
    revoked = new_key(gateway, name=f"revoked-{uuid.uuid4().hex[:8]}")
    name = [k for k in requests.get(gateway + "/v1/keys", timeout=10).json()["data"] if k["name"].startswith("revoked")]
    assert requests.post(f"{gateway}/v1/keys/{name[-1]['name']}/revoke", timeout=10).status_code == 200
    time.sleep(1.2)  # the other worker's cache (1 s) has let go of the key
    replies = {
        "missing": call(gateway, None, session),
        "not a gateway key": call(gateway, "sk-openai-style", session),
        "unknown": call(gateway, "pr-" + "0" * 40, session),
        "revoked": call(gateway, revoked, session),
        "model": call(gateway, key, session, model="mock/other"),
        "ok": call(gateway, key, session, headers={"X-Tag-Feature": "refusals"}),
    }
    for case in ("missing", "not a gateway key", "unknown", "revoked"):
        assert replies[case].status_code == 401, case
        assert replies[case].json()["error"]["code"] == "invalid_api_key"
        assert replies[case].json()["error"]["type"] == "authentication_error"
    assert replies["model"].status_code == 403 and replies["model"].json()["error"]["code"] == "model_not_allowed"
    assert replies["ok"].status_code == 200
    recorded = endings(gateway, session, 6)
    assert [status for status, _, _ in recorded] == [401, 401, 401, 401, 403, 200]
    assert all(error for _, error, _ in recorded[:5]) and recorded[5][1] is None
    assert recorded[4][2] is not None and recorded[4][2] == recorded[5][2]  # the 403 is attributed to its key
    listed = requests.get(gateway + "/v1/requests", params={"tag": "feature:refusals"}, timeout=10).json()["data"]
    assert len(listed) == 1 and listed[0]["tags"] == {"team": "e2e", "feature": "refusals"}


@pytest.mark.parametrize("path", list(ENDPOINT_BODIES))
def test_every_proxied_endpoint_needs_a_key(gateway, path):
    session = f"endpoint-{uuid.uuid4()}"
    reply = call(gateway, None, session, path=path)
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "invalid_api_key"
    assert endings(gateway, session, 1)[0][0] == 401


def test_budget_and_rate_refusals_come_with_retry_after_and_rows(gateway):
    session = f"limits-{uuid.uuid4()}"
    probe = call(gateway, new_key(gateway), session)
    assert probe.status_code == 200
    cost = rows_for_session(gateway.database_url, session)[0].response.cost_usd
    assert cost and cost > 0
    budget = new_key(gateway, budget_usd=cost * 2, period="day")
    statuses = [call(gateway, budget, session).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    refused = call(gateway, budget, session)
    assert refused.json()["error"]["code"] == "budget_exceeded" and int(refused.headers["Retry-After"]) >= 1
    rated = new_key(gateway, rpm=3)
    replies = [call(gateway, rated, session) for _ in range(5)]
    limited = [r for r in replies if r.status_code == 429]
    assert limited, [r.status_code for r in replies]  # 5 calls within one or two minutes: at least one refused
    assert limited[0].json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited[0].headers["Retry-After"]) <= 60
    recorded = endings(gateway, session, 11)
    assert sum(status == 429 for status, _, _ in recorded) == 3 + len(limited)


def test_a_rotated_key_works_through_its_grace_then_is_refused(gateway):
    session = f"rotate-{uuid.uuid4()}"
    name = f"rot-{uuid.uuid4().hex[:8]}"
    old = new_key(gateway, name=name)
    rotated = requests.post(f"{gateway}/v1/keys/{name}/rotate", params={"grace_seconds": 3}, timeout=10).json()
    new, until = rotated["key"], rotated["previous_valid_until"]
    assert call(gateway, old, session).status_code == 200 and call(gateway, new, session).status_code == 200
    time.sleep(max(0.0, until / 1000 - time.time()) + 1.2)  # past the grace, and past every worker's cache
    assert [call(gateway, old, session).status_code for _ in range(4)] == [401] * 4
    assert call(gateway, new, session).status_code == 200


def test_a_created_key_is_found_nowhere_but_in_its_creation_answer(gateway):
    session = f"secret-{uuid.uuid4()}"
    name = f"secret-{uuid.uuid4().hex[:8]}"
    key = new_key(gateway, name=name, budget_usd=1e-9, rpm=100)
    answers = [call(gateway, key, session), call(gateway, key, session)]  # one served, one over budget
    answers.append(call(gateway, key, session, model="mock/priced", headers={"X-Tag-Key": key[:20]}))
    base = f"{gateway}/v1"
    for path in ("/keys", f"/keys/{name}", "/requests?include_bodies=true&limit=1000",
                 "/responses?include_bodies=true&limit=1000", "/stats/usage?group_by=key",
                 f"/sessions/{session}/requests", "/sessions", f"/sessions/{session}/stats"):
        answers.append(requests.get(base + path, timeout=10))
    answers.append(requests.post(f"{base}/keys/{name}/revoke", timeout=10))
    for answer in answers:
        assert key not in answer.text and key not in json.dumps(dict(answer.headers)), answer.url
    rows_for_session(gateway.database_url, session, expect=3)
    engine = get_engine(gateway.database_url)
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(sa.select(table)):
                assert key not in repr(tuple(row)), table.name
    assert key not in gateway.log_path.read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("scale-out")
def test_two_instances_hold_one_budget_across_500_calls_at_once(pg_url, upstream, start_gateway):
    """2 instances x 2 workers on one PostgreSQL, a key worth 100 calls, 500 calls at once."""
    _empty_tables(pg_url)
    env = llmock_gateway_env(pg_url, upstream, GATEWAY_KEYS="required", MODEL_PRICES=PRICES)
    with start_gateway(env, workers=2) as first, start_gateway(env, workers=2) as second:
        session = f"budget-{uuid.uuid4()}"
        assert call(first, new_key(first), session).status_code == 200
        cost = rows_for_session(pg_url, session)[0].response.cost_usd
        key = new_key(first, name="hundred", budget_usd=cost * 100, period="month")
        with ThreadPoolExecutor(max_workers=64) as pool:
            replies = list(pool.map(lambda n: call((first, second)[n % 2], key, f"{session}-{n % 50}"), range(500)))
        statuses = [reply.status_code for reply in replies]
        served, refused = statuses.count(200), statuses.count(429)
        assert served + refused == 500, sorted(set(statuses))
        print(f"served {served} of 500 on a budget of 100 calls")
        assert 90 <= served <= 100 + 4, served  # at most one call's overshoot per worker
        assert all(r.json()["error"]["code"] == "budget_exceeded" for r in replies if r.status_code == 429)

        def recorded():  # every call's ending written (a burst may wait in the journal a moment)
            with get_engine(pg_url).connect() as connection:
                row = connection.execute(sa.text(
                    "SELECT count(*), count(*) FILTER (WHERE r.status_code = 200), coalesce(sum(r.cost_usd), 0) "
                    "FROM requests q JOIN responses r ON r.request_id = q.id "
                    "WHERE q.key_id = (SELECT id FROM gateway_keys WHERE name = 'hundred')")).one()
            return row if row[0] == 500 else None

        recorded = wait_until(recorded, timeout_s=60) or recorded()
        assert recorded[0] == 500 and recorded[1] == served
        def settled():
            key = requests.get(f"{second}/v1/keys/hundred", timeout=10).json()
            return key if key["calls"] == served else None

        shown = wait_until(settled, timeout_s=60) or requests.get(f"{second}/v1/keys/hundred", timeout=10).json()
        assert shown["calls"] == served, (shown, float(recorded[2]))
        stats = requests.get(f"{first}/v1/stats/usage", params={"group_by": "key"}, timeout=10).json()["data"]
        by_key = next(group for group in stats if group["key"] == "hundred")
        assert shown["spent_usd"] == pytest.approx(float(recorded[2]))
        assert by_key["estimated_cost_usd"] == pytest.approx(float(recorded[2]), rel=1e-6)
        assert shown["spent_usd"] <= cost * 100 + cost * 4
