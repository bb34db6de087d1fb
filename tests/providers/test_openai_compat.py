"""The OpenAI-compatible provider against a faked upstream (``responses``)."""

from __future__ import annotations

import json
import re

import pytest
import requests
import responses

from app.errors import (
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from app.providers.base import Completion, Conversation
from app.providers.openai_compat import OpenAICompatibleProvider
from app.providers.sse import DONE

BASE = "http://upstream.test/v1"
CHAT_URL = BASE + "/chat/completions"
CONVERSATION = Conversation(session_id="s-1")
PAYLOAD = {"model": "gpt-test", "messages": [{"role": "user", "content": "Hi ü"}]}
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-test",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


@pytest.fixture
def upstream():
    with responses.RequestsMock() as mocked:
        yield mocked


def provider(*, api_key: str | None = None, base_url: str = BASE) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(name="up", base_url=base_url, timeout_s=5, api_key=api_key)


def sse(*events: str) -> bytes:
    return "".join(f"data: {event}\n\n" for event in events).encode()


# build_request ---------------------------------------------------------------------------


def test_build_request_sets_the_model_and_leaves_the_body_alone():
    body = {"model": "up/gpt-test", "messages": [], "temperature": 0.2}
    payload = provider().build_request(body, model="gpt-test", conversation=CONVERSATION)
    assert payload == {"model": "gpt-test", "messages": [], "temperature": 0.2}
    assert body["model"] == "up/gpt-test"


def test_build_request_adds_no_stream_options_without_stream():
    body = {"messages": [], "stream": False}
    payload = provider().build_request(body, model="m", conversation=CONVERSATION)
    assert "stream_options" not in payload


def test_build_request_forces_usage_on_streams_keeping_other_options():
    options = {"include_usage": False, "include_obfuscation": False}
    body = {"messages": [], "stream": True, "stream_options": options}
    payload = provider().build_request(body, model="m", conversation=CONVERSATION)
    assert payload["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    assert options == {"include_usage": False, "include_obfuscation": False}  # the client's dict untouched


@pytest.mark.parametrize("options", [None, "yes", ["include_usage"]])
def test_build_request_replaces_stream_options_that_are_not_an_object(options):
    body = {"messages": [], "stream": True, "stream_options": options}
    payload = provider().build_request(body, model="m", conversation=CONVERSATION)
    assert payload["stream_options"] == {"include_usage": True}


# complete --------------------------------------------------------------------------------


def test_complete_posts_the_payload_with_the_api_key(upstream):
    upstream.post(CHAT_URL, json=ANSWER)
    completion = provider(api_key="sk-test").complete(PAYLOAD, conversation=CONVERSATION)
    assert isinstance(completion, Completion)
    assert completion.body == ANSWER
    assert completion.raw is None
    [call] = upstream.calls
    assert call.request.headers["Authorization"] == "Bearer sk-test"
    assert call.request.headers["Content-Type"] == "application/json"
    assert json.loads(call.request.body) == PAYLOAD


def test_complete_sends_no_authorization_without_an_api_key(upstream):
    upstream.post(CHAT_URL, json=ANSWER)
    provider(api_key=None).complete(PAYLOAD, conversation=CONVERSATION)
    assert "Authorization" not in upstream.calls[0].request.headers


def test_trailing_slash_of_the_base_url_is_not_doubled(upstream):
    upstream.post(CHAT_URL, json=ANSWER)
    provider(base_url=BASE + "/").complete(PAYLOAD, conversation=CONVERSATION)
    assert upstream.calls[0].request.url == CHAT_URL


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, {"error": {"message": "bad model", "type": "invalid_request_error", "param": "model",
                         "code": "model_not_found"}}),
        (401, {"error": {"message": "no key", "type": "authentication_error", "code": None}}),
        (422, {"error": "a plain string error"}),
        (500, {"error": {"message": "boom", "type": "server_error"}}),
    ],
)
def test_upstream_http_error_passes_status_and_body_through(upstream, status, error):
    upstream.post(CHAT_URL, json=error, status=status)
    with pytest.raises(UpstreamHTTPError) as caught:
        provider().complete(PAYLOAD, conversation=CONVERSATION)
    assert caught.value.status == status
    assert caught.value.code == f"upstream_http_{status}"
    assert caught.value.body() == error
    assert caught.value.retry_after is None


