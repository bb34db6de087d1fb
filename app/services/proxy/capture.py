"""What every stream capture keeps (chat chunks, legacy completions, Responses events): its text, tool
calls, error, Qwen's continuity ids, and when its first token came."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import chain
from typing import Any

BLOCK = 32  # pieces joined into one string as they come


class Text:
    """A streamed text, appended to piece by piece and kept compact while its stream is open.

    A piece (a token or so) held as its own str costs ~70 bytes with its list slot: a 1,000-token
    answer ~70 KB until its stream ends, for every open stream. Every ``BLOCK`` pieces become one
    string as they come; ``"".join(text)`` is the whole text, as for a list of its pieces.
    """

    __slots__ = ("_blocks", "_tail")

    def __init__(self) -> None:
        self._blocks: list[str] = []
        self._tail: list[str] = []

    def append(self, piece: str) -> None:
        tail = self._tail
        tail.append(piece)
        if len(tail) >= BLOCK:
            self._blocks.append("".join(tail))
            self._tail = []

    def __iter__(self) -> Iterator[str]:
        return chain(self._blocks, self._tail)

    def __bool__(self) -> bool:
        return bool(self._blocks or self._tail)


class Capture:
    def __init__(self, *, started: float) -> None:
        self.started = started
        self.first_token_at: float | None = None
        self.content = Text()
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.error: dict[str, Any] | None = None
        self.parent_id: str | None = None
        self.chat_id: str | None = None

    def _first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    @property
    def ttft_ms(self) -> int | None:
        return None if self.first_token_at is None else int((self.first_token_at - self.started) * 1000)
