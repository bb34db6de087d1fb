"""Which session a chat request belongs to, and the opening message stored with it."""

from __future__ import annotations

import hashlib

import pytest

from app.errors import InvalidRequest
from app.services.proxy.sessions import FIRST_MESSAGE_KEPT, MAX_SESSION_ID, first_user_message, session_key


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


BODY = {
    "user": "user-42",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "user", "content": "Second"},
    ],
}


def test_header_wins_over_user_and_message():
    assert session_key(header="sess-1", body=BODY) == "sess-1"


def test_header_is_stripped():
    assert session_key(header="  sess-1\t", body=BODY) == "sess-1"


def test_header_of_max_length_and_unicode_is_kept():
    assert session_key(header="s" * MAX_SESSION_ID, body={}) == "s" * MAX_SESSION_ID
    assert session_key(header="séance-日本", body={}) == "séance-日本"


@pytest.mark.parametrize(
    "header", ["", "   ", "s" * (MAX_SESSION_ID + 1), "a\x00b", "a\tb", "line\nbreak"],
    ids=["empty", "blank", "too-long", "nul", "tab", "newline"],
)
def test_invalid_header_is_rejected(header):
    with pytest.raises(InvalidRequest) as caught:
        session_key(header=header, body=BODY)
    error = caught.value
    assert (error.status, error.code, error.param) == (400, "invalid_session_id", "X-Session-Id")


def test_user_wins_over_message():
    assert session_key(header=None, body=BODY) == "user-42"


def test_user_is_stripped():
    assert session_key(header=None, body={**BODY, "user": "  user-42  "}) == "user-42"


def test_long_user_is_hashed():
    user = "u" * (MAX_SESSION_ID + 1)
    assert session_key(header=None, body={**BODY, "user": user}) == md5(user)
    assert session_key(header=None, body={**BODY, "user": "u" * MAX_SESSION_ID}) == "u" * MAX_SESSION_ID


def test_non_printable_user_is_hashed():
    assert session_key(header=None, body={**BODY, "user": "a\nb"}) == md5("a\nb")


@pytest.mark.parametrize("user", [None, "", "   ", 42, {"id": 1}])
def test_without_a_usable_user_the_first_user_message_is_hashed(user):
    assert session_key(header=None, body={**BODY, "user": user}) == md5("Hello")


def test_first_user_message_with_list_of_parts():
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Hel"},
        {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "text", "text": "lo"},
    ]}]}
    assert session_key(header=None, body=body) == md5("Hello")
    assert first_user_message(body) == "Hello"


@pytest.mark.parametrize(
    "body",
    [{}, {"messages": None}, {"messages": [{"role": "system", "content": "x"}]}, {"messages": ["junk"]}],
)
def test_no_user_message_hashes_default(body):
    assert session_key(header=None, body=body) == md5("default")
    assert first_user_message(body) is None


def test_same_opening_same_session_whatever_follows():
    opening = {"messages": BODY["messages"][:2]}
    reply = [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "?"}]
    later = {"messages": [*opening["messages"], *reply]}
    assert session_key(header=None, body=later) == session_key(header=None, body=opening) == md5("Hello")


def test_first_user_message_is_the_first_not_the_last():
    assert first_user_message(BODY) == "Hello"


def test_first_user_message_is_truncated():
    text = "é" * (FIRST_MESSAGE_KEPT + 50)
    body = {"messages": [{"role": "user", "content": text}]}
    assert first_user_message(body) == "é" * FIRST_MESSAGE_KEPT
    # the session key hashes the whole message, not the stored cut
    assert session_key(header=None, body=body) == md5(text)


def test_first_user_message_short_is_whole():
    assert first_user_message({"messages": [{"role": "user", "content": "hi"}]}) == "hi"
