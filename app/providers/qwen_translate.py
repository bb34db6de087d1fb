"""Qwen's chat web API in OpenAI terms: the one-message turn it takes, the answers it gives."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from app.providers.base import Conversation, StreamEvent
from app.providers.sse import DONE
from app.providers.tokens import message_text

_ROLES = ("user", "assistant", "system")


def build_turn(body: dict[str, Any], *, model: str, conversation: Conversation) -> dict[str, Any]:
    """The request for one turn: only the newest message, chained to the stored parent_id.

    Qwen holds the history of a chat; a turn that opens a new chat (no chat_id
    yet) carries the earlier messages the client sent as a transcript, so a
    system prompt or a conversation begun elsewhere is not lost.
    """
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    newest = messages[-1] if messages else {"role": "user", "content": ""}
    content = message_text(newest.get("content"))
    if conversation.chat_id is None and len(messages) > 1:
        content = _transcript(messages[:-1]) + f"\n\n[{newest.get('role', 'user')}]\n{content}"
    now_s = int(time.time())
    parent_id = conversation.parent_id if conversation.chat_id else None
    message = {
        "fid": str(uuid.uuid4()),
        "parentId": parent_id,
        "parent_id": parent_id,
        "childrenIds": [],
        "role": newest.get("role") if newest.get("role") in _ROLES else "user",
        "content": content,
        "user_action": "chat",
        "files": [],
        "timestamp": now_s,
        "models": [model],
        "chat_type": "t2t",
        "sub_chat_type": "t2t",
        "feature_config": {"thinking_enabled": False, "output_schema": "phase"},
        "extra": {"meta": {"subChatType": "t2t"}},
    }
    payload: dict[str, Any] = {
        "stream": bool(body.get("stream")),
        "incremental_output": True,
        "chat_id": conversation.chat_id,
        "chat_mode": "guest",
        "model": model,
        "parent_id": parent_id,
        "messages": [message],
        "timestamp": now_s,
    }
    # Tool definitions go through as the client sent them, as the original gateway did.
    for key in ("tools", "tool_choice"):
        if body.get(key) is not None:
            payload[key] = body[key]
    return payload


def _first_delta(event: dict[str, Any]) -> dict[str, Any]:
    choices = event.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    delta = choice.get("delta") if isinstance(choice, dict) else None
    return delta if isinstance(delta, dict) else {}


def _transcript(messages: list[dict[str, Any]]) -> str:
    return "\n\n".join(f"[{m.get('role', 'user')}]\n{message_text(m.get('content'))}" for m in messages)


def new_chat_request(*, model: str) -> dict[str, Any]:
    """The body that opens a new chat (its id comes back at ``data.id``)."""
    return {
        "title": "New Chat", "models": [model], "chat_mode": "guest", "chat_type": "t2t",
        "timestamp": time.time_ns() // 1_000_000,
    }


def error_message(raw: Any) -> str | None:
    """The reason in a Qwen refusal (``success: false`` or an ``error`` object), if it is one."""
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("error"), dict | str):
        error = raw["error"]
        return str(error.get("message") or error.get("details") or error.get("code") or error) \
            if isinstance(error, dict) else error
    if raw.get("success") is False:
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        return str(data.get("details") or data.get("message") or data.get("code") or "request refused")
    return None


def openai_usage(usage: Any) -> dict[str, int] | None:
    """Qwen's ``input_tokens``/``output_tokens`` as OpenAI usage."""
    if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
        return None
    prompt, completion = usage["input_tokens"], usage.get("output_tokens") or 0
    total = usage.get("total_tokens")
    return {
        "prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": total if isinstance(total, int) else prompt + completion,
    }


def completion_body(raw: dict[str, Any], *, model: str) -> tuple[dict[str, Any], str | None] | None:
    """A non-streaming answer (``data.choices[0]``) as a chat.completion, and the next parent_id."""
    data = raw.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
        return None
    choice = data["choices"][0] if isinstance(data["choices"][0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    body: dict[str, Any] = {
        "id": f"chatcmpl-{data.get('message_id') or uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": message.get("content") or ""},
            "finish_reason": "stop",
        }],
    }
    usage = openai_usage(data.get("usage") or raw.get("usage"))
    if usage is not None:
        body["usage"] = usage
    # The next turn's parent is data.parent_id, not message_id.
    return body, data.get("parent_id")


class StreamTranslator:
    """Turns each Qwen SSE event into OpenAI chunks as it arrives; adds the closing [DONE]."""

    def __init__(self, *, model: str, chat_id: str | None) -> None:
        self.model = model
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self._chat_id = chat_id  # a chat opened for this turn: reported with the first event
        self._parent_id: str | None = None
        self._role_sent = False
        self._usage: dict[str, int] | None = None
        self._finished = False

    def __call__(self, text: str) -> list[StreamEvent]:
        if self._finished:
            return []
        try:
            event = json.loads(text)
        except ValueError:
            return self._tag([StreamEvent(data=text, chunk=None)])
        if not isinstance(event, dict):
            return []
        created = event.get("response.created")
        if isinstance(created, dict):  # never forwarded: it only carries ids
            self._parent_id = created.get("parent_id") or self._parent_id
            if created.get("response_id"):
                self.id = f"chatcmpl-{created['response_id']}"
            return []
        message = error_message(event)
        if message is not None:
            error = {"error": {"message": f"Qwen: {message}", "type": "upstream_error", "code": "upstream_error"}}
            return self._tag([StreamEvent(data=json.dumps(error), chunk=error)])
        usage = openai_usage(event.get("usage"))
        if usage is not None:
            self._usage = usage  # cumulative: the last one counts, never a sum
        delta = _first_delta(event)
        events = []
        if delta.get("content"):
            key = "reasoning_content" if delta.get("phase") == "think" else "content"
            events.append(self._chunk({key: delta["content"]}))
        if delta.get("status") == "finished":
            self._finished = True
            events.append(self._chunk({}, finish_reason="stop"))
            if self._usage is not None:
                events.append(self._event({"choices": [], "usage": self._usage}))
            events.append(StreamEvent(data=DONE, chunk=None))
        return self._tag(events)

    def _chunk(self, delta: dict[str, Any], *, finish_reason: str | None = None) -> StreamEvent:
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        return self._event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

    def _event(self, fields: dict[str, Any]) -> StreamEvent:
        chunk = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            **fields,
        }
        return StreamEvent(data=json.dumps(chunk, separators=(",", ":"), ensure_ascii=False), chunk=chunk)

    def _tag(self, events: list[StreamEvent]) -> list[StreamEvent]:
        """Put the chat ids learnt so far on the first event that goes out."""
        if events and (self._chat_id or self._parent_id):
            events[0].chat_id, events[0].parent_id = self._chat_id, self._parent_id
            self._chat_id = self._parent_id = None
        return events
