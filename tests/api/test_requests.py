"""GET/DELETE /v1/requests: filters, paging, lookups and their errors."""

from __future__ import annotations

import uuid

import pytest

from app.models import Request, now_ms
from tests.factories import make_call, make_session

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


@pytest.fixture
def calls(db_session):
    """Six calls over two sessions, one still in flight, each a second apart."""
    a = make_session(db_session, "sess-a", created_at=T0)
    b = make_session(db_session, "sess-b", created_at=T0)
    rows = [
        make_call(db_session, a, timestamp=T0 + 1000, model="gpt-4o", duration_ms=120),
        make_call(db_session, a, timestamp=T0 + 2000, model="gpt-4o", stream=True, ttft_ms=30,
                  status="incomplete", finish_reason=None, duration_ms=900),
        make_call(db_session, b, timestamp=T0 + 3000, model="qwen", provider="lm-studio",
                  status="error", finish_reason=None, error="upstream timed out", duration_ms=5000),
        make_call(db_session, b, timestamp=T0 + 4000, model="qwen", provider="lm-studio", stream=True,
                  ttft_ms=10, finish_reason="length", duration_ms=300),
        make_call(db_session, a, timestamp=T0 + 5000, model="gpt-4o", finish_reason="tool_calls"),
        make_call(db_session, b, timestamp=T0 + 6000, model="qwen", provider="lm-studio", status=None),
    ]
    db_session.commit()
    return [row.id for row in rows]


def ids(reply) -> list[int]:
    assert reply.status_code == 200, reply.get_json()
    return [row["id"] for row in reply.get_json()["data"]]


def test_list_is_newest_first_with_a_response_summary(client, calls):
    body = client.get("/v1/requests").get_json()
    assert body["object"] == "list"
    assert [row["id"] for row in body["data"]] == calls[::-1]
    assert (body["total"], body["limit"], body["offset"], body["has_more"], body["next_cursor"]) == (
        6, 50, 0, False, None,
    )
    in_flight, newest_answered = body["data"][0], body["data"][1]
    assert in_flight["response_summary"] is None
    summary = newest_answered["response_summary"]
    assert set(summary) == {
        "id", "response_id", "status", "finish_reason", "total_tokens", "duration_ms", "error",
    }
    assert (summary["status"], summary["finish_reason"], summary["total_tokens"]) == ("ok", "tool_calls", 15)
    assert "openai_request" not in newest_answered  # bodies only when asked


def test_include_bodies_adds_the_json_bodies(client, calls):
    row = client.get("/v1/requests?limit=1&include_bodies=true").get_json()["data"][0]
    assert row["openai_request"]["messages"] == [{"role": "user", "content": "hello"}]
    assert row["provider_request"]["model"] == "qwen"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("session_id=sess-a", [0, 1, 4]),
        ("model=qwen", [2, 3, 5]),
        ("provider=lm-studio", [2, 3, 5]),
        ("stream=true", [1, 3]),
        ("stream=false", [0, 2, 4, 5]),
        ("status=ok", [0, 3, 4]),
        ("status=error", [2]),
        ("status=incomplete", [1]),
        ("finish_reason=length", [3]),
        ("min_duration_ms=300", [1, 2, 3]),
        (f"start_date={T0 + 2000}&end_date={T0 + 4000}", [1, 2, 3]),
        ("start_date=2023-11-14T22:13:23Z", [2, 3, 4, 5]),
        ("end_date=2023-11-14T23:13:22%2B01:00", [0, 1]),
        # Filters combine with AND.
        ("model=qwen&stream=true", [3]),
        ("session_id=sess-a&status=ok", [0, 4]),
        ("provider=lm-studio&min_duration_ms=1000&status=error", [2]),
        ("model=gpt-4o&status=error", []),
        # Model and outcome alone are counted from the responses' (status, model) index.
        ("model=qwen&status=error", [2]),
        ("model=gpt-4o&status=ok", [0, 4]),
        ("model=gpt-4o&finish_reason=tool_calls", [4]),
        ("model=qwen&min_duration_ms=300", [2, 3]),
        (f"session_id=sess-b&start_date={T0 + 3500}", [3, 5]),
    ],
)
def test_filters(client, calls, query, expected):
    reply = client.get(f"/v1/requests?{query}")
    assert ids(reply) == [calls[i] for i in reversed(expected)]
    assert reply.get_json()["total"] == len(expected)


