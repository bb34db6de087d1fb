"""Qwen's chat web API, replayed with `responses` from the protocol (REFERENCE section 2)."""

from __future__ import annotations

import json

import pytest
import responses
import sqlalchemy as sa

from app.errors import UpstreamError, UpstreamHTTPError
from app.models import ChatSession, Response
from app.providers.base import Conversation
from app.providers.qwen import QwenProvider
from app.services.proxy.streaming import StreamCapture

QWEN = "http://qwen.test"
NEW_CHAT_URL = QWEN + "/api/v2/chats/new"
CHAT_URL = QWEN + "/api/v2/chat/completions"
AUTH = {"bx-umidtoken": "tok-123", "Cookie": "ssxmod=abc; token=xyz"}
USAGE_1 = {"input_tokens": 12, "output_tokens": 1, "total_tokens": 13}
USAGE_2 = {"input_tokens": 12, "output_tokens": 2, "total_tokens": 14}


def provider() -> QwenProvider:
    return QwenProvider(
        name="qwen", base_url=QWEN, timeout_s=5, token=AUTH["bx-umidtoken"], cookies=AUTH["Cookie"],
        default_model="qwen3-max",
    )


def delta(content: str, status: str = "typing", usage: dict | None = USAGE_2) -> dict:
    event = {"choices": [{"delta": {"role": "assistant", "content": content, "status": status, "phase": "answer"}}]}
    if usage is not None:
        event["usage"] = usage
    return event


def sse(*events: dict) -> str:
    return "".join(f"data: {json.dumps(event)}\n\n" for event in events)


CREATED = {"response.created": {"chat_id": "chat-1", "parent_id": "resp-1", "response_id": "resp-1"}}
STREAM = sse(CREATED, delta("Hel", usage=USAGE_1), delta("lo"), delta("", status="finished"))


def answer(content: str = "Hi!", parent_id: str = "p-2") -> dict:
    return {
        "success": True,
        "data": {
            "parent_id": parent_id, "message_id": "m-9",
            "choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": USAGE_2,
        },
    }


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


# the request ------------------------------------------------------------------------------


def test_first_turn_sends_one_message_with_no_parent():
    body = {"messages": [{"role": "user", "content": "Hello"}], "stream": True}
    payload = provider().build_request(body, model="qwen3-max", conversation=Conversation(session_id="s"))
    (message,) = payload.pop("messages")
    assert isinstance(payload.pop("timestamp"), int)
    assert payload == {
        "stream": True, "incremental_output": True, "chat_id": None, "chat_mode": "guest",
        "model": "qwen3-max", "parent_id": None,
    }
    assert isinstance(message.pop("fid"), str) and isinstance(message.pop("timestamp"), int)
    assert message == {
        "parentId": None, "parent_id": None, "childrenIds": [], "role": "user", "content": "Hello",
        "user_action": "chat", "files": [], "models": ["qwen3-max"], "chat_type": "t2t", "sub_chat_type": "t2t",
        "feature_config": {"thinking_enabled": False, "output_schema": "phase"},
        "extra": {"meta": {"subChatType": "t2t"}},
    }


def test_later_turns_send_only_the_newest_message_chained_to_the_stored_parent():
    body = {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": [{"type": "text", "text": "And now?"}]},
    ]}
    conversation = Conversation(session_id="s", chat_id="chat-1", parent_id="p-2")
    payload = provider().build_request(body, model="qwen3-max", conversation=conversation)
    (message,) = payload["messages"]
    assert (payload["chat_id"], payload["parent_id"], payload["stream"]) == ("chat-1", "p-2", False)
    assert (message["content"], message["parentId"], message["parent_id"]) == ("And now?", "p-2", "p-2")


def test_a_turn_that_opens_a_chat_carries_the_earlier_messages_as_a_transcript():
    body = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]}
    payload = provider().build_request(body, model="m", conversation=Conversation(session_id="s"))
    assert payload["messages"][0]["content"] == "[system]\nBe brief.\n\n[user]\nHello"
    assert payload["messages"][0]["role"] == "user"


