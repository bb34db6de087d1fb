"""Retries and fallbacks through the gateway, upstreams replayed with `responses`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses
import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from app.errors import (
    InvalidRequest,
    UpstreamCut,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from app.models import Request
from app.providers.base import EventStream
from app.providers.mock import MockProvider
from app.providers.registry import Route
from app.services.admin import settings as settings_admin
from app.services.proxy import fallback
from app.services.proxy.fallback import call_with_fallbacks, open_primed, retry_delay_s, should_retry

PRIMARY = "http://primary.test/v1"
SECONDARY = "http://secondary.test/v1"
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def settings(make_settings):
    return make_settings(lm_studio_base_url=PRIMARY, openai_base_url=SECONDARY, request_timeout_ms=3000)


@pytest.fixture
def app(app, database_url):
    """The gateway with ``openai`` as the fallback of the active ``lm-studio``."""
    from app.db import get_engine

    settings_admin.put_settings(
        get_engine(database_url), values={"fallback_providers": ["openai"]}, default_provider="lm-studio"
    )
    app.extensions["gateway"].registry.reload()
    return app


@pytest.fixture
def slept(monkeypatch) -> list[float]:
    """The waits between tries, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(fallback, "_sleep", waits.append)
    return waits


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def the_request(db_session, flush_audit):
    """The one request row, with its response and attempts, once written."""

    def read() -> Request:
        flush_audit()
        return db_session.scalars(
            sa.select(Request).options(selectinload(Request.attempts), selectinload(Request.response))
        ).one()

    return read


def completion(content: str) -> dict:
    return {
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def sse(*contents: str, done: bool = True) -> str:
    chunks = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]} for text in contents]
    events = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    if done:
        last = {**chunks[0], "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        events.append(f"data: {json.dumps(last)}\n\n")
        events.append("data: [DONE]\n\n")
    return "".join(events)


def ask(client, *, stream: bool = False):
    reply = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": stream})
    return reply, reply.get_data(as_text=True)


def attempts_of(request: Request) -> list[tuple]:
    return [(a.attempt, a.provider, a.status_code) for a in request.attempts]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_down_is_retried_once_then_the_fallback_answers(client, upstream, the_request, slept, stream):
    upstream.post(PRIMARY + "/chat/completions", body=requests.ConnectionError("refused"))
    if stream:
        upstream.post(SECONDARY + "/chat/completions", body=sse("from ", "secondary"))
    else:
        upstream.post(SECONDARY + "/chat/completions", json=completion("from secondary"))
    reply, text = ask(client, stream=stream)
    assert reply.status_code == 200 and ("secondary" in text)
    request = the_request()
    assert attempts_of(request) == [(1, "lm-studio", None), (2, "lm-studio", None), (3, "openai", 200)]
    assert "Cannot connect to provider 'lm-studio'" in request.attempts[0].error
    assert request.attempts[2].error is None and all(a.duration_ms >= 0 for a in request.attempts)
    assert request.provider == "lm-studio"  # where it was routed; the response says who answered
    response = request.response
    assert (response.status, response.status_code, response.provider, response.error) == ("ok", 200, "openai", None)
    assert response.openai_response["choices"][0]["message"]["content"] == "from secondary"
    assert len(slept) == 1 and 0 < slept[0] < 1


def test_429_with_retry_after_within_the_timeout_is_waited_for(client, upstream, the_request, slept):
    upstream.post(PRIMARY + "/chat/completions", status=429, json={"error": {"message": "slow down"}},
                  headers={"Retry-After": "2"})
    upstream.post(PRIMARY + "/chat/completions", json=completion("primary again"))
    reply, text = ask(client)
    assert reply.status_code == 200 and "primary again" in text
    assert slept == [2.0]
    request = the_request()
    assert attempts_of(request) == [(1, "lm-studio", 429), (2, "lm-studio", 200)]
    assert request.attempts[0].error == "Provider 'lm-studio' answered 429: slow down"


def test_429_with_retry_after_beyond_the_timeout_moves_down_the_list(client, upstream, the_request, slept):
    upstream.post(PRIMARY + "/chat/completions", status=429, json={}, headers={"Retry-After": "60"})
    upstream.post(SECONDARY + "/chat/completions", json=completion("from secondary"))
    reply, text = ask(client)
    assert reply.status_code == 200 and "from secondary" in text
    assert slept == []
    assert attempts_of(the_request()) == [(1, "lm-studio", 429), (2, "openai", 200)]


def test_500_then_success_is_one_answer(client, upstream, the_request, slept):
    upstream.post(PRIMARY + "/chat/completions", status=500, json={"error": {"message": "boom"}})
    upstream.post(PRIMARY + "/chat/completions", json=completion("second try"))
    reply, text = ask(client)
    assert reply.status_code == 200 and json.loads(text)["choices"][0]["message"]["content"] == "second try"
    assert len(slept) == 1
    request = the_request()
    assert attempts_of(request) == [(1, "lm-studio", 500), (2, "lm-studio", 200)]
    assert (request.response.status, request.response.provider) == ("ok", "lm-studio")


def test_failure_after_the_first_byte_is_never_retried(client, upstream, the_request, slept):
    upstream.post(PRIMARY + "/chat/completions", body=sse("partial ", done=False))
    upstream.post(SECONDARY + "/chat/completions", body=sse("never"))
    reply, text = ask(client, stream=True)
    assert reply.status_code == 200
    assert "partial" in text and "never" not in text and "upstream_stream_cut" in text
    assert text.endswith("data: [DONE]\n\n")
    assert len(upstream.calls) == 1 and slept == []
    request = the_request()
    assert request.attempts == []  # one call: the request and response rows say it all
    assert (request.response.status, request.response.provider) == ("incomplete", "lm-studio")


def test_a_stream_that_ends_before_its_first_event_is_retried(client, upstream, the_request, slept):
    upstream.post(PRIMARY + "/chat/completions", body="", content_type="text/event-stream")
    upstream.post(PRIMARY + "/chat/completions", body=sse("ok"))
    reply, text = ask(client, stream=True)
    assert reply.status_code == 200 and '"ok"' in text
    request = the_request()
    assert attempts_of(request) == [(1, "lm-studio", None), (2, "lm-studio", 200)]
    assert "before sending anything" in request.attempts[0].error


def test_a_client_error_is_passed_through_without_retry(client, upstream, the_request, slept):
    error = {"error": {"message": "bad model", "type": "invalid_request_error", "param": "model", "code": None}}
    upstream.post(PRIMARY + "/chat/completions", status=400, json=error)
    reply, _ = ask(client)
    assert reply.status_code == 400 and reply.get_json() == error
    assert len(upstream.calls) == 1 and slept == []
    request = the_request()
    assert request.attempts == [] and request.response.status_code == 400


def test_when_everything_fails_the_client_gets_the_last_error(client, upstream, the_request, slept):
    upstream.post(PRIMARY + "/chat/completions", status=503, json={"error": {"message": "primary down"}})
    upstream.post(SECONDARY + "/chat/completions", status=502, json={"error": {"message": "secondary down"}})
    reply, _ = ask(client)
    assert reply.status_code == 502 and reply.get_json()["error"]["message"] == "secondary down"
    request = the_request()
    assert attempts_of(request) == [
        (1, "lm-studio", 503), (2, "lm-studio", 503), (3, "openai", 502), (4, "openai", 502)
    ]
    response = request.response
    assert (response.status, response.status_code, response.provider) == ("error", 502, "openai")
    assert response.error == "secondary down"


# the loop itself -----------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "retry"), [
    (UpstreamUnreachable("x"), True),
    (UpstreamTimeout("x"), True),
    (UpstreamCut("x"), True),
    (UpstreamHTTPError("x", status=429, payload=None), True),
    (UpstreamHTTPError("x", status=500, payload=None), True),
    (UpstreamHTTPError("x", status=503, payload=None), True),
    (UpstreamHTTPError("x", status=400, payload=None), False),
    (UpstreamHTTPError("x", status=401, payload=None), False),
    (UpstreamHTTPError("x", status=404, payload=None), False),
    (UpstreamError("not JSON"), False),
    (InvalidRequest("x"), False),
])
def test_should_retry(error, retry):
    assert should_retry(error) is retry


