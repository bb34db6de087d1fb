"""POST /v1/embeddings, /v1/completions and /v1/responses through the Flask app, upstreams faked with `responses`.

Two OpenAI-compatible providers on the same fake upstream: ``full`` serves every endpoint
itself (passed through), ``chatonly`` has ``serves=chat`` (completions and responses are
translated through chat). Each call must leave one request row and one response row that
say which endpoint was called.
"""

from __future__ import annotations

import json

import pytest
import requests
import responses
import sqlalchemy as sa

from app.models import Request, Response

UPSTREAM = "http://upstream.test/v1"
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client(app):
    client = app.test_client()
    for name, options in (("full", {}), ("chatonly", {"serves": "chat"})):
        reply = client.post("/v1/providers", json={
            "name": name, "type": "openai-compatible", "base_url": UPSTREAM, "options": options, "timeout_ms": 2000})
        assert reply.status_code == 201, reply.get_json()
    return client


@pytest.fixture
def rows(db_session, flush_audit):
    def read() -> list[tuple[Request, Response]]:
        flush_audit()
        db_session.expire_all()
        pairs = db_session.execute(
            sa.select(Request, Response).join(Response, Response.request_id == Request.id).order_by(Request.id)
        ).all()
        assert len(pairs) == db_session.scalar(sa.select(sa.func.count()).select_from(Request))
        return [tuple(pair) for pair in pairs]

    return read


def chat_answer(content: str = "Hi there", finish: str = "stop", tool_calls: list | None = None) -> dict:
    message: dict = {"role": "assistant", "content": content}
    if tool_calls:
        message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": USAGE}


def sse(*chunks: dict) -> bytes:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"


def chat_chunk(content: str | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    choices = [] if usage else [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}]
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices,
            **({"usage": usage} if usage else {})}


def events(reply) -> list[tuple[str | None, dict | str]]:
    """A Responses API stream as (event name, data) pairs."""
    out = []
    for block in reply.get_data(as_text=True).split("\n\n"):
        if not block.strip():
            continue
        name, data = None, ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
        out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


# embeddings ---------------------------------------------------------------------------------

VECTORS = {"object": "list", "model": "e", "usage": {"prompt_tokens": 4, "total_tokens": 4},
           "data": [{"object": "embedding", "index": i, "embedding": [0.1 * i, 0.2, 0.3]} for i in range(2)]}


def test_embeddings_pass_through_and_the_record_keeps_count_and_dimensions_not_vectors(client, upstream, rows):
    upstream.post(UPSTREAM + "/embeddings", json=VECTORS)
    reply = client.post("/v1/embeddings", json={"model": "full/e", "input": ["a", "b"]})
    assert reply.status_code == 200 and reply.get_json() == VECTORS
    assert json.loads(upstream.calls[0].request.body) == {"model": "e", "input": ["a", "b"]}
    [(request, response)] = rows()
    assert (request.path, request.provider, request.model) == ("/v1/embeddings", "full", "e")
    assert (response.status, response.status_code, response.prompt_tokens, response.completion_tokens) == (
        "ok", 200, 4, 0)
    assert response.openai_response["embeddings"] == {"count": 2, "dimensions": 3, "vectors_stored": False}
    assert "data" not in response.openai_response


def test_embedding_vectors_are_kept_when_asked(make_settings, upstream, db_session, flush_audit):
    from app import create_app

    app = create_app(make_settings(store_embedding_vectors=True))
    upstream.post("http://localhost:1234/v1/embeddings", json=VECTORS)
    client = app.test_client()
    client.post("/v1/providers", json={"name": "full", "type": "openai-compatible", "base_url": "http://localhost:1234/v1"})
    assert client.post("/v1/embeddings", json={"model": "full/e", "input": "a"}).status_code == 200
    app.extensions["gateway"].stop_background()
    assert db_session.scalars(sa.select(Response)).one().openai_response == VECTORS


def test_embeddings_from_a_chat_only_provider_are_refused_and_recorded(client, upstream, rows):
    reply = client.post("/v1/embeddings", json={"model": "chatonly/e", "input": "a"})
    assert reply.status_code == 400
    assert reply.get_json()["error"]["code"] == "endpoint_not_supported"
    assert not upstream.calls
    [(request, response)] = rows()
    assert (request.path, response.status, response.status_code) == ("/v1/embeddings", "error", 400)


# legacy completions -------------------------------------------------------------------------

