"""Server-sent events decoding, separate from any transport."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

DONE = "[DONE]"
_LINE_END = re.compile(rb"\r\n|\r|\n")


class SSEDecoder:
    """Turns bytes, split anywhere, into the data of complete events.

    Lines may end in \\n, \\r\\n or \\r; an event ends at a blank line; comment
    lines (":") and fields other than ``data`` are ignored.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._skip_lf = False  # the last read ended in \r: a \n opening the next one is its pair

    def feed(self, chunk: bytes) -> list[str]:
        """Add bytes; return the data of every event they complete."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            self._buffer = buffer
            return self._lines()
        # Lines end in \n only (what servers send): split at the blank lines that end events.
        blocks = buffer.split(b"\n\n")
        self._buffer = blocks.pop()  # what follows the last complete event: kept whole until it is one
        events: list[str] = []
        for block in blocks:
            if block[:5] == b"data:" and b"\n" not in block and not self._data:
                value = block[6:] if block[5:6] == b" " else block[5:]
                events.append(value.decode("utf-8", errors="replace"))
                continue
            for line in block.split(b"\n"):
                self._line(line, events)
            self._line(b"", events)
        return events

    def _lines(self) -> list[str]:
        events: list[str] = []
        while match := _LINE_END.search(self._buffer):
            line, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            if match.group() == b"\r" and not self._buffer:
                self._skip_lf = True
            self._line(line, events)
        return events

    def flush(self) -> list[str]:
        """At end of input: a last event lacking its blank line still counts."""
        events = self._lines()
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        if self._data:
            self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[str]) -> None:
        if not line:
            if self._data:
                events.append(b"\n".join(self._data).decode("utf-8", errors="replace"))
                self._data = []
            return
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if name == b"data":
            self._data.append(value[1:] if value.startswith(b" ") else value)


def decode(chunks: Iterable[bytes]) -> Iterator[str]:
    """The data of each event in a byte stream, yielded as soon as it is complete."""
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.flush()
