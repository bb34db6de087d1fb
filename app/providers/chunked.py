"""A streamed upstream body read straight from its connection: HTTP/1.1 chunked coding decoded here.

urllib3's and http.client's layers (``read1``, chunk bookkeeping, one call chain per chunk) cost
more CPU than the rest of relaying an event; a stream of hundreds of small events pays it per event.
``body_reader`` hands back the connection's buffered reader when the body is chunked and not
content-encoded (what every OpenAI-compatible server sends for SSE); anything else keeps the
urllib3 path.
"""

from __future__ import annotations

from typing import Any

READ_SIZE = 65536
# A read that may wait holds its buffer while it waits: 1,000 streams waiting with 64 KiB each
# would hold 64 MB. Reads ask for this much unless the last one filled its buffer (more is
# waiting, so the next read returns at once and a burst is still taken in large reads).
WAIT_READ_SIZE = 4096


class ChunkedDecoder:
    """HTTP/1.1 chunked transfer coding, decoded from reads split anywhere."""

    def __init__(self) -> None:
        self._pending = b""  # an incomplete size line (or trailer line)
        self._left = 0  # bytes of the current chunk still to come
        self._skip = 0  # bytes of the CRLF closing a chunk's data still to come
        self._trailers = False  # past the last chunk: trailer lines until a blank one
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """The body bytes in ``data``; ``done`` is set once the last chunk and its trailers are read."""
        if self._pending:
            data, self._pending = self._pending + data, b""
        if self._left and self._left >= len(data):  # the middle of a large chunk
            self._left -= len(data)
            if not self._left:
                self._skip = 2
            return data
        out: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end and not self.done:
            if self._left:
                take = min(self._left, end - pos)
                out.append(data[pos:pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    self._skip = 2
                continue
            if self._skip:
                take = min(self._skip, end - pos)
                pos += take
                self._skip -= take
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._pending = data[pos:]
                break
            line, pos = data[pos:newline].strip(), newline + 1
            if self._trailers:
                self.done = not line
                continue
            try:
                size = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise ChunkedError(f"bad chunk size line {line[:40]!r}") from None
            if size < 0:
                raise ChunkedError(f"bad chunk size line {line[:40]!r}")
            self._left = size
            self._trailers = size == 0
        return out[0] if len(out) == 1 else b"".join(out)


class ChunkedError(ValueError):
    """The body broke the chunked coding."""


def body_reader(raw: Any) -> Any | None:
    """The buffered reader under a urllib3 response whose chunked, unencoded body is still unread; else None."""
    response = getattr(raw, "_fp", None)  # http.client.HTTPResponse
    reader = getattr(response, "fp", None)
    if reader is None or not hasattr(reader, "read1"):
        return None
    if not getattr(response, "chunked", False) or getattr(response, "chunk_left", 0) is not None:
        return None
    if getattr(raw, "_fp_bytes_read", 1) or raw.headers.get("Content-Encoding", "identity").lower() != "identity":
        return None
    return reader


def finish(raw: Any) -> None:
    """The body was read to its end: close http.client's response and give the connection back to the pool."""
    raw._fp.close()  # noqa: SLF001 - as http.client does when it reads the last chunk itself
    raw.release_conn()
