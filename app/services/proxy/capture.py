"""What every stream capture keeps (chat chunks, legacy completions, Responses events): its text, tool
calls, error, Qwen's continuity ids, and when its first token came."""

from __future__ import annotations

import time
from typing import Any


class Capture:
    def __init__(self, *, started: float) -> None:
        self.started = started
        self.first_token_at: float | None = None
        self.content: list[str] = []
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
