"""Content a database refuses never costs a call its record: NUL, lone surrogates and 10 MB bodies, on both engines."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from app.models import ChatSession, Request, Response

HOSTILE = {
    "nul": "before\u0000after",
    "surrogate": "lone \ud800 and \udfff halves",
    "both": "a\u0000b \ud83d c",
    "plain": "ordinary",
}


def call(client, text: str, *, stream: bool = False, session: str = "hostile"):
    body = json.dumps({"model": "mock/x", "stream": stream, "messages": [{"role": "user", "content": text}]})
    reply = client.post("/v1/chat/completions", data=body, content_type="application/json",
                        headers={"X-Session-Id": session})
    reply.get_data()  # a stream is relayed (and recorded) as it is read
    return reply


def only_call(db_session):
    request = db_session.scalars(sa.select(Request)).one()
    response = db_session.scalars(sa.select(Response)).one()
    assert response.request_id == request.id
    return request, response


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_text_is_answered_and_recorded_once(client, flush_audit, db_session, database_url, kind, stream):
    text = HOSTILE[kind]
    reply = call(client, text, stream=stream)
    assert reply.status_code == 200
    flush_audit()
    request, response = only_call(db_session)
    # The stored JSON bodies hold the same content as was sent and answered.
    assert request.openai_request["messages"][0]["content"] == text
    assert request.provider_request["messages"][0]["content"] == text
    assert text in response.openai_response["choices"][0]["message"]["content"]  # the mock echoes it
    assert response.status == "ok"
    postgres = database_url.startswith("postgresql")
    refused = "\ud800" in text or "\udfff" in text or "\ud83d" in text or (postgres and "\x00" in text)
    assert (request.repaired is not None) == refused, request.repaired
    if refused:
        session = db_session.get(ChatSession, "hostile")
        assert "\x00" not in session.first_user_message or not postgres
        assert "session.first_user_message" in request.repaired


def test_lone_surrogates_in_the_fields_that_pick_the_session_are_no_error(client, flush_audit, db_session):
    for extra in ({"user": "team \ud800"}, {}):
        body = json.dumps({"model": "mock/x", "messages": [{"role": "user", "content": "x\udfff"}], **extra})
        assert client.post("/v1/chat/completions", data=body, content_type="application/json").status_code == 200
    flush_audit()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Response)) == 2


def test_a_ten_megabyte_prompt_is_recorded_whole(client, flush_audit, db_session):
    text = "0123456789" * (1 << 20)
    reply = call(client, text)
    assert reply.status_code == 200
    flush_audit()
    request, response = only_call(db_session)
    assert request.openai_request["messages"][0]["content"] == text
    assert request.repaired is None and response.status == "ok"


def test_hostile_calls_do_not_take_their_neighbours_records_with_them(client, flush_audit, db_session):
    for number, text in enumerate([*HOSTILE.values(), *HOSTILE.values()]):
        assert call(client, text, session=f"s{number}").status_code == 200
    flush_audit()
    requests = db_session.scalar(sa.select(sa.func.count()).select_from(Request))
    responses = db_session.scalar(sa.select(sa.func.count()).select_from(Response))
    assert (requests, responses) == (8, 8)


def test_a_body_with_a_raw_control_character_is_a_clear_400(client, db_session):
    reply = client.post("/v1/chat/completions", content_type="application/json",
                        data=b'{"model": "mock/x", "messages": [{"role": "user", "content": "a\x00b"}]}')
    assert reply.status_code == 400 and reply.get_json()["error"]["code"] == "invalid_json"
