"""The official openai SDK -> gunicorn gateway -> llmock, with the rows each call leaves."""

from __future__ import annotations

import json
import uuid

import openai
import pytest
import requests
import sqlalchemy as sa
from llmock.scenarios import Delay, Fail, Reply, StreamFault, ToolCall

from app.db import get_engine
from tests.e2e.helpers import llmock_gateway_env, rows_for_session

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

MODEL = "gpt-4o-mini"
API_KEY = "sk-e2e-secret-never-stored"
MESSAGES = [{"role": "user", "content": "Say something about gateways."}]


@pytest.fixture(scope="module")
def gateway(start_gateway, upstream, e2e_database_url):
    env = llmock_gateway_env(e2e_database_url, upstream, REQUEST_TIMEOUT="2500")
    with start_gateway(env) as base:
        yield base


@pytest.fixture
def session_id() -> str:
    return f"e2e-{uuid.uuid4()}"


@pytest.fixture
def sdk(gateway, session_id, fresh_upstream) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway + "/v1", api_key=API_KEY, max_retries=0,
        default_headers={"X-Session-Id": session_id},
    )


def only_row(url: str, session_id: str):
    rows = rows_for_session(url, session_id)
    assert len(rows) == 1, rows
    assert rows[0].response is not None, "no response row was written"
    return rows[0].request, rows[0].response


def test_non_stream_answer_is_relayed_and_recorded(sdk, e2e_database_url, session_id):
    completion = sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    request, response = only_row(e2e_database_url, session_id)
    assert completion.choices[0].message.content
    assert request.provider == "lm-studio" and request.model == MODEL and request.stream is False
    assert request.openai_request["messages"] == MESSAGES
    assert request.provider_request["model"] == MODEL
    assert response.status == "ok" and response.status_code == 200
    assert response.openai_response["choices"][0]["message"]["content"] == completion.choices[0].message.content
    assert response.prompt_tokens == completion.usage.prompt_tokens
    assert response.completion_tokens == completion.usage.completion_tokens
    assert response.total_tokens == completion.usage.total_tokens
    assert response.usage_estimated is False
    assert response.finish_reason == completion.choices[0].finish_reason
    assert response.duration_ms >= 0


def _collect(stream):
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, content


def test_stream_with_include_usage_forwards_the_usage_chunk(sdk, e2e_database_url, session_id):
    stream = sdk.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks, content = _collect(stream)
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    request, response = only_row(e2e_database_url, session_id)
    assert request.stream is True
    assert request.provider_request["stream_options"] == {"include_usage": True}
    assert response.status == "ok"
    assert response.openai_response["choices"][0]["message"]["content"] == content
    assert (response.prompt_tokens, response.completion_tokens, response.total_tokens) == (
        usage.prompt_tokens, usage.completion_tokens, usage.total_tokens
    )
    assert response.usage_estimated is False
    assert response.finish_reason == "stop"
    assert response.ttft_ms is not None and 0 <= response.ttft_ms <= response.duration_ms


