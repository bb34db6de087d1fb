"""Offline token estimates for when an upstream reports no usage (nothing is downloaded)."""

from __future__ import annotations

import json
from typing import Any

# About four characters a token for English text with common BPE vocabularies.
_CHARS_PER_TOKEN = 4
# Role markers and separators each message costs in the chat format.
_TOKENS_PER_MESSAGE = 4


def estimate_text_tokens(text: str) -> int:
    return -(-len(text) // _CHARS_PER_TOKEN) if text else 0


def message_text(content: Any) -> str:
    """The text of a message's content, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += _TOKENS_PER_MESSAGE + estimate_text_tokens(message_text(message.get("content")))
    if body.get("tools"):
        total += estimate_text_tokens(json.dumps(body["tools"]))
    return total