def test_offset_paging_reaches_the_last_page(client, calls):
    first = client.get("/v1/requests?limit=4").get_json()
    assert (first["total"], first["has_more"]) == (6, True)
    last = client.get("/v1/requests?limit=4&offset=4").get_json()
    assert [row["id"] for row in last["data"]] == calls[1::-1]
    assert (last["has_more"], last["next_cursor"], last["offset"]) == (False, None, 4)
    beyond = client.get("/v1/requests?limit=4&offset=10").get_json()
    assert (beyond["data"], beyond["total"], beyond["has_more"]) == ([], 6, False)


def test_cursor_paging_walks_every_row_once(client, calls):
    seen, url = [], "/v1/requests?limit=4"
    while url:
        body = client.get(url).get_json()
        seen += [row["id"] for row in body["data"]]
        assert body["total"] == 6
        url = f"/v1/requests?limit=4&after={body['next_cursor']}" if body["has_more"] else None
    assert seen == calls[::-1]


def test_cursor_paging_ascending_with_a_filter(client, calls):
    first = client.get("/v1/requests?limit=1&order=asc&model=gpt-4o").get_json()
    assert [row["id"] for row in first["data"]] == [calls[0]]
    second = client.get(f"/v1/requests?limit=5&order=asc&model=gpt-4o&after={first['next_cursor']}")
    assert ids(second) == [calls[1], calls[4]]
    assert second.get_json()["has_more"] is False


def test_rows_with_the_same_timestamp_page_by_id(client, db_session):
    session = make_session(db_session, "same-ms", created_at=T0)
    made = [make_call(db_session, session, timestamp=T0).id for _ in range(5)]
    db_session.commit()
    first = client.get("/v1/requests?limit=2").get_json()
    rest = client.get(f"/v1/requests?limit=3&after={first['next_cursor']}").get_json()
    assert [row["id"] for row in first["data"] + rest["data"]] == made[::-1]


def test_empty_list(client):
    body = client.get("/v1/requests?model=none").get_json()
    assert (body["data"], body["total"], body["has_more"], body["next_cursor"]) == ([], 0, False, None)


@pytest.mark.parametrize(
    ("query", "param", "code"),
    [
        ("limit=0", "limit", "invalid_limit"),
        ("limit=1001", "limit", "invalid_limit"),
        ("limit=-1", "limit", "invalid_limit"),
        ("limit=ten", "limit", "invalid_limit"),
        ("offset=-1", "offset", "invalid_offset"),
        ("offset=1.5", "offset", "invalid_offset"),
        ("after=bm90LWEtY3Vyc29y", "after", "invalid_cursor"),
        ("after=%25%25%25", "after", "invalid_cursor"),
        ("start_date=yesterday", "start_date", "invalid_date_range"),
        ("end_date=2023-13-45", "end_date", "invalid_date_range"),
        ("start_date=%D9%A3", "start_date", "invalid_date_range"),  # an Arabic-Indic digit
        (f"start_date={T0 + 1}&end_date={T0}", "start_date", "invalid_date_range"),
        ("status=done", "status", "invalid_status"),
        ("stream=maybe", "stream", "invalid_stream"),
        ("order=sideways", "order", "invalid_order"),
        ("min_duration_ms=-5", "min_duration_ms", "invalid_min_duration"),
        ("model=", "model", "invalid_model"),
        ("model=a%00b", "model", "invalid_model"),
        ("session_id=" + "x" * 256, "session_id", "invalid_session_id"),
        ("sort=id;DROP TABLE requests", "sort", "unknown_parameter"),
    ],
)
def test_bad_parameters_are_400_in_the_openai_shape(client, query, param, code):
    reply = client.get(f"/v1/requests?{query}")
    assert reply.status_code == 400
    error = reply.get_json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert error["message"]


def test_a_cursor_and_an_offset_together_are_rejected(client, calls):
    cursor = client.get("/v1/requests?limit=1").get_json()["next_cursor"]
    error = client.get(f"/v1/requests?after={cursor}&offset=2").get_json()["error"]
    assert (error["param"], error["code"]) == ("offset", "invalid_offset")


