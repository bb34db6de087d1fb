"""LM Studio gets tool definitions in the strict shape it accepts."""

from __future__ import annotations

import copy
import json

import responses

from app.providers.base import Conversation
from app.providers.lm_studio import LMStudioProvider

CONVERSATION = Conversation(session_id="s-1")
BASE = "http://lmstudio.test/v1"


def provider() -> LMStudioProvider:
    return LMStudioProvider(name="lm-studio", base_url=BASE, timeout_s=5)


def build(body):
    return provider().build_request(body, model="qwen", conversation=CONVERSATION)


def test_bare_function_gets_description_and_object_schema():
    body = {"messages": [], "tools": [{"type": "function", "function": {"name": "get_time"}}]}
    assert build(body)["tools"] == [{
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Function get_time",
            "parameters": {"type": "object", "properties": {}},
        },
    }]


def test_strict_is_dropped_and_existing_fields_kept():
    parameters = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    tool = {
        "type": "function",
        "function": {
            "name": "weather", "description": "Weather now", "strict": True, "parameters": parameters,
        },
    }
    [normalised] = build({"messages": [], "tools": [tool]})["tools"]
    assert normalised == {
        "type": "function",
        "function": {"name": "weather", "description": "Weather now", "parameters": parameters},
    }


def test_parameters_without_type_get_type_object():
    properties = {"x": {"type": "integer"}}
    tool = {"type": "function", "function": {"name": "f", "parameters": {"properties": properties}}}
    [normalised] = build({"messages": [], "tools": [tool]})["tools"]
    assert normalised["function"]["parameters"] == {"type": "object", "properties": properties}


def test_parameters_that_are_not_an_object_are_replaced():
    tool = {"type": "function", "function": {"name": "f", "parameters": "nonsense"}}
    [normalised] = build({"messages": [], "tools": [tool]})["tools"]
    assert normalised["function"]["parameters"] == {"type": "object", "properties": {}}


def test_nameless_function_description():
    [normalised] = build({"messages": [], "tools": [{"type": "function", "function": {}}]})["tools"]
    assert normalised["function"]["description"] == "Function"


def test_other_tools_are_untouched():
    others = [{"type": "web_search"}, "not a tool", {"type": "function", "function": "not a dict"}, None]
    tools = build({"messages": [], "tools": copy.deepcopy(others)})["tools"]
    assert tools == others


def test_tools_that_are_not_a_list_are_left_as_they_are():
    assert build({"messages": [], "tools": {"name": "f"}})["tools"] == {"name": "f"}


def test_no_tools_no_key():
    assert "tools" not in build({"messages": []})


def test_the_client_body_is_not_mutated():
    body = {
        "model": "lm-studio/qwen",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": False},
        "tools": [
            {"type": "function", "function": {"name": "a", "strict": True, "parameters": {"properties": {}}}},
            {"type": "function", "function": {"name": "b"}},
        ],
    }
    before = copy.deepcopy(body)
    payload = build(body)
    assert body == before
    assert payload["model"] == "qwen"
    assert payload["stream_options"] == {"include_usage": True}


def test_normalised_tools_are_what_is_sent():
    body = {"messages": [], "tools": [{"type": "function", "function": {"name": "a", "strict": False}}]}
    payload = build(body)
    with responses.RequestsMock() as upstream:
        upstream.post(BASE + "/chat/completions", json={"choices": []})
        provider().complete(payload, conversation=CONVERSATION)
        sent = json.loads(upstream.calls[0].request.body)
    assert sent["tools"][0]["function"] == {
        "name": "a", "description": "Function a", "parameters": {"type": "object", "properties": {}},
    }
