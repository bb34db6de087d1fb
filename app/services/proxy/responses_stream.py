"""Streams of the Responses API: a chat stream told as Responses events, and what a Responses stream said.

``ResponsesFromChat`` turns a chat completion stream (from a provider that speaks only chat) into
the events the official SDK expects: ``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``, ``response.output_text.delta``,
``response.function_call_arguments.delta`` and their ``.done``, ``response.completed`` with usage.
``ResponsesCapture`` assembles any Responses stream (translated or passed through) for the record.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

from app.errors import UpstreamCut, UpstreamError
from app.providers.base import EventStream, StreamEvent
from app.providers.sse import DONE
from app.services.proxy.capture import Capture
from app.services.proxy.translate_responses import (
    dumps,
    function_item,
    message_item,
    response_object,
    text_part,
)

TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


class ResponsesFromChat(EventStream):
    """A chat stream relayed as Responses events, under the gateway's own response id."""

    def __init__(self, upstream: EventStream, *, request: dict[str, Any], response: str, model: str) -> None:
        self._upstream, self._request, self._response, self._model = upstream, request, response, model
        self._sequence = itertools.count()
        self._created = int(time.time())

    def close(self) -> None:
        self._upstream.close()

    def _event(self, kind: str, **fields: Any) -> StreamEvent:
        data = {"type": kind, "sequence_number": next(self._sequence), **fields}
        return StreamEvent(data=dumps(data), chunk=data)

    def _object(self, items: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        return response_object(self._request, self._response, model=self._model, items=items,
                               created=self._created, **fields)

    def __iter__(self) -> Iterator[StreamEvent]:
        pending = self._object([], finish_reason=None, usage=None, status="in_progress")
        yield self._event("response.created", response=pending)
        yield self._event("response.in_progress", response=pending)
        state = _State()
        done = False
        tags: tuple[str | None, str | None] | None = None  # Qwen's continuity, carried to the next event out
        for event in self._upstream:
            if event.parent_id or event.chat_id:
                tags = (event.parent_id, event.chat_id)
            if event.data == DONE:
                done = True
                break
            for out in state.take(event.chunk, self._event):
                if tags is not None:
                    (out.parent_id, out.chat_id), tags = tags, None
                yield out
        if not done and state.finish is None:
            raise UpstreamCut("The provider ended the stream before it finished.")
        yield from state.close(self._event)
        final = self._object(state.items(), finish_reason=state.finish, usage=state.usage)
        last = self._event("response.completed" if final["status"] == "completed" else "response.incomplete",
                           response=final)
        if tags is not None:
            last.parent_id, last.chat_id = tags
        yield last


class _State:
    """The output items of a translated stream as they form."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None  # the text item still open: item, index, pieces
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> item, index, pieces, open
        self.finished: list[tuple[int, dict[str, Any]]] = []
        self.next_index = 0
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None

    def take(self, chunk: dict[str, Any] | None, event) -> Iterator[StreamEvent]:
        if not isinstance(chunk, dict):
            return
        if isinstance(chunk.get("error"), dict | str):
            error = chunk["error"]
            raise UpstreamError(str(error.get("message") if isinstance(error, dict) else error))
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self.message is None:
                    item = message_item("", status="in_progress")
                    self.message = {"item": item, "index": self._index(), "pieces": []}
                    yield event("response.output_item.added", output_index=self.message["index"], item=item)
                    yield event("response.content_part.added", item_id=item["id"],
                                output_index=self.message["index"], content_index=0, part=text_part(""))
                self.message["pieces"].append(delta["content"])
                yield event("response.output_text.delta", item_id=self.message["item"]["id"],
                            output_index=self.message["index"], content_index=0, delta=delta["content"], logprobs=[])
            for call in delta.get("tool_calls") or ():
                yield from self._call(call, event)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]

    def _call(self, call: dict[str, Any], event) -> Iterator[StreamEvent]:
        function = call.get("function") or {}
        slot = self.calls.get(call.get("index", 0))
        if slot is None:
            yield from self._close_message(event)
            item = function_item(call.get("id"), function.get("name"), "", status="in_progress")
            slot = self.calls[call.get("index", 0)] = {"item": item, "index": self._index(), "pieces": []}
            yield event("response.output_item.added", output_index=slot["index"], item=item)
        elif function.get("name"):
            slot["item"]["name"] += function["name"]
        if function.get("arguments"):
            slot["pieces"].append(function["arguments"])
            yield event("response.function_call_arguments.delta", item_id=slot["item"]["id"],
                        output_index=slot["index"], delta=function["arguments"])

    def close(self, event) -> Iterator[StreamEvent]:
        yield from self._close_message(event)
        for slot in self.calls.values():
            arguments = "".join(slot["pieces"])
            item = {**slot["item"], "arguments": arguments, "status": "completed"}
            yield event("response.function_call_arguments.done", item_id=item["id"], output_index=slot["index"],
                        arguments=arguments)
            yield event("response.output_item.done", output_index=slot["index"], item=item)
            self.finished.append((slot["index"], item))
        self.calls = {}

    def _close_message(self, event) -> Iterator[StreamEvent]:
        if self.message is None:
            return
        slot, self.message = self.message, None
        text = "".join(slot["pieces"])
        item_id, index = slot["item"]["id"], slot["index"]
        yield event("response.output_text.done", item_id=item_id, output_index=index, content_index=0, text=text,
                    logprobs=[])
        yield event("response.content_part.done", item_id=item_id, output_index=index, content_index=0,
                    part=text_part(text))
        item = message_item(text, status="completed", item_id=item_id)
        yield event("response.output_item.done", output_index=index, item=item)
        self.finished.append((index, item))

    def items(self) -> list[dict[str, Any]]:
        return [item for _, item in sorted(self.finished, key=lambda pair: pair[0])]

    def _index(self) -> int:
        self.next_index += 1
        return self.next_index - 1


class ResponsesCapture(Capture):
    """What a Responses stream said, for the record: its final object, text, usage and first token."""

    def __init__(self, *, started: float, response: str) -> None:
        super().__init__(started=started)
        self.response = response
        self.final: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any] | None) -> None:
        if not isinstance(chunk, dict):
            return
        kind = chunk.get("type")
        if kind == "response.output_text.delta":
            self._first_token()
            self.content.append(chunk.get("delta") or "")
        elif kind == "response.function_call_arguments.delta":
            self._first_token()
        elif kind in TERMINAL and isinstance(chunk.get("response"), dict):
            self.final = chunk["response"]
            for index, item in enumerate(self.final.get("output") or ()):
                if isinstance(item, dict) and item.get("type") == "function_call":
                    self.tool_calls[index] = {"function": {"arguments": item.get("arguments") or ""}}
        elif kind == "error":
            self.error = {"message": chunk.get("message"), "code": chunk.get("code")}

    @property
    def finish_reason(self) -> str | None:
        if self.final is None:
            return None
        if self.final.get("status") == "incomplete":
            return _FINISH.get((self.final.get("incomplete_details") or {}).get("reason"), "length")
        if self.final.get("status") == "failed":
            return None
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = (self.final or {}).get("usage")
        if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
            return None
        return {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage.get("output_tokens") or 0,
                "total_tokens": usage.get("total_tokens")}

    def body(self) -> dict[str, Any]:
        if self.final is not None:
            return self.final
        text = "".join(self.content)
        return {"id": self.response, "object": "response", "status": "incomplete",
                "output": [message_item(text, status="incomplete")] if text else []}


def rewrite_id(chunk: dict[str, Any], response: str) -> str:
    """A passed-through event under the gateway's own response id; its JSON to forward."""
    if isinstance(chunk.get("response"), dict):
        chunk["response"]["id"] = response
    return json.dumps(chunk, separators=(",", ":"), ensure_ascii=False)