def test_upstream_http_error_message_names_the_provider_and_upstream_message(upstream):
    upstream.post(CHAT_URL, json={"error": {"message": "bad model"}}, status=404)
    with pytest.raises(UpstreamHTTPError) as caught:
        provider().complete(PAYLOAD, conversation=CONVERSATION)
    assert caught.value.message == "Provider 'up' answered 404: bad model"


def test_retry_after_is_captured(upstream):
    upstream.post(
        CHAT_URL, json={"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "7"}
    )
    with pytest.raises(UpstreamHTTPError) as caught:
        provider().complete(PAYLOAD, conversation=CONVERSATION)
    assert caught.value.status == 429
    assert caught.value.retry_after == "7"


def test_non_json_error_body_is_wrapped_in_the_openai_shape(upstream):
    upstream.post(CHAT_URL, body="<html>Bad Gateway</html>", status=502, content_type="text/html")
    with pytest.raises(UpstreamHTTPError) as caught:
        provider().complete(PAYLOAD, conversation=CONVERSATION)
    assert caught.value.status == 502
    assert caught.value.payload is None
    assert caught.value.body() == {
        "error": {
            "message": "Provider 'up' answered 502: <html>Bad Gateway</html>",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_http_502",
        }
    }


def test_json_error_body_without_error_key_is_wrapped(upstream):
    upstream.post(CHAT_URL, json={"detail": "nope"}, status=400)
    with pytest.raises(UpstreamHTTPError) as caught:
        provider().complete(PAYLOAD, conversation=CONVERSATION)
    body = caught.value.body()
    assert body["error"]["code"] == "upstream_http_400"
    assert body["error"]["type"] == "upstream_error"
    assert '"detail"' in body["error"]["message"]


def test_empty_error_body_falls_back_to_the_reason(upstream):
    upstream.post(CHAT_URL, body=b"", status=503)
    with pytest.raises(UpstreamHTTPError) as caught:
        provider().complete(PAYLOAD, conversation=CONVERSATION)
    assert caught.value.message == "Provider 'up' answered 503: Service Unavailable"


def test_connection_error_is_unreachable_without_credentials(upstream):
    secret_base = "http://alice:s3cr3t@upstream.test:8080/v1?key=k3y"
    upstream.add(
        responses.POST,
        re.compile(r"http://.*upstream\.test.*"),
        body=requests.ConnectionError(
            f"Max retries exceeded with url: {secret_base}/chat/completions (Connection refused)"
        ),
    )
    with pytest.raises(UpstreamUnreachable) as caught:
        provider(base_url=secret_base).complete(PAYLOAD, conversation=CONVERSATION)
    error = caught.value
    assert (error.status, error.code) == (502, "upstream_unreachable")
    assert "http://upstream.test:8080/v1" in error.message
    shown = str(error) + json.dumps(error.body())
    for secret in ("alice", "s3cr3t", "k3y"):
        assert secret not in shown


@pytest.mark.parametrize("exception", [requests.ReadTimeout, requests.ConnectTimeout])
def test_timeouts_are_504(upstream, exception):
    upstream.post(CHAT_URL, body=exception("timed out"))
    with pytest.raises(UpstreamTimeout) as caught:
        provider().complete(PAYLOAD, conversation=CONVERSATION)
    assert (caught.value.status, caught.value.code) == (504, "upstream_timeout")
    assert "5s" in caught.value.message


@pytest.mark.parametrize(
    ("body", "content_type"), [("not json at all", "text/plain"), ("[1, 2, 3]", "application/json")]
)
def test_a_200_that_is_not_a_json_object_is_an_upstream_error(upstream, body, content_type):
    upstream.post(CHAT_URL, body=body, content_type=content_type)
    with pytest.raises(UpstreamError) as caught:
        provider().complete(PAYLOAD, conversation=CONVERSATION)
    assert type(caught.value) is UpstreamError
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")


# open_stream -----------------------------------------------------------------------------

CHUNK_1 = '{"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hé"}, "finish_reason": null}]}'
CHUNK_2 = '{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'


def test_open_stream_yields_exact_data_parsed_chunks_and_done(upstream):
    upstream.post(CHAT_URL, body=sse(CHUNK_1, CHUNK_2, DONE), content_type="text/event-stream")
    stream_payload = {**PAYLOAD, "stream": True}
    events = provider(api_key="sk-test").open_stream(stream_payload, conversation=CONVERSATION)
    try:
        received = list(events)
    finally:
        events.close()
    assert [event.data for event in received] == [CHUNK_1, CHUNK_2, DONE]
    assert [event.chunk for event in received] == [json.loads(CHUNK_1), json.loads(CHUNK_2), None]
    request = upstream.calls[0].request
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert json.loads(request.body) == stream_payload


def test_malformed_chunk_keeps_its_data_with_no_chunk(upstream):
    upstream.post(CHAT_URL, body=sse('{"id": "c1", "cho', CHUNK_2, DONE))
    events = provider().open_stream({**PAYLOAD, "stream": True}, conversation=CONVERSATION)
    received = list(events)
    events.close()
    assert (received[0].data, received[0].chunk) == ('{"id": "c1", "cho', None)
    assert received[1].chunk == json.loads(CHUNK_2)


def test_stream_error_before_first_byte_raises_from_open_stream(upstream):
    error = {"error": {"message": "overloaded", "type": "server_error"}}
    upstream.post(CHAT_URL, json=error, status=500)
    with pytest.raises(UpstreamHTTPError) as caught:
        provider().open_stream({**PAYLOAD, "stream": True}, conversation=CONVERSATION)
    assert caught.value.status == 500
    assert caught.value.body() == error


def test_stream_rate_limit_keeps_retry_after(upstream):
    upstream.post(CHAT_URL, body="busy", status=429, headers={"Retry-After": "30"})
    with pytest.raises(UpstreamHTTPError) as caught:
        provider().open_stream({**PAYLOAD, "stream": True}, conversation=CONVERSATION)
    assert caught.value.retry_after == "30"
    assert caught.value.body()["error"]["message"] == "Provider 'up' answered 429: busy"


@pytest.mark.parametrize(
    ("exception", "expected"),
    [(requests.ConnectionError, UpstreamUnreachable), (requests.ReadTimeout, UpstreamTimeout)],
)
def test_stream_transport_failures_raise_from_open_stream(upstream, exception, expected):
    upstream.post(CHAT_URL, body=exception("nope"))
    with pytest.raises(expected):
        provider().open_stream({**PAYLOAD, "stream": True}, conversation=CONVERSATION)


# list_models -----------------------------------------------------------------------------


def test_list_models_keeps_objects_with_an_id(upstream):
    models = [{"id": "a", "object": "model"}, {"object": "model"}, "junk", {"id": "b", "owned_by": "x"}]
    upstream.get(BASE + "/models", json={"object": "list", "data": models})
    listed = provider(api_key="sk-test").list_models()
    assert listed == [{"id": "a", "object": "model"}, {"id": "b", "owned_by": "x"}]
    assert upstream.calls[0].request.headers["Authorization"] == "Bearer sk-test"


def test_list_models_without_data_is_empty(upstream):
    upstream.get(BASE + "/models", json={"object": "list"})
    assert provider().list_models() == []


@pytest.mark.parametrize(
    "body", ["not json", "[1, 2]", '{"data": null}', '{"data": 5}'], ids=["text", "list", "null", "number"]
)
def test_list_models_in_an_unknown_shape_is_an_upstream_error(upstream, body):
    # The catalogue skips a provider that raises UpstreamError; anything else fails the whole listing.
    upstream.get(BASE + "/models", body=body)
    with pytest.raises(UpstreamError):
        provider().list_models()


def test_list_models_http_error(upstream):
    upstream.get(BASE + "/models", json={"error": {"message": "no"}}, status=401)
    with pytest.raises(UpstreamHTTPError) as caught:
        provider().list_models()
    assert caught.value.status == 401
