"""Legacy completions (``/v1/completions``) over chat, for providers that speak only chat, and their capture.

The prompt becomes one user message; the chat answer (or stream) comes back as ``text_completion``
objects and chunks. What chat cannot do is refused by name: echo, logprobs, suffix, best_of, n > 1,
and more than one prompt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from app.errors import InvalidRequest, UpstreamError
from app.providers.base import EventStream, StreamEvent
from app.providers.sse import DONE
from app.services.proxy.capture import Capture

_PASSED = ("max_tokens", "temperature", "top_p", "stop", "presence_penalty", "frequency_penalty", "user", "seed",
           "stream", "stream_options", "logit_bias")


def prompt_text(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    return prompt if isinstance(prompt, str) else ""


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat request for a completions request."""
    for param in ("echo", "logprobs", "suffix"):
        if body.get(param):
            raise _unsupported(param)
    for param in ("best_of", "n"):
        if isinstance(body.get(param), int) and body[param] > 1:
            raise _unsupported(param)
    prompt = body.get("prompt")
    if not (isinstance(prompt, str) or (isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str))):
        raise _unsupported("prompt", "anything but one text prompt is")
    chat: dict[str, Any] = {"messages": [{"role": "user", "content": prompt_text(body)}]}
    chat.update({key: body[key] for key in _PASSED if key in body})
    return chat


def from_chat(chat: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion as a text_completion."""
    choices = chat.get("choices") if isinstance(chat.get("choices"), list) else []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    body = {
        "id": _completion_id(chat.get("id")), "object": "text_completion", "created": chat.get("created")
        or int(time.time()), "model": chat.get("model"),
        "choices": [{"text": message.get("content") or "", "index": 0, "logprobs": None,
                     "finish_reason": choice.get("finish_reason")}],
    }
    if isinstance(chat.get("usage"), dict):
        body["usage"] = chat["usage"]
    return body


class CompletionsFromChat(EventStream):
    """A chat stream relayed as text_completion chunks."""

    def __init__(self, upstream: EventStream) -> None:
        self._upstream = upstream

    def close(self) -> None:
        self._upstream.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        for event in self._upstream:
            chunk = event.chunk
            if event.data == DONE or not isinstance(chunk, dict):
                yield event
                continue
            if isinstance(chunk.get("error"), dict | str):
                error = chunk["error"]
                raise UpstreamError(str(error.get("message") if isinstance(error, dict) else error))
            out = {"id": _completion_id(chunk.get("id")), "object": "text_completion",
                   "created": chunk.get("created") or int(time.time()), "model": chunk.get("model"), "choices": []}
            for choice in chunk.get("choices") or ():
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    delta = choice.get("delta") or {}
                    out["choices"].append({"text": delta.get("content") or "", "index": 0, "logprobs": None,
                                           "finish_reason": choice.get("finish_reason")})
            if isinstance(chunk.get("usage"), dict):
                out["usage"] = chunk["usage"]
            if out["choices"] or "usage" in out:
                yield StreamEvent(data=json.dumps(out, separators=(",", ":"), ensure_ascii=False), chunk=out,
                                  parent_id=event.parent_id, chat_id=event.chat_id)


class CompletionsCapture(Capture):
    """What a completions stream said, for the record."""

    def __init__(self, *, started: float) -> None:
        super().__init__(started=started)
        self.meta: dict[str, Any] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any] | None) -> None:
        if not isinstance(chunk, dict):
            return
        if not self.meta:
            self.meta = {key: chunk[key] for key in ("id", "created", "model") if key in chunk}
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("error"), dict | str):
            self.error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": chunk["error"]}
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("text"):
                self._first_token()
                self.content.append(choice["text"])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def body(self) -> dict[str, Any]:
        body = {"object": "text_completion", **self.meta, "choices": [
            {"text": "".join(self.content), "index": 0, "logprobs": None, "finish_reason": self.finish_reason}]}
        if self.usage is not None:
            body["usage"] = self.usage
        return body


def _completion_id(chat_id: Any) -> str:
    text = str(chat_id or "")
    return "cmpl-" + (text.split("-", 1)[1] if text.startswith("chatcmpl-") else text or str(int(time.time())))


def _unsupported(param: str, what: str | None = None) -> InvalidRequest:
    what = what or f"'{param}' is"
    return InvalidRequest(
        f"Invalid '{param}': {what} not supported by a provider that speaks only chat completions.",
        param=param, code="unsupported_value",
    )
