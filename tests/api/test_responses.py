"""/v1/responses: filters, paging, lookups."""

from __future__ import annotations

import uuid

import pytest

from app.models import Response
from tests.factories import make_call, make_session

T0 = 1_700_000_000_000


@pytest.fixture
def calls(db_session):
    a = make_session(db_session, "a", created_at=T0)
    b = make_session(db_session, "b", created_at=T0)
    rows = [
        make_call(db_session, a, timestamp=T0, duration_ms=50),
        make_call(db_session, b, timestamp=T0 + 10_000, model="qwen", provider="lm-studio", stream=True,
                  ttft_ms=5, status="error", finish_reason=None, error="boom", duration_ms=2000),
        make_call(db_session, a, timestamp=T0 + 20_000, status="incomplete", finish_reason=None,
                  duration_ms=700),
        make_call(db_session, b, timestamp=T0 + 30_000, finish_reason="length", duration_ms=10),
    ]
    db_session.commit()
    return [row.response.id for row in rows]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [0, 1, 2, 3]),
        ("session_id=a", [0, 2]),
        ("status=error", [1]),
        ("has_error=true", [1, 2]),
        ("has_error=false", [0, 3]),
        ("finish_reason=length", [3]),
        ("min_duration_ms=700", [1, 2]),
        ("model=qwen", [1]),
        ("provider=openai&stream=false", [0, 2, 3]),
        ("stream=true&has_error=true", [1]),
        # Dates apply to when the response was written: the request's time plus its duration.
        (f"start_date={T0 + 20_700}", [2, 3]),
        (f"end_date={T0 + 11_999}", [0]),
    ],
)
def test_filters(client, calls, query, expected):
    body = client.get(f"/v1/responses?{query}").get_json()
    assert [row["id"] for row in body["data"]] == [calls[i] for i in reversed(expected)]
    assert body["total"] == len(expected)


def test_filter_by_request_id_or_uuid(client, db_session, calls):
    request = db_session.get(Response, calls[1]).request
    for value in (request.id, request.request_id):
        assert [row["id"] for row in client.get(f"/v1/responses?request_id={value}").get_json()["data"]] == [
            calls[1]
        ]
    assert client.get(f"/v1/responses?request_id={uuid.uuid4()}").get_json()["total"] == 0
    error = client.get("/v1/responses?request_id=zzz").get_json()["error"]
    assert (error["param"], error["code"]) == ("request_id", "invalid_id")


def test_rows_leave_out_bodies_unless_asked(client, calls):
    row = client.get("/v1/responses?limit=1").get_json()["data"][0]
    assert "openai_response" not in row and "provider_response" not in row
    assert row["finish_reason"] == "length"
    full = client.get("/v1/responses?limit=1&include_bodies=true").get_json()["data"][0]
    assert full["openai_response"] == {"choices": [{"message": {"content": "hi"}}]}


def test_cursor_paging(client, calls):
    first = client.get("/v1/responses?limit=3").get_json()
    assert first["has_more"] is True
    rest = client.get(f"/v1/responses?limit=3&after={first['next_cursor']}").get_json()
    assert [row["id"] for row in first["data"] + rest["data"]] == calls[::-1]
    assert rest["has_more"] is False and rest["next_cursor"] is None


def test_get_by_id_or_uuid(client, db_session, calls):
    response_uuid = db_session.get(Response, calls[1]).response_id
    by_id = client.get(f"/v1/responses/{calls[1]}").get_json()
    assert by_id == client.get(f"/v1/responses/{response_uuid}").get_json()
    assert (by_id["status"], by_id["error"], by_id["status_code"], by_id["ttft_ms"]) == (
        "error", "boom", 502, 5,
    )
    assert by_id["provider_response"] is None  # streamed
    assert by_id["usage_estimated"] is False and by_id["client_disconnected"] is False


def test_unknown_or_invalid_response_id(client, db_session, calls):
    request_uuid = db_session.get(Response, calls[0]).request.request_id
    for missing in ("424242", request_uuid):  # a request's UUID is not a response's
        reply = client.get(f"/v1/responses/{missing}")
        assert (reply.status_code, reply.get_json()["error"]["code"]) == (404, "response_not_found")
    assert client.get("/v1/responses/not-an-id").get_json()["error"]["code"] == "invalid_id"