def _rate_limited(retry_after: str | None) -> UpstreamHTTPError:
    error = UpstreamHTTPError("x", status=429, payload=None)
    error.retry_after = retry_after
    return error


def test_retry_after_in_seconds_or_as_an_http_date():
    assert retry_delay_s(_rate_limited("7")) == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_delay_s(_rate_limited(later)) <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_delay_s(_rate_limited(past)) == 0
    for unreadable in (None, "", "soon"):
        assert 0.5 * fallback.BACKOFF_S <= retry_delay_s(_rate_limited(unreadable)) <= 1.5 * fallback.BACKOFF_S


def _routes(*names: str) -> list[Route]:
    return [Route(MockProvider(name=name), "m") for name in names]


def test_past_the_deadline_nothing_more_is_tried(slept):
    calls: list[str] = []

    def call(route, payload):
        calls.append(route.provider.name)
        raise UpstreamUnreachable(f"{route.provider.name} down")

    attempts: list = []
    with pytest.raises(UpstreamUnreachable, match="a down"):
        call_with_fallbacks(_routes("a", "b"), first_payload={}, build=lambda route: {}, call=call,
                            deadline=0.0, attempts=attempts)
    assert calls == ["a"] and [a.provider for a in attempts] == ["a"] and slept == []


def test_a_fallback_that_cannot_take_the_request_is_skipped(slept):
    def build(route):
        if route.provider.name == "b":
            raise InvalidRequest("b needs a model")
        return {"for": route.provider.name}

    def call(route, payload):
        if route.provider.name == "a":
            raise UpstreamHTTPError("a busy", status=503, payload=None)
        return payload

    attempts: list = []
    route, payload, result = call_with_fallbacks(
        _routes("a", "b", "c"), first_payload={"for": "a"}, build=build, call=call,
        deadline=float("inf"), attempts=attempts,
    )
    assert (route.provider.name, result) == ("c", {"for": "c"})
    assert [(a.number, a.provider, a.status_code) for a in attempts] == [(1, "a", 503), (2, "a", 503), (3, "c", 200)]



class _Listed(EventStream):
    def __init__(self, events: list) -> None:
        self.events, self.closed = events, False

    def __iter__(self):
        yield from self.events

    def close(self) -> None:
        self.closed = True


def test_a_primed_stream_gives_its_first_event_when_iterated_not_when_asked_for_its_batches():
    upstream = _Listed(["first", "second", "third"])
    primed = open_primed(MockProvider(name="mock"), lambda: upstream)
    primed.batches()  # asked for, never iterated: the first batch stays
    assert list(primed) == ["first", "second", "third"]
    primed.close()
    assert upstream.closed
