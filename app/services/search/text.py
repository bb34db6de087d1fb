"""The text of a call as people read it: message contents, tool calls and the answer, not the JSON around them."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from typing import Any

# A call's indexed text stops here: a pasted file or a giant system prompt must not make one
# row of the index megabytes long (the first 200,000 characters still find it).
MAX_DOC_CHARS = 200_000


def text_of(content: Any) -> str:
    """A message's content as text: a string, or the text of its parts joined."""
    if isinstance(content, list):
        return " ".join(
            str(part.get("text") or part.get("content") or "") for part in content if isinstance(part, dict)
        )
    return "" if content is None else str(content)


def messages_of(body: Any) -> list[dict[str, Any]]:
    """The messages of a client's chat request body (an empty list for anything else)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def answer_of(body: Any) -> dict[str, Any] | None:
    """The assistant message of a chat completion body (the first choice), if it has one."""
    try:
        choice = body["choices"][0]
        message = choice.get("message") or choice.get("delta")
    except (TypeError, KeyError, IndexError, AttributeError):
        return None
    return message if isinstance(message, dict) else None


def last_user_text(request_body: Any) -> str | None:
    users = [m for m in messages_of(request_body) if m.get("role") == "user"]
    return text_of(users[-1].get("content")) if users else None


def reply_text(response_body: Any) -> str | None:
    answer = answer_of(response_body)
    return None if answer is None else text_of(answer.get("content"))


def tool_calls_of(message: dict[str, Any]) -> list[dict[str, str]]:
    """``[{id, name, arguments}]`` of a message's tool calls, arguments as text."""
    calls = message.get("tool_calls")
    found = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = "" if arguments is None else json.dumps(arguments, ensure_ascii=False)
        found.append({"id": str(call.get("id") or ""), "name": str(function.get("name") or ""),
                      "arguments": arguments})
    return found


def _pieces(request_body: Any, response_body: Any) -> Iterator[str]:
    answer = answer_of(response_body)
    for message in [*messages_of(request_body), *([answer] if answer else [])]:
        yield text_of(message.get("content"))
        for call in tool_calls_of(message):
            yield call["name"]
            yield call["arguments"]


def fold(text: str) -> str:
    """What both the index and a query compare: NFKC form, case-folded (any script, ß = ss)."""
    return unicodedata.normalize("NFKC", text).casefold()


def document(request_body: Any, response_body: Any) -> str:
    """The searchable text of one call: every message, tool call and the answer, one per line."""
    text = "\n".join(piece for piece in _pieces(request_body, response_body) if piece)
    return fold(text[:MAX_DOC_CHARS]).replace("\x00", "")
