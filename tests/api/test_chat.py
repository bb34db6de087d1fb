"""POST /v1/chat/completions through the Flask app, upstreams faked with `responses`."""

from __future__ import annotations

import hashlib
import json

import pytest
import requests
import responses
import sqlalchemy as sa

from app.models import ChatSession, Request, Response

UPSTREAM = "http://upstream.test/v1"
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def settings(make_settings):
    return make_settings(lm_studio_base_url=UPSTREAM, request_timeout_ms=2000)


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def completion(content: str = "Hi there", usage: dict | None = None) -> dict:
    body = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def sse(*chunks: dict | str, done: bool = True) -> bytes:
    lines = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


def chunk(content: str | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    choices = [] if usage else [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}]
    body = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices}
    if usage:
        body["usage"] = usage
    return body


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


@pytest.fixture
def the_rows(db_session, flush_audit):
    """The one request row and its response row, once written."""

    def rows():
        flush_audit()
        return _one_pair(db_session)

    return rows


def _one_pair(db_session):
    request = db_session.scalars(sa.select(Request)).one()
    response = db_session.scalars(sa.select(Response)).one()
    assert response.request_id == request.id
    return request, response


def test_non_stream_is_proxied_and_recorded(client, upstream, the_rows):
    upstream.post(UPSTREAM + "/chat/completions", json=completion(usage=USAGE))
    reply = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert reply.status_code == 200
    assert reply.get_json() == completion(usage=USAGE)
    sent = json.loads(upstream.calls[0].request.body)
    assert sent == {"model": "m", "messages": MESSAGES}
    request, response = the_rows()
    assert request.request_id == reply.headers["X-Request-Id"]
    assert request.openai_request == {"model": "m", "messages": MESSAGES}
    assert request.provider_request == sent
    assert (response.status, response.status_code, response.finish_reason) == ("ok", 200, "stop")
    assert (response.prompt_tokens, response.completion_tokens, response.total_tokens) == (5, 2, 7)
    assert response.usage_estimated is False
    assert response.openai_response == completion(usage=USAGE)


def test_zero_token_counts_stay_zero(client, upstream, the_rows):
    upstream.post(UPSTREAM + "/chat/completions", json=completion(usage={
        "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}))
    client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    _, response = the_rows()
    assert (response.prompt_tokens, response.completion_tokens, response.total_tokens) == (0, 0, 0)
    assert response.usage_estimated is False


def test_missing_usage_is_estimated_and_flagged(client, upstream, the_rows):
    upstream.post(UPSTREAM + "/chat/completions", json=completion("four score and seven"))
    client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    _, response = the_rows()
    assert response.usage_estimated is True
    assert response.completion_tokens == 5 and response.prompt_tokens > 0
    assert response.total_tokens == response.prompt_tokens + response.completion_tokens


def test_stream_is_forwarded_and_assembled(client, upstream, the_rows):
    upstream.post(UPSTREAM + "/chat/completions", body=sse(
        chunk("Hel"), chunk("lo"), chunk(finish="length"), chunk(usage=USAGE)),
        content_type="text/event-stream")
    reply = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True})
    assert reply.status_code == 200 and reply.mimetype == "text/event-stream"
    events = reply.get_data(as_text=True).split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert not any('"usage"' in event for event in events), "usage chunk forwarded to a client that did not ask"
    sent = json.loads(upstream.calls[0].request.body)
    assert sent["stream_options"] == {"include_usage": True}
    _, response = the_rows()
    assert response.openai_response["choices"][0]["message"]["content"] == "Hello"
    assert response.finish_reason == "length"
    assert (response.prompt_tokens, response.total_tokens, response.usage_estimated) == (5, 7, False)
    assert response.status == "ok" and response.ttft_ms is not None


def test_stream_usage_is_forwarded_when_asked(client, upstream):
    upstream.post(UPSTREAM + "/chat/completions", body=sse(chunk("Hi"), chunk(finish="stop"), chunk(usage=USAGE)))
    reply = client.post("/v1/chat/completions", json={
        "model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}})
    events = [e for e in reply.get_data(as_text=True).split("\n\n") if e]
    assert json.loads(events[-2].removeprefix("data: "))["usage"] == USAGE


def test_upstream_http_error_passes_through_with_body_and_retry_after(client, upstream, the_rows):
    error = {"error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "rate"}}
    upstream.post(UPSTREAM + "/chat/completions", json=error, status=429, headers={"Retry-After": "3"})
    reply = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert reply.status_code == 429 and reply.get_json() == error
    assert reply.headers["Retry-After"] == "3"
    _, response = the_rows()
    assert (response.status, response.status_code, response.error) == ("error", 429, "slow down")


@pytest.mark.parametrize(("failure", "status", "code"), [
    (requests.ConnectionError("refused"), 502, "upstream_unreachable"),
    (requests.ReadTimeout("slow"), 504, "upstream_timeout"),
])
def test_upstream_failures_map_to_502_and_504(client, upstream, db_session, flush_audit, failure, status, code):
    upstream.post(UPSTREAM + "/chat/completions", body=failure)
    for stream in (False, True):
        reply = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": stream})
        assert reply.status_code == status
        assert reply.get_json()["error"]["code"] == code
    flush_audit()
    responses_rows = db_session.scalars(sa.select(Response)).all()
    assert [(r.status, r.status_code) for r in responses_rows] == [("error", status)] * 2


def test_stream_cut_without_done_sends_error_event_and_keeps_partial(client, upstream, the_rows):
    upstream.post(UPSTREAM + "/chat/completions", body=sse(chunk("part"), done=False))
    reply = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True})
    events = [e for e in reply.get_data(as_text=True).split("\n\n") if e]
    assert json.loads(events[-2].removeprefix("data: "))["error"]["code"] == "upstream_stream_cut"
    assert events[-1] == "data: [DONE]"
    _, response = the_rows()
    assert response.status == "incomplete"
    assert response.openai_response["choices"][0]["message"]["content"] == "part"


def test_error_event_inside_stream_is_relayed_and_recorded_as_error(client, upstream, the_rows):
    upstream.post(UPSTREAM + "/chat/completions", body=sse(chunk("a"), {"error": {"message": "overloaded"}}))
    reply = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True})
    assert "overloaded" in reply.get_data(as_text=True)
    _, response = the_rows()
    assert (response.status, response.error) == ("error", "overloaded")