def test_stream_without_include_usage_hides_usage_but_records_it(sdk, e2e_database_url, session_id):
    chunks, content = _collect(sdk.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert content
    assert all(chunk.choices for chunk in chunks), "a usage-only chunk reached a client that did not ask"
    request, response = only_row(e2e_database_url, session_id)
    assert "stream_options" not in request.openai_request
    assert request.provider_request["stream_options"] == {"include_usage": True}
    assert response.status == "ok" and response.usage_estimated is False
    assert response.completion_tokens > 0
    assert response.total_tokens == response.prompt_tokens + response.completion_tokens


def test_streamed_tool_calls_are_relayed_and_assembled(sdk, e2e_database_url, session_id, upstream):
    upstream.state.scenarios.add(Reply(tool_calls=(ToolCall("get_weather", {"city": "Paris"}),)))
    tools = [{
        "type": "function",
        "function": {
            "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }]
    chunks, _ = _collect(sdk.chat.completions.create(model=MODEL, messages=MESSAGES, tools=tools, stream=True))
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or []
    )
    assert json.loads(arguments) == {"city": "Paris"}
    _, response = only_row(e2e_database_url, session_id)
    (call,) = response.openai_response["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert response.finish_reason == "tool_calls" and response.status == "ok"


@pytest.mark.parametrize(("status", "error_class"), [(429, openai.RateLimitError), (500, openai.InternalServerError)])
def test_upstream_http_errors_pass_through_once_retrying_is_pointless(
    sdk, e2e_database_url, session_id, upstream, status, error_class
):
    # 500: retried once, then passed through. 429 asking for 30 s (beyond the 2.5 s request
    # timeout): not retried at all, passed through with its Retry-After.
    upstream.state.scenarios.add(
        Fail(status, message=f"scripted {status}", retry_after=30 if status == 429 else None, times=None)
    )
    with pytest.raises(error_class) as caught:
        sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == status
    request, response = only_row(e2e_database_url, session_id)
    assert response.status == "error" and response.status_code == status
    assert f"scripted {status}" in response.error
    assert response.prompt_tokens is None
    calls = sum(r.path.endswith("/chat/completions") for r in upstream.state.journal.records(wait=1))
    if status == 429:
        assert caught.value.response.headers["Retry-After"] == "30"
        assert calls == 1 and request.attempts == []
    else:
        assert calls == 2
        assert [(a.attempt, a.provider, a.status_code) for a in request.attempts] == [
            (1, "lm-studio", 500), (2, "lm-studio", 500)
        ]


def test_upstream_timeout_is_504(sdk, e2e_database_url, session_id, upstream):
    upstream.state.scenarios.add(Delay(5))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 504
    _, response = only_row(e2e_database_url, session_id)
    assert response.status == "error" and response.status_code == 504
    assert "did not answer" in response.error


@pytest.mark.parametrize("kind", ["disconnect", "truncate"])
def test_stream_cut_by_upstream_ends_with_error_event_and_keeps_partial(
    sdk, e2e_database_url, session_id, upstream, kind
):
    upstream.state.scenarios.add(StreamFault(kind, after_chunks=3))
    received = []
    with pytest.raises(openai.APIError):
        for chunk in sdk.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    _, response = only_row(e2e_database_url, session_id)
    assert response.status == "incomplete" and response.status_code == 200
    assert response.error and response.client_disconnected is False
    assert response.openai_response["choices"][0]["message"]["content"] == "".join(received)
    assert response.finish_reason is None


def test_client_disconnect_mid_stream_is_recorded(gateway, e2e_database_url, session_id, fresh_upstream):
    fresh_upstream.state.scenarios.add(Reply(text="word " * 400))
    fresh_upstream.state.scenarios.add(StreamFault("stall", after_chunks=2, stall_seconds=1.0))
    reply = requests.post(
        gateway + "/v1/chat/completions",
        json={"model": MODEL, "messages": MESSAGES, "stream": True},
        headers={"X-Session-Id": session_id}, stream=True, timeout=10,
    )
    assert reply.status_code == 200
    next(reply.iter_lines())  # the stream has begun
    reply.close()  # the client walks away
    _, response = only_row(e2e_database_url, session_id)
    assert response.status == "incomplete" and response.client_disconnected is True
    content = response.openai_response["choices"][0]["message"]["content"] or ""
    assert len(content) < len("word " * 400)


def test_no_secret_reaches_the_database(sdk, e2e_database_url, session_id):
    sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    only_row(e2e_database_url, session_id)
    with get_engine(e2e_database_url).connect() as connection:
        for table in ("requests", "responses", "sessions"):
            for row in connection.execute(sa.text(f"SELECT * FROM {table}")):
                assert API_KEY not in json.dumps([str(value) for value in row])
