"""Two calls side by side: their messages, answers, tool calls, tokens and timings, with what changed."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from app.models import Request
from app.services.search.text import answer_of, messages_of, text_of, tool_calls_of, vectors_note

_WORDS = re.compile(r"\s+|[^\s]+")
MAX_DIFF_CHARS = 20_000  # longer texts are compared whole, not word by word


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    change: str  # "same", "gone" (only on the left), "new" (only on the right)


@dataclass(frozen=True, slots=True)
class Row:
    """One aligned line of the diff: a message (by position), the answer, or a measure."""

    label: str
    left: list[Piece]
    right: list[Piece]
    changed: bool


def words_diff(left: str, right: str) -> tuple[list[Piece], list[Piece]]:
    """Each side cut into pieces marked same or changed, word by word."""
    if left == right:
        return [Piece(left, "same")], [Piece(right, "same")]
    if len(left) + len(right) > MAX_DIFF_CHARS:
        return [Piece(left, "gone")], [Piece(right, "new")]
    a, b = _WORDS.findall(left), _WORDS.findall(right)
    ours: list[Piece] = []
    theirs: list[Piece] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            ours.append(Piece("".join(a[i1:i2]), "same"))
            theirs.append(Piece("".join(b[j1:j2]), "same"))
            continue
        if i2 > i1:
            ours.append(Piece("".join(a[i1:i2]), "gone"))
        if j2 > j1:
            theirs.append(Piece("".join(b[j1:j2]), "new"))
    return ours, theirs


def _message_text(message: dict[str, Any] | None) -> str:
    if message is None:
        return ""
    lines = [text_of(message.get("content"))]
    lines += [f"→ {call['name']}({call['arguments']})" for call in tool_calls_of(message)]
    return "\n".join(line for line in lines if line)


def _row(label: str, left: str, right: str) -> Row:
    ours, theirs = words_diff(left, right)
    return Row(label=label, left=ours, right=theirs, changed=left != right)


def _measure(value: Any) -> str:
    return "-" if value is None else str(value)


def diff_calls(left: Request, right: Request) -> list[Row]:
    """The rows of a side-by-side diff: messages by position, tools offered, the answer, then the numbers."""
    rows = []
    pairs = zip_longest(messages_of(left.openai_request), messages_of(right.openai_request))
    for number, (ours, theirs) in enumerate(pairs, start=1):
        role = (ours or theirs or {}).get("role", "?")
        rows.append(_row(f"message {number} ({role})", _message_text(ours), _message_text(theirs)))
    rows.append(_row("tools offered", _tools(left), _tools(right)))
    rows.append(_row("answer", _answer(left), _answer(right)))
    for label, pick in (
        ("model", lambda r: f"{r.provider}/{r.model}"),
        ("outcome", lambda r: r.response and f"{r.response.status} ({r.response.finish_reason or '-'})"),
        ("prompt tokens", lambda r: r.response and r.response.prompt_tokens),
        ("completion tokens", lambda r: r.response and r.response.completion_tokens),
        ("duration ms", lambda r: r.response and r.response.duration_ms),
        ("time to first token ms", lambda r: r.response and r.response.ttft_ms),
    ):
        rows.append(_row(label, _measure(pick(left)), _measure(pick(right))))
    return rows


def _tools(request: Request) -> str:
    tools = request.openai_request.get("tools") if isinstance(request.openai_request, dict) else None
    names = [  # chat's tools name their function; the Responses API's are named themselves
        str(tool.get("name") or (tool.get("function") or {}).get("name", "?")) for tool in tools
        if isinstance(tool, dict)
    ] if isinstance(tools, list) else []
    return ", ".join(names)


def _answer(request: Request) -> str:
    if request.response is None:
        return ""
    answer = answer_of(request.response.openai_response)
    if answer is None:
        return vectors_note(request.response.openai_response) or request.response.error or ""
    return _message_text(answer) or json.dumps(answer, ensure_ascii=False)