@pytest.mark.parametrize(("body", "param", "code"), [
    (b"{not json", None, "invalid_json"),
    (b"[1, 2]", None, "invalid_json"),
    (b'{"model": "m"}', "messages", "missing_messages"),
    (b'{"model": "m", "messages": []}', "messages", "invalid_value"),
    (b'{"model": "m", "messages": [{"content": "x"}]}', "messages[0].role", "invalid_value"),
    (b'{"model": "m", "messages": [{"role": "user", "content": 5}]}', "messages[0].content", "invalid_value"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream", "invalid_value"),
])
def test_bad_requests_get_openai_400s_and_no_rows(client, db_session, body, param, code):
    reply = client.post("/v1/chat/completions", data=body, content_type="application/json")
    assert reply.status_code == 400
    error = reply.get_json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Request)) == 0


def test_unknown_active_provider_is_404(make_settings):
    from app import create_app

    client = create_app(make_settings(default_provider="nowhere")).test_client()
    reply = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert reply.status_code == 404
    assert reply.get_json()["error"]["code"] == "provider_not_found"
    assert client.get("/v1/models?provider=nowhere").status_code == 404


def test_method_size_and_route_errors_are_openai_shaped(client):
    for reply, status in (
        (client.get("/v1/chat/completions"), 405),
        (client.post("/v1/chat/completions", data=b"x" * (33 * 1024 * 1024)), 413),
        (client.get("/v1/nothing-here"), 404),
    ):
        assert reply.status_code == status
        assert set(reply.get_json()["error"]) == {"message", "type", "param", "code"}


def test_session_key_precedence_and_continuity(client, upstream, db_session):
    upstream.post(UPSTREAM + "/chat/completions", json=completion(usage=USAGE))
    client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, headers={"X-Session-Id": "s-1"})
    client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "user": "alice"})
    client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    sessions = {s.id: s for s in db_session.scalars(sa.select(ChatSession))}
    md5 = hashlib.md5(b"Hello").hexdigest()
    assert set(sessions) == {"s-1", "alice", md5}
    assert sessions[md5].message_count == 2 and sessions[md5].first_user_message == "Hello"
    assert sessions[md5].expires_at > sessions[md5].last_accessed >= sessions[md5].created_at


def test_expired_session_restarts_continuity_but_keeps_history(client, upstream, db_session, flush_audit):
    upstream.post(UPSTREAM + "/chat/completions", json=completion(usage=USAGE))
    headers = {"X-Session-Id": "s-exp"}
    client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, headers=headers)
    db_session.execute(sa.update(ChatSession).values(expires_at=1, chat_id="c-old", parent_id="p-old"))
    db_session.commit()
    client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, headers=headers)
    flush_audit()
    db_session.expire_all()
    session = db_session.get(ChatSession, "s-exp")
    assert (session.chat_id, session.parent_id) == (None, None)
    assert session.message_count == 2 and session.expires_at > 1
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Response)) == 2


def test_persistence_off_writes_nothing(make_settings, upstream, db_session):
    from app import create_app

    upstream.post(UPSTREAM + "/chat/completions", json=completion(usage=USAGE))
    client = create_app(make_settings(lm_studio_base_url=UPSTREAM, enable_persistence=False)).test_client()
    reply = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert reply.status_code == 200 and "X-Request-Id" not in reply.headers
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Request)) == 0


def test_database_failure_never_fails_the_call(app, client, upstream, monkeypatch, caplog):
    upstream.post(UPSTREAM + "/chat/completions", json=completion(usage=USAGE))
    audit = app.extensions["gateway"].chat.audit
    monkeypatch.setattr(audit.tx, "engine", sa.create_engine("sqlite:////nonexistent-directory/gateway.db"))
    reply = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert reply.status_code == 200 and reply.get_json()["choices"][0]["message"]["content"] == "Hi there"
    assert "AUDIT DATABASE UNUSABLE" in caplog.text
    assert audit.counts == {"journaled": 2, "dead_letters": 0, "unrecorded": 0}  # the request and its ending