def test_tool_definitions_pass_through_unchanged():
    tools = [{"type": "function", "function": {"name": "f", "strict": True}}]
    body = {"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "auto"}
    payload = provider().build_request(body, model="m", conversation=Conversation(session_id="s"))
    assert (payload["tools"], payload["tool_choice"]) == (tools, "auto")


# non-streaming ----------------------------------------------------------------------------


def test_complete_opens_a_chat_then_answers_from_data_choices(upstream):
    upstream.post(NEW_CHAT_URL, json={"success": True, "data": {"id": "chat-1"}})
    upstream.post(CHAT_URL, json=answer())
    qwen = provider()
    payload = qwen.build_request({"messages": [{"role": "user", "content": "Hello"}]}, model="qwen3-max",
                                 conversation=Conversation(session_id="s"))
    completion = qwen.complete(payload, conversation=Conversation(session_id="s"))
    new_chat, turn = (call.request for call in upstream.calls)
    new_body = json.loads(new_chat.body)
    assert isinstance(new_body.pop("timestamp"), int)
    assert new_body == {"title": "New Chat", "models": ["qwen3-max"], "chat_mode": "guest", "chat_type": "t2t"}
    assert turn.url == CHAT_URL + "?chat_id=chat-1"
    assert json.loads(turn.body)["chat_id"] == "chat-1"
    for request in (new_chat, turn):
        assert {key: request.headers[key] for key in AUTH} == AUTH
    assert (completion.chat_id, completion.parent_id) == ("chat-1", "p-2")  # data.parent_id, not message_id
    assert completion.raw == answer()
    body = completion.body
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}
    ]
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}
    assert (body["object"], body["model"], body["id"]) == ("chat.completion", "qwen3-max", "chatcmpl-m-9")


def test_complete_in_a_known_chat_opens_none(upstream):
    upstream.post(CHAT_URL, json=answer())
    payload = {"chat_id": "chat-1", "model": "qwen3-max", "messages": []}
    completion = provider().complete(payload, conversation=Conversation(session_id="s"))
    assert len(upstream.calls) == 1 and completion.chat_id is None


@pytest.mark.parametrize("refusal", [
    {"success": False, "data": {"code": "Unauthorized", "details": "token expired"}},
    {"error": {"message": "token expired"}},
])
def test_a_refusal_is_an_upstream_error_naming_the_reason(upstream, refusal):
    upstream.post(CHAT_URL, json=refusal)
    with pytest.raises(UpstreamError, match="token expired"):
        provider().complete({"chat_id": "c", "model": "m"}, conversation=Conversation(session_id="s"))


def test_chat_creation_failure_is_an_upstream_error(upstream):
    upstream.post(NEW_CHAT_URL, json={"success": False, "data": {"code": "RateLimited"}})
    with pytest.raises(UpstreamError, match="did not open a chat: RateLimited"):
        provider().complete({"chat_id": None, "model": "m"}, conversation=Conversation(session_id="s"))


def test_http_errors_keep_status_and_retry_after(upstream):
    upstream.post(CHAT_URL, json={"error": "busy"}, status=429, headers={"Retry-After": "2"})
    with pytest.raises(UpstreamHTTPError) as caught:
        provider().open_stream({"chat_id": "c", "model": "m"}, conversation=Conversation(session_id="s"))
    assert (caught.value.status, caught.value.retry_after) == (429, "2")


# streaming --------------------------------------------------------------------------------


def test_stream_is_translated_to_openai_chunks_with_usage_from_the_last_event_and_done(upstream):
    upstream.post(NEW_CHAT_URL, json={"success": True, "data": {"id": "chat-1"}})
    upstream.post(CHAT_URL, body=STREAM, content_type="text/event-stream")
    events = provider().open_stream({"chat_id": None, "model": "qwen3-max", "stream": True},
                                    conversation=Conversation(session_id="s"))
    received = list(events)
    events.close()
    assert upstream.calls[1].request.headers["Accept"] == "text/event-stream"
    chunks = [event.chunk for event in received[:-1]]
    assert received[-1].data == "[DONE]" and received[-1].chunk is None
    assert [c["choices"] for c in chunks] == [
        [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}],
        [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}],
        [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        [],
    ]
    assert chunks[-1]["usage"] == {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}
    assert {c["id"] for c in chunks} == {"chatcmpl-resp-1"}
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "qwen3-max" for c in chunks)
    assert not any("response.created" in event.data for event in received)
    # The ids for the next turn ride on the first event out.
    assert (received[0].chat_id, received[0].parent_id) == ("chat-1", "resp-1")
    assert all(e.chat_id is None and e.parent_id is None for e in received[1:])
    capture = StreamCapture(started=0)
    for event in received[:-1]:
        capture.add(event.chunk)
    assert capture.message()["content"] == "Hello" and capture.finish_reason == "stop"


