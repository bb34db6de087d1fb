"""SSEDecoder: bytes split anywhere come out as the data of whole events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.providers.sse import DONE, SSEDecoder, decode

LINES = [
    ": keep-alive comment",
    "event: message",
    "id: 1",
    'data: {"a": 1}',
    "",
    "data: first line",
    "data:second line",
    "retry: 1000",
    "",
    ": a comment alone, then a blank line that ends no event",
    "",
    "data: héllo — 日本 🎉",
    "",
    "data: [DONE]",
    "",
]
EXPECTED = ['{"a": 1}', "first line\nsecond line", "héllo — 日本 🎉", DONE]
ENDINGS = ["\n", "\r\n", "\r"]


def stream(ending: str) -> bytes:
    return (ending.join(LINES) + ending).encode()


def run(chunks: list[bytes]) -> list[str]:
    decoder = SSEDecoder()
    events: list[str] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[start:end] for start, end in zip(points, points[1:], strict=False)]


@pytest.mark.parametrize("ending", ENDINGS, ids=["lf", "crlf", "cr"])
def test_whole_stream_in_one_read(ending):
    assert run([stream(ending)]) == EXPECTED


@pytest.mark.parametrize("ending", ENDINGS, ids=["lf", "crlf", "cr"])
def test_one_byte_at_a_time(ending):
    data = stream(ending)
    assert run([data[i : i + 1] for i in range(len(data))]) == EXPECTED


@pytest.mark.parametrize("ending", ENDINGS, ids=["lf", "crlf", "cr"])
def test_split_at_every_single_boundary(ending):
    data = stream(ending)
    for cut in range(len(data) + 1):
        assert run([data[:cut], data[cut:]]) == EXPECTED, f"split at byte {cut}"


@settings(max_examples=150, deadline=None, database=None)
@given(
    ending=st.sampled_from(ENDINGS),
    cuts=st.lists(st.integers(min_value=0, max_value=len(stream("\r\n"))), max_size=30),
)
def test_split_at_random_points(ending, cuts):
    data = stream(ending)
    assert run(split_at(data, [cut for cut in cuts if cut <= len(data)])) == EXPECTED


def test_events_are_returned_by_the_feed_that_completes_them():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\ndata: b\n\ndata: c") == ["a", "b"]
    assert decoder.feed(b"\n\n") == ["c"]
    assert decoder.flush() == []


def test_cr_then_lf_in_the_next_read_is_one_line_end():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # Were the \n taken as a second (blank) line, "a" would come out here, and
    # "b" would then be a separate event instead of a second line of it.
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r\n") == ["a\nb"]


def test_cr_lf_split_between_reads_around_the_blank_line():
    decoder = SSEDecoder()
    first = decoder.feed(b"data: a\r\n\r")
    # "a" may come out at the \r or at the \n; the \n must not start a new line either way.
    assert first + decoder.feed(b"\ndata: b\r\n\r\n") == ["a", "b"]
    assert decoder.flush() == []


def test_cr_terminated_event_is_returned_by_the_feed_that_completes_it():
    # "data: a\r\r" is a complete event whatever comes next: the second \r ends a
    # blank line even if a \n follows it. Holding it back delays the event until
    # the upstream's next write.
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == ["a"]


def test_multi_line_data_joined_with_newlines():
    assert run([b"data: one\ndata: two\ndata:\ndata: four\n\n"]) == ["one\ntwo\n\nfour"]


def test_only_one_leading_space_is_stripped_from_the_value():
    assert run([b"data:  two spaces\n\ndata:none\n\n"]) == [" two spaces", "none"]


def test_data_field_without_colon_is_an_empty_line_of_data():
    assert run([b"data\n\n"]) == [""]


def test_comments_and_other_fields_are_ignored():
    data = b": ping\nevent: delta\nid: 42\nretry: 10\nfoo: bar\ndata: x\n\n"
    assert run([data]) == ["x"]


def test_event_without_data_is_not_emitted():
    assert run([b"event: ping\nid: 7\n\n: only a comment\n\n\n\n"]) == []


def test_field_name_must_be_exactly_data():
    assert run([b"database: no\ndata2: no\n data: no\ndata: yes\n\n"]) == ["yes"]


def test_flush_emits_a_trailing_event_without_blank_line():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: last\n") == ["a"]
    assert decoder.flush() == ["last"]
    assert decoder.flush() == []


def test_flush_emits_an_unterminated_last_line():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\ndata: b") == []
    assert decoder.flush() == ["a\nb"]


def test_flush_of_a_line_ended_by_a_lone_cr_drops_the_cr():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: last\r") == []
    assert decoder.flush() == ["last"]


def test_flush_with_nothing_pending_is_empty():
    decoder = SSEDecoder()
    assert decoder.flush() == []
    assert decoder.feed(b": comment\n") == []
    assert decoder.flush() == []


def test_utf8_character_split_across_reads_is_decoded_whole():
    data = "data: 日本🎉é\n\n".encode()
    emoji_start = data.index("🎉".encode())
    # Cut inside the four bytes of the emoji, and inside the two of "é".
    chunks = split_at(data, [emoji_start + 1, emoji_start + 3, len(data) - 3])
    assert run(chunks) == ["日本🎉é"]


def test_utf8_one_byte_at_a_time_across_lines():
    data = "data: ü\ndata: 🎉\n\n".encode()
    assert run([data[i : i + 1] for i in range(len(data))]) == ["ü\n🎉"]


def test_invalid_utf8_is_replaced_not_raised():
    assert run([b"data: a\xffb\n\n"]) == ["a\ufffdb"]


def test_decode_yields_each_event_before_reading_further():
    consumed: list[int] = []

    def chunks() -> Iterator[bytes]:
        for index, chunk in enumerate([b"data: a\n\n", b"data: b\n\n"]):
            consumed.append(index)
            yield chunk

    events = decode(chunks())
    assert next(events) == "a"
    assert consumed == [0]
    assert list(events) == ["b"]


def test_decode_flushes_at_end():
    assert list(decode([b"data: a\n\n", b"data: b"])) == ["a", "b"]
