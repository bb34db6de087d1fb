"""A recorded body of any shape reads as text without raising: one odd row must never stop the
search indexer (it would retry the same batch for ever) nor fail a dashboard page.

Bodies are built around the keys each endpoint uses (messages, prompt, input, instructions,
output, choices, embeddings), with values of any JSON type where a well-formed body has a
particular one: what a native provider or an imported database may have stored.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.ui.call import card, curl_command
from app.services.search.text import (
    answer_of,
    document,
    last_user_text,
    messages_of,
    reply_text,
    vectors_note,
)

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
KEYS = st.sampled_from([
    "role", "content", "type", "text", "name", "arguments", "call_id", "output", "tool_calls", "function",
    "id", "message", "delta", "choices", "input", "messages", "prompt", "instructions", "embeddings",
    "count", "dimensions", "data", "embedding", "api_key", "properties",
])
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                    max_leaves=25)
ROLES = st.sampled_from(["user", "assistant", "system", "developer", "tool"]) | JSON
ITEMS = st.fixed_dictionaries(
    {}, optional={"type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning"]) | JSON,
                  "role": ROLES, "content": JSON, "name": JSON, "arguments": JSON, "call_id": JSON, "output": JSON},
)
REQUESTS = st.one_of(
    JSON,
    st.fixed_dictionaries({"messages": st.lists(st.dictionaries(KEYS, JSON, max_size=4) | JSON, max_size=4)}),
    st.fixed_dictionaries({"prompt": JSON}),
    st.fixed_dictionaries({"input": st.lists(ITEMS | JSON, max_size=4) | JSON}, optional={"instructions": JSON}),
)
RESPONSES = st.one_of(
    JSON,
    st.fixed_dictionaries({"output": st.lists(ITEMS | JSON, max_size=4)}),
    st.fixed_dictionaries({"choices": st.lists(st.dictionaries(KEYS, JSON, max_size=4) | JSON, max_size=2)}),
    st.fixed_dictionaries({"embeddings": JSON | st.dictionaries(KEYS, JSON, max_size=3)}),
    st.fixed_dictionaries({"data": st.lists(st.dictionaries(KEYS, JSON, max_size=3) | JSON, max_size=3)}),
)


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "600")), deadline=None)
@given(request=REQUESTS, response=RESPONSES)
def test_any_recorded_body_reads_as_text(request, response):
    assert isinstance(document(request, response), str)
    for message in messages_of(request):
        assert isinstance(card(message)["text"], str)
    answer = answer_of(response)
    if answer is not None:
        assert isinstance(card(answer)["text"], str)
    for text in (last_user_text(request), reply_text(response), vectors_note(response)):
        assert text is None or isinstance(text, str)
    assert curl_command(request, "http://127.0.0.1:8000", path="/v1/responses").startswith("curl ")


def test_the_bodies_that_broke_it_read_as_text():
    """An input item whose role is a list; an output part whose text is null; content that is a number."""
    request = {"input": [{"role": ["user"], "content": "hi"}, {"type": "message", "role": "user", "content": 5}]}
    response = {"output": [{"type": "message", "content": [{"type": "output_text", "text": None}]},
                           {"type": "message", "content": 7}]}
    assert document(request, response) == "hi\n5"
    assert [message["role"] for message in messages_of(request)] == ["['user']", "user"]