def test_each_event_is_translated_as_it_arrives():
    from app.providers.http import HTTPTransport, SSEEventStream
    from app.providers.qwen_translate import StreamTranslator

    reads = [line.encode() for line in STREAM.split("\n\n") if line]
    consumed: list[int] = []

    class Raw:
        def read1(self, size: int) -> bytes:
            consumed.append(1)
            return reads.pop(0) + b"\n\n" if reads else b""

    class Resp:
        raw = Raw()

        def close(self) -> None:
            pass

    events = iter(SSEEventStream(HTTPTransport(name="qwen", base_url=QWEN, timeout_s=1), Resp(),
                                 translate=StreamTranslator(model="m", chat_id=None)))
    first = next(events)
    assert first.chunk["choices"][0]["delta"]["content"] == "Hel"
    assert len(consumed) == 2, "the first chunk waited for more than its own event"


def test_an_error_event_becomes_an_openai_error_chunk():
    from app.providers.qwen_translate import StreamTranslator

    translate = StreamTranslator(model="m", chat_id=None)
    (event,) = translate(json.dumps({"success": False, "data": {"code": "Overloaded"}}))
    assert event.chunk["error"]["message"] == "Qwen: Overloaded"


def test_a_refusal_instead_of_a_stream_fails_before_the_first_byte(upstream):
    upstream.post(CHAT_URL, json={"success": False, "data": {"details": "not logged in"}})
    with pytest.raises(UpstreamError, match="not logged in"):
        provider().open_stream({"chat_id": "c", "model": "m"}, conversation=Conversation(session_id="s"))


def test_list_models(upstream):
    upstream.get(QWEN + "/api/models", json={"data": [{"id": "qwen3-max", "name": "Qwen3-Max"}, {"x": 1}]})
    assert provider().list_models() == [{"id": "qwen3-max", "object": "model", "created": 0, "owned_by": "qwen"}]
    assert {key: upstream.calls[0].request.headers[key] for key in AUTH} == AUTH


# through the gateway: a two-turn conversation ------------------------------------------------


@pytest.fixture
def settings(make_settings, monkeypatch):
    monkeypatch.setenv("QWEN_TOKEN", AUTH["bx-umidtoken"])
    monkeypatch.setenv("QWEN_COOKIES", AUTH["Cookie"])
    return make_settings(qwen_base_url=QWEN, qwen_token="set", default_provider="qwen")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_two_turns_keep_one_chat_and_send_only_the_newest_message(client, upstream, db_session, flush_audit, stream):
    upstream.post(NEW_CHAT_URL, json={"success": True, "data": {"id": "chat-1"}})
    turn_1 = {"body": STREAM, "content_type": "text/event-stream"} if stream else {"json": answer(parent_id="resp-1")}
    turn_2 = {"body": STREAM.replace("resp-1", "resp-2")} if stream else {"json": answer(parent_id="resp-2")}
    upstream.post(CHAT_URL, **turn_1)
    headers = {"X-Session-Id": "qwen-s"}
    messages = [{"role": "user", "content": "Hello"}]
    first = client.post("/v1/chat/completions", json={"messages": messages, "stream": stream}, headers=headers)
    assert first.status_code == 200
    if stream:
        assert first.get_data(as_text=True).endswith("data: [DONE]\n\n")
    flush_audit()
    session = db_session.get(ChatSession, "qwen-s")
    assert (session.chat_id, session.parent_id) == ("chat-1", "resp-1")

    upstream.replace(responses.POST, CHAT_URL, **turn_2)
    messages += [{"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "Again"}]
    second = client.post("/v1/chat/completions", json={"messages": messages, "stream": stream}, headers=headers)
    assert second.status_code == 200 and ("lo" if stream else "Hi!") in second.get_data(as_text=True)
    flush_audit()
    sent = [json.loads(call.request.body) for call in upstream.calls if call.request.url.startswith(CHAT_URL)]
    assert len(sent) == 2 and sum(call.request.url == NEW_CHAT_URL for call in upstream.calls) == 1
    assert [m["content"] for m in sent[1]["messages"]] == ["Again"]
    assert (sent[1]["chat_id"], sent[1]["parent_id"], sent[1]["messages"][0]["parentId"]) == (
        "chat-1", "resp-1", "resp-1"
    )
    db_session.expire_all()
    session = db_session.get(ChatSession, "qwen-s")
    assert (session.chat_id, session.parent_id) == ("chat-1", "resp-2")
    rows = db_session.scalars(sa.select(Response).order_by(Response.id)).all()
    assert [(r.status, r.provider, r.parent_id) for r in rows] == [("ok", "qwen", "resp-1"), ("ok", "qwen", "resp-2")]
    assert (rows[1].prompt_tokens, rows[1].completion_tokens, rows[1].usage_estimated) == (12, 2, False)
