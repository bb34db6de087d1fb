"""Embeddings, legacy completions and the Responses API: the official openai SDK -> gunicorn -> llmock.

The active provider (lm-studio, on llmock) serves chat, embeddings and the Responses API
itself; ``chatonly`` is the same llmock told it serves only chat (``serves=chat``), so the
gateway translates completions and responses through chat for it; the built-in ``mock``
serves legacy completions itself. Every call must leave one request row and one response
row that agree with what the SDK got.
"""

from __future__ import annotations

import json
import time
import uuid

import openai
import pytest
import requests
from llmock.scenarios import Delay, Fail, Match, StreamFault, ToolCall
from llmock.scenarios import Reply as Say

from app.services.admin.live_registry import CHECK_INTERVAL_S
from tests.e2e.helpers import llmock_gateway_env, rows_for_session

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

MODEL = "gpt-4o-mini"
CHAT_ONLY = "chatonly/" + MODEL
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def gateway(start_gateway, upstream, e2e_database_url):
    env = llmock_gateway_env(e2e_database_url, upstream, REQUEST_TIMEOUT="2500")
    with start_gateway(env) as base:
        reply = requests.post(base + "/v1/providers", json={
            "name": "chatonly", "type": "openai-compatible", "base_url": upstream.base_url("openai"),
            "options": {"serves": "chat"}}, timeout=10)
        assert reply.status_code == 201, reply.text
        _wait_until_every_worker_routes(base, CHAT_ONLY)
        yield base


def _wait_until_every_worker_routes(base: str, model: str) -> None:
    # Each worker re-reads the providers within CHECK_INTERVAL_S (plus one reload). New connections
    # may all reach one worker, so that wait is what makes sure; the calls then check the routing.
    # Legacy completions, not chat: a worker that has not reloaded yet sends "chatonly/..." to the
    # active provider, which answers a chat call too but not this one.
    time.sleep(CHECK_INTERVAL_S * 2 + 0.5)
    body = {"model": model, "prompt": "ready?", "max_tokens": 4}
    deadline, answered = time.monotonic() + 10, 0
    while answered < 6:  # six in a row on new connections
        assert time.monotonic() < deadline, "the new provider did not reach every worker"
        reply = requests.post(base + "/v1/completions", json=body, headers={"Connection": "close"}, timeout=10)
        answered = answered + 1 if reply.status_code == 200 else 0


@pytest.fixture
def session_id() -> str:
    return f"e2e-{uuid.uuid4()}"


@pytest.fixture
def sdk(gateway, session_id, fresh_upstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway + "/v1", api_key="sk-e2e", max_retries=0,
                         default_headers={"X-Session-Id": session_id})


def rows(url: str, session_id: str, expect: int = 1):
    found = rows_for_session(url, session_id, expect=expect)
    assert len(found) == expect and all(row.response is not None for row in found), found
    return [(row.request, row.response) for row in found]


def upstream_paths(upstream) -> list[str]:
    return [record.path for record in upstream.state.journal.records(wait=1)]


# embeddings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("given", ["one text", ["a batch", "of three", "texts"]])
def test_embeddings_one_and_a_batch(sdk, e2e_database_url, session_id, given):
    result = sdk.embeddings.create(model=MODEL, input=given)
    count = 1 if isinstance(given, str) else len(given)
    assert len(result.data) == count and result.data[0].embedding
    [(request, response)] = rows(e2e_database_url, session_id)
    assert (request.path, request.provider, request.stream) == ("/v1/embeddings", "lm-studio", False)
    assert request.openai_request["input"] == given
    assert response.status == "ok" and response.prompt_tokens == result.usage.prompt_tokens
    assert response.openai_response["embeddings"] == {
        "count": count, "dimensions": len(result.data[0].embedding), "vectors_stored": False}


# legacy completions -------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["mock/any-model", CHAT_ONLY])
def test_completions_native_and_translated(sdk, e2e_database_url, session_id, upstream, model):
    answer = sdk.completions.create(model=model, prompt="Say hello", max_tokens=16)
    assert answer.object == "text_completion" and answer.choices[0].text
    [(request, response)] = rows(e2e_database_url, session_id)
    assert request.path == "/v1/completions" and request.provider == model.split("/")[0]
    assert response.openai_response["choices"][0]["text"] == answer.choices[0].text
    assert (response.status, response.total_tokens) == ("ok", answer.usage.total_tokens)
    if model == CHAT_ONLY:  # translated: llmock saw a chat call
        assert upstream_paths(upstream)[-1].endswith("/chat/completions")
        assert request.provider_request["messages"] == [{"role": "user", "content": "Say hello"}]


@pytest.mark.parametrize("model", ["mock/any-model", CHAT_ONLY])
def test_completions_stream_native_and_translated(sdk, e2e_database_url, session_id, model):
    chunks = list(sdk.completions.create(model=model, prompt="Say hello", stream=True))
    text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
    assert text and {chunk.object for chunk in chunks} == {"text_completion"}
    [(request, response)] = rows(e2e_database_url, session_id)
    assert (request.path, request.stream, response.status) == ("/v1/completions", True, "ok")
    assert response.openai_response["choices"][0]["text"] == text
    assert response.ttft_ms is not None and response.completion_tokens > 0