def test_completions_pass_through_to_a_provider_that_serves_them(client, upstream, rows):
    answer = {"id": "cmpl-1", "object": "text_completion", "model": "m", "usage": USAGE,
              "choices": [{"index": 0, "text": " world", "finish_reason": "stop", "logprobs": None}]}
    upstream.post(UPSTREAM + "/completions", json=answer)
    reply = client.post("/v1/completions", json={"model": "full/m", "prompt": "hello", "max_tokens": 3})
    assert reply.get_json() == answer
    [(request, response)] = rows()
    assert (request.path, response.finish_reason, response.total_tokens) == ("/v1/completions", "stop", 7)


def test_completions_are_translated_through_chat_for_a_chat_only_provider(client, upstream, rows):
    upstream.post(UPSTREAM + "/chat/completions", json=chat_answer(" world"))
    reply = client.post("/v1/completions", json={"model": "chatonly/m", "prompt": "hello"})
    body = reply.get_json()
    assert (body["object"], body["choices"][0]["text"], body["usage"]) == ("text_completion", " world", USAGE)
    sent = json.loads(upstream.calls[0].request.body)
    assert sent["messages"] == [{"role": "user", "content": "hello"}]
    [(request, response)] = rows()
    assert request.path == "/v1/completions" and response.openai_response == body


def test_a_translated_completions_stream_speaks_text_completion_chunks(client, upstream, rows):
    upstream.post(UPSTREAM + "/chat/completions", body=sse(
        chat_chunk("Hel"), chat_chunk("lo"), chat_chunk(finish="stop"), chat_chunk(usage=USAGE)))
    reply = client.post("/v1/completions", json={"model": "chatonly/m", "prompt": "hi", "stream": True})
    blocks = [b for b in reply.get_data(as_text=True).split("\n\n") if b]
    assert blocks[-1] == "data: [DONE]"
    chunks = [json.loads(b.removeprefix("data: ")) for b in blocks[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "Hello"
    [(_, response)] = rows()
    assert (response.status, response.finish_reason, response.total_tokens) == ("ok", "stop", 7)
    assert response.ttft_ms is not None


# the Responses API --------------------------------------------------------------------------

def test_a_response_passes_through_under_the_gateways_own_id(client, upstream, rows):
    upstream.post(UPSTREAM + "/responses", json={
        "id": "resp_upstream", "object": "response", "status": "completed", "model": "m",
        "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi"}]}],
        "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}})
    reply = client.post("/v1/responses", json={"model": "full/m", "input": "hello", "instructions": "be brief"})
    body = reply.get_json()
    assert body["id"].startswith("resp_") and body["id"] != "resp_upstream"
    sent = json.loads(upstream.calls[0].request.body)
    assert sent["input"] == [{"type": "message", "role": "user", "content": "hello"}]
    assert sent["instructions"] == "be brief"
    [(request, response)] = rows()
    assert (request.path, response.response_id) == ("/v1/responses", body["id"])
    assert (response.prompt_tokens, response.completion_tokens) == (3, 1)
    assert client.get(f"/v1/responses/{body['id']}").get_json() == body


def test_a_response_from_a_chat_only_provider_is_translated_with_tools_both_ways(client, upstream, rows):
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}
    upstream.post(UPSTREAM + "/chat/completions", json=chat_answer(finish="tool_calls", tool_calls=[call]))
    tool = {"type": "function", "name": "weather", "parameters": {"type": "object"}}
    first = client.post("/v1/responses", json={
        "model": "chatonly/m", "instructions": "You are terse.", "input": "Weather in Oslo?", "tools": [tool]})
    body = first.get_json()
    assert body["object"] == "response" and body["status"] == "completed"
    [item] = body["output"]
    assert (item["type"], item["name"], item["call_id"], item["arguments"]) == (
        "function_call", "weather", "call_1", '{"city":"Oslo"}')
    sent = json.loads(upstream.calls[0].request.body)
    assert sent["messages"] == [{"role": "system", "content": "You are terse."},
                                {"role": "user", "content": "Weather in Oslo?"}]
    assert sent["tools"] == [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]

    # The tool's result, continuing from the gateway's own record of the first turn.
    upstream.replace(responses.POST, UPSTREAM + "/chat/completions", json=chat_answer("Sunny, 20 C"))
    second = client.post("/v1/responses", json={
        "model": "chatonly/m", "previous_response_id": body["id"],
        "input": [{"type": "function_call_output", "call_id": "call_1", "output": "sunny 20"}]})
    assert second.status_code == 200, second.get_json()
    assert second.get_json()["output"][0]["content"][0]["text"] == "Sunny, 20 C"
    messages = json.loads(upstream.calls[1].request.body)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == "call_1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny 20"}
    pairs = rows()
    assert [r.path for r, _ in pairs] == ["/v1/responses"] * 2
    assert pairs[1][1].response_id == second.get_json()["id"]


