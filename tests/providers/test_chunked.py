"""The relay's byte path: chunked coding and SSE events decoded from reads split anywhere."""

from __future__ import annotations

import random
import re

import pytest

from app.providers.chunked import ChunkedDecoder, ChunkedError
from app.providers.sse import SSEDecoder


def chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    return b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in pieces) + b"0\r\n" + trailer + b"\r\n"


def splits(data: bytes, rng: random.Random, *, most: int = 7) -> list[bytes]:
    """``data`` cut at random places (a cut may fall inside a size line, a CRLF or an event)."""
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, most))))
    return [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("seed", range(40))
def test_chunked_body_is_decoded_from_reads_split_anywhere(seed):
    rng = random.Random(seed)
    pieces = [bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))) for _ in range(rng.randint(1, 6))]
    trailer = b"X-Checksum: 1\r\n" if seed % 3 == 0 else b""
    wire = chunked(*pieces, trailer=trailer)
    decoder = ChunkedDecoder()
    body = b""
    for read in splits(wire, rng, most=12):
        assert not decoder.done
        body += decoder.feed(read)
    assert decoder.done
    assert body == b"".join(pieces)


def test_chunk_extensions_and_upper_case_sizes():
    decoder = ChunkedDecoder()
    assert decoder.feed(b"A;name=value\r\n0123456789\r\n0\r\n\r\n") == b"0123456789"
    assert decoder.done


def test_a_bad_size_line_is_an_error():
    with pytest.raises(ChunkedError):
        ChunkedDecoder().feed(b"zz\r\nhello\r\n")


def test_an_unfinished_body_is_not_done():
    decoder = ChunkedDecoder()
    assert decoder.feed(chunked(b"data: 1\n\n")[:-5]) == b"data: 1\n\n"
    assert not decoder.done


class ReferenceDecoder:
    """SSE decoding line by line, as the spec reads (the decoder's behaviour before the one-pass split)."""

    def __init__(self) -> None:
        self.buffer, self.data, self.events = b"", [], []

    def decode(self, data: bytes) -> list[str]:
        lines = re.split(rb"\r\n|\r|\n", data)
        for line in lines[:-1]:
            self.line(line)
        if lines[-1]:
            self.line(lines[-1])
        if self.data:
            self.line(b"")
        return self.events

    def line(self, line: bytes) -> None:
        if not line:
            if self.data:
                self.events.append(b"\n".join(self.data).decode("utf-8", errors="replace"))
                self.data = []
            return
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if name == b"data":
            self.data.append(value[1:] if value.startswith(b" ") else value)


FIELDS = [b"data: {\"a\": 1}", b"data:{\"b\":2}", b"data: two\ndata: lines", b": comment", b"event: x",
          b"id: 7", b"data", b"data: \xc3\xbc\xff", b"retry: 10", b"data:  spaced", b"data: [DONE]"]


@pytest.mark.parametrize("seed", range(60))
def test_sse_events_split_anywhere_decode_as_read_line_by_line(seed):
    rng = random.Random(seed)
    ending = [b"\n", b"\r\n", b"\r"][seed % 3] if seed % 4 else b"\n"
    stream = b""
    for _ in range(rng.randint(1, 12)):
        stream += ending.join(rng.sample(FIELDS, rng.randint(1, 3))) + ending + ending * rng.randint(1, 2)
    if seed % 5 == 0:
        stream += b"data: last without its blank line"
    decoder = SSEDecoder()
    events = []
    for read in splits(stream, rng, most=20):
        events += decoder.feed(read)
    events += decoder.flush()
    assert events == ReferenceDecoder().decode(stream)