# the Responses API --------------------------------------------------------------------------

@pytest.mark.parametrize("model", [MODEL, CHAT_ONLY])
def test_responses_native_and_translated(sdk, e2e_database_url, session_id, model):
    answer = sdk.responses.create(model=model, instructions="Be brief.", input="Say hello")
    assert answer.id.startswith("resp_") and answer.output_text
    [(request, response)] = rows(e2e_database_url, session_id)
    assert (request.path, response.response_id, response.status) == ("/v1/responses", answer.id, "ok")
    assert response.prompt_tokens == answer.usage.input_tokens
    assert response.completion_tokens == answer.usage.output_tokens
    assert sdk.responses.retrieve(answer.id).output_text == answer.output_text
    [item] = sdk.responses.input_items.list(answer.id).data
    assert item.role == "user"


@pytest.mark.parametrize("model", [MODEL, CHAT_ONLY])
def test_responses_stream_native_and_translated(sdk, e2e_database_url, session_id, model):
    with sdk.responses.stream(model=model, input="Say hello") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and final.output_text
    [(request, response)] = rows(e2e_database_url, session_id)
    assert (request.stream, response.response_id, response.status) == (True, final.id, "ok")
    assert response.ttft_ms is not None and response.total_tokens == final.usage.total_tokens


@pytest.mark.parametrize("model", [MODEL, CHAT_ONLY])
@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_loop_continues_by_previous_response_id(sdk, e2e_database_url, session_id, upstream, model, stream):
    upstream.state.scenarios.add(Say(tool_calls=(ToolCall("get_weather", {"city": "Paris"}),)))
    if stream:
        with sdk.responses.stream(model=model, input="Weather in Paris?", tools=[WEATHER]) as events:
            deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
            first = events.get_final_response()
        assert json.loads(deltas) == {"city": "Paris"}
    else:
        first = sdk.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    # The result goes back the moment the answer ends (an agent's loop): the first turn is committed.
    second = sdk.responses.create(model=model, previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "clear"}'}])
    assert second.output_text
    (_, one), (request, two) = rows(e2e_database_url, session_id, expect=2)
    assert (one.response_id, two.response_id) == (first.id, second.id)
    if model == CHAT_ONLY:  # the earlier turn rebuilt from the audit trail, as chat messages
        sent = request.provider_request["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
        assert sent[1]["tool_calls"][0]["id"] == call.call_id and sent[2]["tool_call_id"] == call.call_id
    else:  # inlined as input items, so any upstream continues it
        kinds = [item.get("type", "message") for item in request.provider_request["input"]]
        assert kinds == ["message", "function_call", "function_call_output"]


# faults, per endpoint -----------------------------------------------------------------------

CALLS = {
    "embeddings": lambda sdk: sdk.embeddings.create(model=MODEL, input="x"),
    "completions": lambda sdk: sdk.completions.create(model=CHAT_ONLY, prompt="x"),
    "responses": lambda sdk: sdk.responses.create(model=MODEL, input="x"),
    "responses translated": lambda sdk: sdk.responses.create(model=CHAT_ONLY, input="x"),
}


@pytest.mark.parametrize("endpoint", CALLS)
@pytest.mark.parametrize(("fault", "status"), [
    (Fail(429, message="scripted 429", retry_after=30, times=None), 429),
    (Fail(500, message="scripted 500", times=None), 500),
    (Delay(5), 504),
])
def test_upstream_faults_get_the_chat_error_table_on_every_endpoint(
    sdk, e2e_database_url, session_id, upstream, endpoint, fault, status
):
    upstream.state.scenarios.add(fault)
    with pytest.raises(openai.APIStatusError) as caught:
        CALLS[endpoint](sdk)
    assert caught.value.status_code == status
    [(request, response)] = rows(e2e_database_url, session_id)
    assert request.path == "/v1/" + endpoint.split()[0]
    assert (response.status, response.status_code) == ("error", status)
    if status == 429:
        assert caught.value.response.headers["Retry-After"] == "30"


@pytest.mark.parametrize("model", [MODEL, CHAT_ONLY])
def test_a_responses_stream_cut_upstream_ends_with_an_error_event_and_keeps_what_was_said(
    sdk, e2e_database_url, session_id, upstream, model
):
    upstream.state.scenarios.add(Say(text="word " * 200))
    upstream.state.scenarios.add(StreamFault("disconnect", after_chunks=8, match=Match(stream=True)))
    events = list(sdk.responses.create(model=model, input="Talk", stream=True))
    seen = [event.type for event in events]
    assert seen[0] == "response.created" and "response.completed" not in seen
    assert seen[-1] == "error" and events[-1].code == "upstream_stream_cut"
    said = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert said, "the cut came before any text: move it later"
    [(_, response)] = rows(e2e_database_url, session_id)
    assert response.status == "incomplete" and response.error
    assert response.openai_response["status"] == "incomplete"
    [item] = response.openai_response["output"]
    assert (item["status"], item["content"][0]["text"]) == ("incomplete", said)
