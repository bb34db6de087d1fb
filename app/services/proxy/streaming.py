"""Relaying a stream to the client chunk by chunk while capturing what it said."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from app.errors import GatewayError, UpstreamCut
from app.providers.base import EventStream, StreamEvent
from app.providers.sse import DONE
from app.services.audit.records import Outcome
from app.services.proxy.capture import Capture
from app.services.proxy.live_streams import live_streams
from app.services.proxy.responses_stream import TERMINAL, ResponsesCapture, rewrite_id

DONE_EVENT = b"data: [DONE]\n\n"
log = logging.getLogger(__name__)


class StreamCapture(Capture):
    """Assembles the streamed answer (content, tool calls, finish reason, usage) as it passes."""

    def __init__(self, *, started: float) -> None:
        super().__init__(started=started)
        self.meta: dict[str, Any] = {}
        self.role = "assistant"
        self.refusal: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.unparsed = 0

    def add(self, chunk: dict[str, Any] | None) -> None:
        if chunk is None:
            self.unparsed += 1
            return
        if not self.meta:
            keys = ("id", "created", "model", "system_fingerprint")
            self.meta = {key: chunk[key] for key in keys if key in chunk}
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("error"), dict | str):
            self.error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": chunk["error"]}
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # the audit keeps the first choice
            delta = choice.get("delta") or {}
            self._add_delta(delta)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _add_delta(self, delta: dict[str, Any]) -> None:
        if delta.get("role"):
            self.role = delta["role"]
        if delta.get("content"):
            self._first_token()
            self.content.append(delta["content"])
        if delta.get("refusal"):
            self._first_token()
            self.refusal.append(delta["refusal"])
        for call in delta.get("tool_calls") or ():
            self._first_token()
            slot = self.tool_calls.setdefault(
                call.get("index", len(self.tool_calls)),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if call.get("id"):
                slot["id"] = call["id"]
            if call.get("type"):
                slot["type"] = call["type"]
            function = call.get("function") or {}
            if function.get("name"):
                slot["function"]["name"] += function["name"]
            if function.get("arguments"):
                slot["function"]["arguments"] += function["arguments"]


    def message(self) -> dict[str, Any]:
        content = "".join(self.content) if self.content else None
        message: dict[str, Any] = {"role": self.role, "content": content}
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[index] for index in sorted(self.tool_calls)]
        return message

    def body(self) -> dict[str, Any]:
        """The assembled answer as a non-streaming chat.completion object."""
        body: dict[str, Any] = {"object": "chat.completion", **self.meta}
        body["choices"] = [{"index": 0, "message": self.message(), "finish_reason": self.finish_reason}]
        if self.usage is not None:
            body["usage"] = self.usage
        return body


class ChatDialect:
    """OpenAI chunk streams (chat, legacy completions): forwarded as they came; the gateway adds [DONE]."""

    tail = DONE_EVENT
    referable = False

    def __init__(self, capture: Any, *, forward_usage: bool) -> None:
        self.capture, self.forward_usage = capture, forward_usage

    def step(self, event: StreamEvent) -> tuple[bytes | None, bool]:
        """The bytes to forward for an event (None: nothing), and whether it ends the stream."""
        if event.data == DONE:
            return None, True
        self.capture.add(event.chunk)
        if event.parent_id:
            self.capture.parent_id = event.parent_id
        if event.chat_id:
            self.capture.chat_id = event.chat_id
        if not self.forward_usage and _usage_only(event.chunk):
            return None, False
        return b"data: " + event.data.encode() + b"\n\n", False

    def complete(self) -> bool:
        return self.capture.finish_reason is not None or self.capture.error is not None

    def error(self, error: GatewayError) -> bytes:
        return b"data: " + json.dumps(error.body()).encode() + b"\n\n"


class ResponsesDialect:
    """Responses API events (``event:`` and ``data:``), under the gateway's response id; no [DONE]."""

    tail = b""

    def __init__(self, capture: ResponsesCapture, *, rewrite: bool, referable: bool = False) -> None:
        self.capture, self.rewrite = capture, rewrite  # rewrite: a passed-through stream carries its upstream's id
        self.referable = referable  # a later call may name it: recorded before its last event
        self._sequence = 0

    def step(self, event: StreamEvent) -> tuple[bytes | None, bool]:
        chunk = event.chunk
        if event.data == DONE:
            return None, True
        if not isinstance(chunk, dict):
            return b"data: " + event.data.encode() + b"\n\n", False
        self.capture.add(chunk)
        if event.parent_id:
            self.capture.parent_id = event.parent_id
        if event.chat_id:
            self.capture.chat_id = event.chat_id
        if isinstance(chunk.get("sequence_number"), int):
            self._sequence = chunk["sequence_number"] + 1
        data = rewrite_id(chunk, self.capture.response) if self.rewrite else event.data
        kind = str(chunk.get("type", "message"))
        return b"event: " + kind.encode() + b"\ndata: " + data.encode() + b"\n\n", kind in TERMINAL

    def complete(self) -> bool:
        return self.capture.final is not None or self.capture.error is not None

    def error(self, error: GatewayError) -> bytes:
        body = {"type": "error", "code": error.code, "message": error.message, "param": error.param,
                "sequence_number": self._sequence}
        return b"event: error\ndata: " + json.dumps(body).encode() + b"\n\n"