def test_a_cursor_of_another_list_is_rejected(client, calls):
    cursor = client.get("/v1/responses?limit=1").get_json()["next_cursor"]
    assert client.get(f"/v1/requests?after={cursor}").get_json()["error"]["code"] == "invalid_cursor"


def test_get_by_integer_id_or_uuid(client, db_session, calls):
    request_uuid = db_session.get(Request, calls[2]).request_id
    by_id = client.get(f"/v1/requests/{calls[2]}").get_json()
    by_uuid = client.get(f"/v1/requests/{request_uuid.upper()}").get_json()
    assert by_id == by_uuid
    assert (by_id["request_id"], by_id["model"], by_id["provider"]) == (request_uuid, "qwen", "lm-studio")
    assert by_id["openai_request"]["model"] == "qwen"
    assert by_id["response_summary"]["error"] == "upstream timed out"


@pytest.mark.parametrize("path", ["/v1/requests/{}", "/v1/requests/{}/response"])
def test_unknown_request_is_404(client, path):
    for missing in ("999999", str(uuid.uuid4())):
        error = client.get(path.format(missing)).get_json()["error"]
        assert error["code"] == "request_not_found"


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "1.5", "99999999999999999999", "١٢"])
def test_invalid_request_id_is_400(client, bad):
    reply = client.get(f"/v1/requests/{bad}")
    assert reply.status_code == 400
    assert reply.get_json()["error"]["code"] == "invalid_id"


def test_the_response_of_a_request(client, db_session, calls):
    body = client.get(f"/v1/requests/{calls[3]}/response").get_json()
    assert (body["request_id"], body["status"], body["finish_reason"], body["ttft_ms"]) == (
        calls[3], "ok", "length", 10,
    )
    assert body["openai_response"] == {"choices": [{"message": {"content": "hi"}}]}
    in_flight = client.get(f"/v1/requests/{calls[5]}/response")
    assert (in_flight.status_code, in_flight.get_json()["error"]["code"]) == (404, "response_not_found")


def test_delete_a_request_and_its_response(client, db_session, calls):
    request_uuid = db_session.get(Request, calls[0]).request_id
    reply = client.delete(f"/v1/requests/{request_uuid}")
    assert reply.get_json() == {"deleted": True, "id": calls[0], "request_id": request_uuid}
    assert client.get(f"/v1/requests/{calls[0]}").status_code == 404
    assert client.get("/v1/responses").get_json()["total"] == 4
    assert client.delete(f"/v1/requests/{calls[0]}").get_json()["error"]["code"] == "request_not_found"


def test_a_request_recorded_by_the_gateway_is_listed(client, flush_audit):
    started = now_ms()
    reply = client.post("/v1/chat/completions", json={"model": "mock/any", "messages": [
        {"role": "user", "content": "hello"}]})
    flush_audit()  # the response row is written just after the reply
    row = client.get("/v1/requests").get_json()["data"][0]
    assert row["request_id"] == reply.headers["X-Request-Id"]
    assert row["timestamp"] >= started
    assert row["response_summary"]["status"] == "ok"


def test_a_database_gone_from_under_the_history_api_is_a_503_never_a_500(tmp_path):
    import shutil

    from app import create_app
    from app.config import Settings
    from app.db import dispose_engines

    folder = tmp_path / "db"
    app = create_app(Settings.from_env({
        "DATABASE_PATH": str(folder / "gateway.db"), "LOG_LEVEL": "ERROR", "AUDIT_JOURNAL_DIR": str(tmp_path / "j"),
    }))
    shutil.rmtree(folder)
    dispose_engines()  # no connection to the old file left open: the next one finds nothing to open
    reply = app.test_client().get("/v1/requests")
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "5"
    assert reply.get_json()["error"]["code"] == "database_unavailable"
    reply = app.test_client().post("/v1/chat/completions", json={"model": "mock/x", "messages": [
        {"role": "user", "content": "still served"}]})
    assert reply.status_code == 200  # model calls go on; their record waits in the journal
    audit = app.extensions["gateway"].chat.audit
    assert audit.counts["journaled"] == 2
    audit.stop()
