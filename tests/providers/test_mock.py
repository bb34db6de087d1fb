"""The built-in mock provider: deterministic answers, consistent usage, equal stream and non-stream."""

from __future__ import annotations

import json

from app.providers.base import Conversation
from app.providers.mock import MOCK_MODELS, MockProvider
from app.providers.sse import DONE
from app.providers.tokens import estimate_prompt_tokens
from app.services.proxy.streaming import StreamCapture

CONVERSATION = Conversation(session_id="s-1")
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is  the capital of France?"},
]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "hours": {"type": "array"},
            },
            "required": ["city", "days", "metric", "hours"],
        },
    },
}


def payload(**extra):
    body = {"messages": MESSAGES, **extra}
    return MockProvider().build_request(body, model="mock-chat", conversation=CONVERSATION)


def complete(body):
    return MockProvider().complete(body, conversation=CONVERSATION).body


def stream(body):
    events = MockProvider().open_stream(body, conversation=CONVERSATION)
    try:
        return list(events)
    finally:
        events.close()


def assembled(events):
    capture = StreamCapture(started=0.0)
    for event in events:
        if event.data != DONE:
            capture.add(event.chunk)
    return capture


def test_same_messages_same_answer():
    first, second = complete(payload()), complete(payload())
    assert first["id"] == second["id"]
    assert first["choices"] == second["choices"]
    assert first["choices"][0]["message"] == {
        "role": "assistant", "content": "Mock reply to: What is  the capital of France?",
    }
    assert first["choices"][0]["finish_reason"] == "stop"
    assert first["model"] == "mock-chat"
    assert first["object"] == "chat.completion"


def test_different_messages_different_id():
    other = {**payload(), "messages": [{"role": "user", "content": "Something else"}]}
    assert complete(payload())["id"] != complete(other)["id"]


def test_echoes_the_last_user_message_with_list_content():
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "part"}]},
    ]
    body = complete({"model": "mock-chat", "messages": messages})
    assert body["choices"][0]["message"]["content"] == "Mock reply to: second part"


def test_no_user_message():
    assert complete({"model": "m", "messages": []})["choices"][0]["message"]["content"] == "Mock reply."


def test_usage_adds_up():
    body = payload()
    usage = complete(body)["usage"]
    assert usage["prompt_tokens"] == estimate_prompt_tokens(body) > 0
    assert usage["completion_tokens"] == len("Mock reply to: What is  the capital of France?".split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_tool_call_fills_required_parameters():
    body = complete(payload(tools=[WEATHER, {"type": "function", "function": {"name": "second"}}]))
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    arguments = json.loads(call["function"]["arguments"])
    assert arguments == {"city": "mock", "days": 1, "metric": True, "hours": []}
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] == estimate_prompt_tokens(payload(tools=[WEATHER, {
        "type": "function", "function": {"name": "second"}}]))


def test_tool_without_required_fills_the_first_property():
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "number"}}}}}
    [call] = complete(payload(tools=[tool]))["choices"][0]["message"]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"q": "mock"}


def test_streaming_assembles_to_the_same_content():
    body = payload(stream=True)
    events = stream(body)
    assert events[-1].data == DONE and events[-1].chunk is None
    for event in events[:-1]:
        assert json.loads(event.data) == event.chunk
        assert event.chunk["object"] == "chat.completion.chunk"
    capture = assembled(events)
    whole = complete(body)
    assert capture.message() == whole["choices"][0]["message"]
    assert capture.finish_reason == "stop"
    assert capture.meta["id"] == whole["id"]
    deltas = [e.chunk["choices"][0]["delta"] for e in events if e.chunk and e.chunk["choices"]]
    pieces = [delta for delta in deltas if delta.get("content")]
    assert len(pieces) > 2  # really streamed, word by word


def test_streamed_tool_call_assembles_to_the_same_call():
    body = payload(stream=True, tools=[WEATHER])
    capture = assembled(stream(body))
    assert capture.message() == complete(body)["choices"][0]["message"]
    assert capture.finish_reason == "tool_calls"


def test_build_request_asks_for_usage_so_the_stream_sends_it():
    body = payload(stream=True)
    assert body["stream_options"] == {"include_usage": True}
    events = stream(body)
    usage_event = events[-2]
    assert usage_event.chunk["choices"] == []
    assert usage_event.chunk["usage"] == complete(body)["usage"]
    assert [e for e in events if e.chunk and e.chunk.get("usage")] == [usage_event]


def test_no_usage_chunk_without_include_usage():
    for options in ({}, {"stream_options": {"include_usage": False}}):
        events = stream({"model": "mock-chat", "messages": MESSAGES, "stream": True, **options})
        assert not [e for e in events if e.chunk and "usage" in e.chunk]
        assert events[-2].chunk["choices"][0]["finish_reason"] == "stop"


def test_list_models():
    models = MockProvider().list_models()
    assert [model["id"] for model in models] == list(MOCK_MODELS)
    assert all(model["owned_by"] == "mock" and model["object"] == "model" for model in models)