def test_a_translated_response_stream_has_the_events_the_sdk_expects(client, upstream, rows):
    upstream.post(UPSTREAM + "/chat/completions", body=sse(
        chat_chunk("Hel"), chat_chunk("lo"), chat_chunk(finish="stop"), chat_chunk(usage=USAGE)))
    reply = client.post("/v1/responses", json={"model": "chatonly/m", "input": "hi", "stream": True})
    seen = events(reply)
    names = [name for name, _ in seen]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    assert {"response.output_item.added", "response.output_text.delta", "response.output_text.done",
            "response.output_item.done"} <= set(names)
    assert "".join(d["delta"] for n, d in seen if n == "response.output_text.delta") == "Hello"
    numbers = [d["sequence_number"] for _, d in seen]
    assert numbers == list(range(len(numbers)))
    completed = seen[-1][1]["response"]
    assert completed["usage"]["input_tokens"] == 5 and completed["usage"]["output_tokens"] == 2
    [(_, response)] = rows()
    assert (response.response_id, response.status, response.total_tokens) == (completed["id"], "ok", 7)


def test_previous_response_id_must_be_a_response_the_gateway_answered(client, upstream, rows):
    reply = client.post("/v1/responses", json={"model": "chatonly/m", "input": "hi",
                                               "previous_response_id": "resp_unknown"})
    assert reply.status_code == 404
    assert reply.get_json()["error"]["param"] == "previous_response_id"
    assert not upstream.calls


def test_an_input_role_that_is_not_a_string_is_a_400_for_a_chat_only_provider(client, upstream, rows):
    """Translated through chat, the item's role is looked up: a list there was a TypeError (a 500)."""
    reply = client.post("/v1/responses", json={"model": "chatonly/m", "input": [{"role": ["user"], "content": "hi"}]})
    assert reply.status_code == 400
    error = reply.get_json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "input[0].role")
    assert not upstream.calls


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/embeddings", {"model": "full/e"}, "input"),
    ("/v1/embeddings", {"model": "full/e", "input": []}, "input"),
    ("/v1/embeddings", {"model": "full/e", "input": "a", "stream": True}, "stream"),
    ("/v1/completions", {"model": "full/m"}, "prompt"),
    ("/v1/completions", {"model": "full/m", "prompt": 5}, "prompt"),
    ("/v1/responses", {"model": "full/m"}, "input"),
    ("/v1/responses", {"model": "full/m", "input": 5}, "input"),
    ("/v1/responses", {"model": "full/m", "input": "x", "previous_response_id": "chatcmpl-1"},
     "previous_response_id"),
])
def test_bad_input_is_a_400_that_names_the_field_and_never_reaches_the_upstream(client, upstream, path, body, param):
    reply = client.post(path, json=body)
    assert reply.status_code == 400
    error = reply.get_json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert not upstream.calls


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/completions", "/v1/responses"])
@pytest.mark.parametrize(("failure", "status", "code"), [
    (requests.ConnectionError("refused"), 502, "upstream_unreachable"),
    (requests.ReadTimeout("slow"), 504, "upstream_timeout"),
])
def test_upstream_failures_are_the_chat_error_table_on_every_endpoint(client, upstream, rows, path, failure,
                                                                     status, code):
    upstream.post(UPSTREAM + path.removeprefix("/v1"), body=failure)
    body = {"model": "full/m", "input": "x"} if path != "/v1/completions" else {"model": "full/m", "prompt": "x"}
    reply = client.post(path, json=body)
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (status, code)
    [(request, response)] = rows()
    assert (request.path, response.status, response.status_code) == (path, "error", status)


def test_history_and_stats_filter_and_group_by_endpoint(client, upstream, rows):
    upstream.post(UPSTREAM + "/embeddings", json=VECTORS)
    upstream.post(UPSTREAM + "/chat/completions", json=chat_answer())
    client.post("/v1/embeddings", json={"model": "full/e", "input": "a"})
    client.post("/v1/completions", json={"model": "chatonly/m", "prompt": "a"})
    client.post("/v1/chat/completions", json={"model": "full/m", "messages": [{"role": "user", "content": "a"}]})
    rows()
    listed = client.get("/v1/requests?endpoint=embeddings").get_json()
    assert [r["path"] for r in listed["data"]] == ["/v1/embeddings"]
    usage = client.get("/v1/stats/usage?group_by=endpoint").get_json()
    assert {g["key"]: g["requests"] for g in usage["data"]} == {"chat": 1, "completions": 1, "embeddings": 1}
    assert client.get("/v1/requests?endpoint=images").status_code == 400
