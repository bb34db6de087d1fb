"""Offline token estimates and the text of a message's content."""

from __future__ import annotations

import json

import pytest

from app.providers.tokens import estimate_prompt_tokens, estimate_text_tokens, message_text


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("plain", "plain"),
        ("", ""),
        (
            [
                {"type": "text", "text": "Look at "},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "this"},
            ],
            "Look at this",
        ),
        ([{"type": "text", "text": 5}, "loose string", None, {"type": "text"}], ""),
        (None, ""),
        ({"text": "a dict is not content"}, ""),
        (42, ""),
    ],
    ids=["str", "empty", "parts", "bad-parts", "none", "dict", "int"],
)
def test_message_text(content, expected):
    assert message_text(content) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)]
)
def test_estimate_text_tokens_rounds_up_at_four_characters(text, expected):
    assert estimate_text_tokens(text) == expected


def test_estimate_prompt_tokens_per_message_plus_text():
    body = {"messages": [
        {"role": "system", "content": "abcdefgh"},  # 4 + 2
        {"role": "user", "content": [{"type": "text", "text": "abcde"}]},  # 4 + 2
        {"role": "assistant", "content": None},  # 4 + 0
        "not a message",
    ]}
    assert estimate_prompt_tokens(body) == 16


def test_estimate_prompt_tokens_counts_tools():
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": tools}
    assert estimate_prompt_tokens(body) == 4 + 1 + -(-len(json.dumps(tools)) // 4)


@pytest.mark.parametrize("body", [{}, {"messages": None}, {"messages": [], "tools": []}])
def test_estimate_prompt_tokens_of_nothing_is_zero(body):
    assert estimate_prompt_tokens(body) == 0
