"""StreamCapture assembles a streamed answer; relay forwards it and records how it ended."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from app.errors import UpstreamCut, UpstreamTimeout
from app.providers.base import EventStream, StreamEvent
from app.providers.sse import DONE
from app.services.proxy import capture as capture_module
from app.services.proxy.streaming import DONE_EVENT, ChatDialect, StreamCapture, relay


def chunk(delta: dict[str, Any] | None = None, *, finish: str | None = None, index: int = 0, **extra):
    return {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "m",
        "choices": [{"index": index, "delta": delta or {}, "finish_reason": finish}], **extra,
    }


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
USAGE_CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": USAGE}


def event(value: dict[str, Any] | str, **ids: str) -> StreamEvent:
    if isinstance(value, str):
        return StreamEvent(data=value, chunk=None, **ids)
    return StreamEvent(data=json.dumps(value), chunk=value, **ids)


# StreamCapture ---------------------------------------------------------------------------


def capture_of(*chunks) -> StreamCapture:
    capture = StreamCapture(started=0.0)
    for each in chunks:
        capture.add(each)
    return capture


def test_capture_assembles_content_finish_reason_usage_and_meta():
    capture = capture_of(
        chunk({"role": "assistant", "content": ""}, system_fingerprint="fp"),
        chunk({"content": "Hel"}),
        chunk({"content": "lo ü"}),
        chunk(finish="stop"),
        USAGE_CHUNK,
    )
    assert capture.body() == {
        "object": "chat.completion",
        "id": "chatcmpl-1", "created": 1700000000, "model": "m", "system_fingerprint": "fp",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello ü"}, "finish_reason": "stop"},
        ],
        "usage": USAGE,
    }


def test_capture_without_content_or_usage():
    capture = capture_of(chunk({"role": "assistant"}), chunk(finish="length"))
    body = capture.body()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": None}
    assert body["choices"][0]["finish_reason"] == "length"
    assert "usage" not in body


def test_capture_ignores_null_usage_on_ordinary_chunks():
    capture = capture_of(USAGE_CHUNK, chunk({"content": "x"}, usage=None))
    assert capture.usage == USAGE


def test_capture_tool_calls_split_across_chunks_by_index():
    capture = capture_of(
        chunk({"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_", "arguments": ""}},
        ]}),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": '{"ci'}}]}),
        chunk({"tool_calls": [
            {"index": 1, "id": "call_b", "type": "function", "function": {"name": "now", "arguments": "{}"}},
        ]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}),
        chunk(finish="tool_calls"),
    )
    assert capture.message() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {"id": "call_b", "type": "function", "function": {"name": "now", "arguments": "{}"}},
        ],
    }
    assert capture.finish_reason == "tool_calls"


def test_capture_tool_calls_ordered_by_index_not_arrival():
    capture = capture_of(
        chunk({"tool_calls": [{"index": 1, "id": "second", "function": {"name": "b"}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "first", "function": {"name": "a"}}]}),
    )
    assert [call["id"] for call in capture.message()["tool_calls"]] == ["first", "second"]


def test_capture_keeps_only_the_first_choice():
    capture = capture_of(chunk({"content": "zero"}), chunk({"content": "one"}, index=1, finish="stop"))
    assert capture.message()["content"] == "zero"
    assert capture.finish_reason is None


def test_capture_refusal_and_error_and_unparsed():
    capture = capture_of(
        chunk({"refusal": "I can"}), chunk({"refusal": "not."}), None, {"error": "overloaded"}
    )
    assert capture.message()["refusal"] == "I cannot."
    assert capture.error == {"message": "overloaded"}
    assert capture.unparsed == 1
    capture.add({"error": {"message": "m", "code": "c"}})
    assert capture.error == {"message": "m", "code": "c"}


def test_capture_meta_comes_from_the_first_chunk():
    capture = capture_of(chunk({"content": "a"}), {**chunk({"content": "b"}), "id": "other", "model": "x"})
    assert capture.meta == {"id": "chatcmpl-1", "created": 1700000000, "model": "m"}


def test_ttft_is_the_first_content_or_tool_call(monkeypatch):
    clock = {"now": 10.0}
    monkeypatch.setattr(capture_module.time, "perf_counter", lambda: clock["now"])
    capture = StreamCapture(started=10.0)
    clock["now"] = 10.1
    capture.add(chunk({"role": "assistant", "content": ""}))
    assert capture.ttft_ms is None  # a role-only opening chunk is not a token
    clock["now"] = 10.25
    capture.add(chunk({"content": "Hi"}))
    clock["now"] = 11.0
    capture.add(chunk({"content": " there"}))
    assert capture.ttft_ms == 250


def test_ttft_counts_a_tool_call(monkeypatch):
    monkeypatch.setattr(capture_module.time, "perf_counter", lambda: 5.5)
    capture = StreamCapture(started=5.0)
    capture.add(chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]}))
    assert capture.ttft_ms == 500


# relay -----------------------------------------------------------------------------------


class FakeEvents(EventStream):
    """Yields the given events, then raises ``error`` if one is given."""

    def __init__(self, events: list[StreamEvent], *, error: Exception | None = None) -> None:
        self._events = events
        self._error = error
        self.closed = 0
        self.yielded = 0

    def __iter__(self) -> Iterator[StreamEvent]:
        for each in self._events:
            self.yielded += 1
            yield each
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self.closed += 1


class Recorder:
    def __init__(self) -> None:
        self.finished: list[dict[str, Any]] = []

    @staticmethod
    def outcome(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    def finish(self, outcome: dict[str, Any]) -> None:
        self.finished.append(outcome)

    @property
    def only(self) -> dict[str, Any]:
        assert len(self.finished) == 1, f"finish called {len(self.finished)} times"
        return self.finished[0]


def start(events: FakeEvents, *, forward_usage: bool = False):
    recorder = Recorder()
    capture = StreamCapture(started=0.0)
    generator = relay(
        events, dialect=ChatDialect(capture, forward_usage=forward_usage),
        finish=recorder.finish, outcome=recorder.outcome,
    )
    return generator, capture, recorder


def sse(value: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(value).encode() + b"\n\n"


COMPLETE = [
    event(chunk({"role": "assistant", "content": ""})),
    event(chunk({"content": "Hé"})),
    event(chunk(finish="stop")),
    event(USAGE_CHUNK),
    event(DONE),
]


def test_relay_forwards_each_event_and_ends_with_done():
    events = FakeEvents(COMPLETE)
    generator, capture, recorder = start(events)
    output = list(generator)
    assert output == [sse(e.chunk) for e in COMPLETE[:3]] + [DONE_EVENT]
    assert DONE_EVENT == b"data: [DONE]\n\n"
    assert capture.message()["content"] == "Hé"
    assert capture.usage == USAGE  # captured even though not forwarded
    assert recorder.only == {"capture": capture, "error": None, "client_gone": False}
    assert events.closed == 1


def test_relay_forwards_the_exact_upstream_bytes():
    raw = '{"id":"x",  "choices":[{"index":0,"delta":{"content":"é"},"finish_reason":"stop"}]}'
    events = FakeEvents([StreamEvent(data=raw, chunk=json.loads(raw)), event(DONE)])
    generator, _, _ = start(events)
    assert list(generator) == [b"data: " + raw.encode() + b"\n\n", DONE_EVENT]


def test_relay_forwards_the_usage_chunk_when_asked():
    generator, capture, recorder = start(FakeEvents(COMPLETE), forward_usage=True)
    assert list(generator) == [sse(e.chunk) for e in COMPLETE[:4]] + [DONE_EVENT]
    assert recorder.only["error"] is None


def test_relay_keeps_usage_on_a_chunk_with_choices():
    with_choices = event(chunk(finish="stop", usage=USAGE))
    generator, _, _ = start(FakeEvents([with_choices, event(DONE)]))
    assert list(generator) == [sse(with_choices.chunk), DONE_EVENT]


def test_relay_ends_at_done_and_drains_the_rest_unforwarded():
    events = FakeEvents([event(chunk({"content": "a"})), event(DONE), event(chunk({"content": "late"}))])
    generator, capture, recorder = start(events)
    assert list(generator) == [sse(chunk({"content": "a"})), DONE_EVENT]
    assert events.yielded == 3  # read to the end, so the upstream connection can be reused
    assert capture.message()["content"] == "a"


def test_relay_records_parent_and_chat_ids():
    events = FakeEvents([event(chunk({"content": "a"}), parent_id="p1", chat_id="c1"), event(DONE)])
    generator, capture, _ = start(events)
    list(generator)
    assert (capture.parent_id, capture.chat_id) == ("p1", "c1")


def test_a_stream_that_moves_the_conversation_on_is_recorded_before_its_done():
    events = FakeEvents([event(chunk({"content": "a"}), parent_id="p1", chat_id="c1"), event(DONE)])
    generator, capture, recorder = start(events)
    assert next(generator) == sse(chunk({"content": "a"}))
    assert recorder.finished == []
    assert next(generator) == DONE_EVENT
    # The next turn may be sent the moment [DONE] arrives: the new parent id is already recorded.
    assert recorder.only == {"capture": capture, "error": None, "client_gone": False}
    assert list(generator) == []
    assert len(recorder.finished) == 1


def test_a_stream_with_nothing_to_carry_on_is_recorded_after_its_done():
    generator, _, recorder = start(FakeEvents(COMPLETE))
    for _ in range(4):
        next(generator)
    assert recorder.finished == []  # the client has [DONE]; the record follows
    list(generator)
    assert len(recorder.finished) == 1


def test_relay_forwards_unparsed_events_as_they_came():
    events = FakeEvents([event("not json"), event(chunk(finish="stop")), event(DONE)])
    generator, capture, recorder = start(events)
    assert list(generator)[0] == b"data: not json\n\n"
    assert capture.unparsed == 1
    assert recorder.only["error"] is None


@pytest.mark.parametrize("error", [UpstreamCut("dropped"), UpstreamTimeout("silent")])
def test_relay_turns_an_upstream_failure_into_a_last_error_event(error):
    events = FakeEvents([event(chunk({"content": "par"}))], error=error)
    generator, capture, recorder = start(events)
    output = list(generator)
    assert output[0] == sse(chunk({"content": "par"}))
    assert json.loads(output[1].removeprefix(b"data: ")) == error.body()
    assert output[1].endswith(b"\n\n")
    assert output[2:] == [DONE_EVENT]
    assert recorder.only == {"capture": capture, "error": error, "client_gone": False}
    assert events.closed == 1


def test_relay_turns_an_unexpected_failure_into_an_internal_error_event():
    events = FakeEvents([event(chunk({"content": "a"}))], error=KeyError("bug"))
    generator, _, recorder = start(events)
    output = list(generator)
    assert json.loads(output[1].removeprefix(b"data: "))["error"]["code"] == "internal_error"
    assert output[-1] == DONE_EVENT
    assert recorder.only["error"].status == 500
    assert recorder.only["client_gone"] is False
    assert events.closed == 1


def test_a_stream_ending_without_done_or_finish_reason_is_cut():
    events = FakeEvents([event(chunk({"content": "half"}))])
    generator, _, recorder = start(events)
    output = list(generator)
    body = json.loads(output[1].removeprefix(b"data: "))
    assert body["error"]["code"] == "upstream_stream_cut"
    assert output[-1] == DONE_EVENT
    assert isinstance(recorder.only["error"], UpstreamCut)
    assert events.closed == 1


def test_a_stream_with_finish_reason_but_no_done_is_complete():
    events = FakeEvents([event(chunk({"content": "all"})), event(chunk(finish="stop"))])
    generator, _, recorder = start(events)
    assert list(generator) == [sse(chunk({"content": "all"})), sse(chunk(finish="stop")), DONE_EVENT]
    assert recorder.only["error"] is None


def test_a_stream_ending_on_an_upstream_error_chunk_is_not_cut():
    error_chunk = {"error": {"message": "context too long", "code": "context_length_exceeded"}}
    generator, capture, recorder = start(FakeEvents([event(error_chunk)]))
    assert list(generator) == [sse(error_chunk), DONE_EVENT]
    assert capture.error == error_chunk["error"]
    assert recorder.only["error"] is None


def test_an_empty_stream_is_cut():
    generator, _, recorder = start(FakeEvents([]))
    output = list(generator)
    assert len(output) == 2 and output[-1] == DONE_EVENT
    assert isinstance(recorder.only["error"], UpstreamCut)


def test_closing_after_the_first_chunk_reports_the_client_gone():
    events = FakeEvents([event(chunk({"content": "a"})), event(chunk({"content": "b"})), event(DONE)])
    generator, capture, recorder = start(events)
    assert next(generator) == sse(chunk({"content": "a"}))
    assert recorder.finished == []  # nothing recorded while the stream is open
    generator.close()
    assert events.closed == 1
    assert recorder.only == {"capture": capture, "error": None, "client_gone": True}
    assert capture.message()["content"] == "a"
    generator.close()  # closing twice records nothing more
    assert len(recorder.finished) == 1 and events.closed == 1


def test_closing_at_the_error_event_reports_the_client_gone_with_the_error():
    error = UpstreamCut("dropped")
    generator, _, recorder = start(FakeEvents([], error=error))
    assert b"upstream_stream_cut" in next(generator)
    generator.close()
    assert recorder.only["client_gone"] is True
    assert recorder.only["error"] is error


def test_consuming_past_done_records_once():
    generator, _, recorder = start(FakeEvents(COMPLETE))
    list(generator)
    assert list(generator) == []
    generator.close()
    assert len(recorder.finished) == 1