def relay(
    events: EventStream,
    *,
    dialect: ChatDialect | ResponsesDialect,
    finish: Callable[[Outcome], None],
    outcome: Callable[..., Outcome],
) -> Iterator[bytes]:
    """Forward each event as it arrives; record the outcome however the stream ends.

    Events that arrived together (one read upstream) go out together, in one write: nothing
    waits for more to batch.

    The outcome is written in ``finally``: after the stream's end ([DONE], or the
    Responses API's last event), after an upstream failure (sent to the client as a
    last error event), or when the client goes away and the server closes this
    generator. A stream that moves a conversation on upstream (Qwen's parent_id), or
    that a later call may name (a stored response), is recorded before its end instead:
    the next turn, sent the moment this one ends, may reach another worker or
    instance, and must find the new state committed.
    """
    capture = dialect.capture
    error: GatewayError | None = None
    delivered = finished = recorded = False
    last: bytes | None = None  # a stream's own last event (Responses), held until the record is made
    upstream = events.batches()
    step = dialect.step
    pending: list[bytes] = []  # what one batch (one read upstream) gave: sent in one write
    key = id(capture)
    live_streams.add(key)
    try:
        try:
            for batch in upstream:
                for event in batch:
                    out, ended = step(event)
                    if ended:
                        finished, last = True, out
                        break
                    if out is not None:
                        pending.append(out)
                if pending:
                    out, pending = pending[0] if len(pending) == 1 else b"".join(pending), []
                    yield out
                if finished:
                    break
            if not finished and not dialect.complete():
                raise UpstreamCut("The provider ended the stream before it finished.")
        except GatewayError as exc:
            error = exc
            yield b"".join(pending) + dialect.error(exc)
        except Exception:
            log.exception("relaying a stream failed")
            error = GatewayError("The gateway failed while relaying the stream.")
            yield b"".join(pending) + dialect.error(error)
        if capture.parent_id or capture.chat_id or dialect.referable:
            finish(outcome(capture=capture, error=error, client_gone=False))
            recorded = True
        if last is not None:
            yield last
        if dialect.tail:
            yield dialect.tail
        delivered = True
        live_streams.discard(key)  # delivered: nothing left to end
        if finished:
            _drain(upstream)
    finally:
        live_streams.discard(key)
        events.close()
        if not recorded:
            finish(outcome(capture=capture, error=error, client_gone=not delivered))


def _drain(upstream: Iterator[Any]) -> None:
    """Read what follows the end (the body's end) so the upstream connection is reused, as openai-python does."""
    try:
        for _ in upstream:
            pass
    except GatewayError:
        pass


def _usage_only(chunk: dict[str, Any] | None) -> bool:
    return chunk is not None and bool(chunk.get("usage")) and not chunk.get("choices")
