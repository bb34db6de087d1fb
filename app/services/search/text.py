"""The text of a call as people read it: message contents, tool calls and the answer, not the JSON around them."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from typing import Any

from app.services.proxy.translate_responses import input_items, item_messages_back, items_to_messages

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
    """The conversation a client's request body holds, as chat messages, whatever its endpoint.

    Chat's ``messages``; legacy completions' prompts and embeddings' inputs as user turns (token
    arrays hold no text); the Responses API's instructions as a system turn, then its input items.
    The body's own fields tell its endpoint, so imported history reads the same.
    """
    if not isinstance(body, dict):
        return []
    messages = body.get("messages")
    if isinstance(messages, list):
        return [m for m in messages if isinstance(m, dict)]
    if "prompt" in body:
        return _user_turns(body["prompt"])
    raw = body.get("input")
    if "instructions" not in body and not (isinstance(raw, list) and any(isinstance(item, dict) for item in raw)):
        return _user_turns(raw)  # embeddings, or a Responses input that is one string (the same turn)
    system = [{"role": "system", "content": body["instructions"]}] if body.get("instructions") else []
    return system + items_to_messages(input_items(body), lenient=True)


def _user_turns(value: Any) -> list[dict[str, Any]]:
    texts = [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] if isinstance(
        value, list) else []
    return [{"role": "user", "content": text} for text in texts]


def answer_of(body: Any) -> dict[str, Any] | None:
    """The answer of a response body as an assistant message, if it has one.

    Chat's first choice, legacy completions' text, the Responses API's output (its messages'
    text and its function calls as tool calls); embeddings have none (see ``vectors_note``).
    """
    if isinstance(body, dict) and isinstance(body.get("output"), list):
        return _output_message([item for item in body["output"] if isinstance(item, dict)])
    try:
        choice = body["choices"][0]
        message = choice.get("message") or choice.get("delta")
        if message is None and isinstance(choice.get("text"), str):
            message = {"role": "assistant", "content": choice["text"]}
    except (TypeError, KeyError, IndexError, AttributeError):
        return None
    return message if isinstance(message, dict) else None


def _output_message(output: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A Response's output items as one assistant message (reasoning left out)."""
    messages = items_to_messages(list(item_messages_back(output)), lenient=True)
    if not messages:
        return None
    return {"role": "assistant", "content": "\n".join(text_of(m.get("content")) for m in messages if m.get("content")),
            "tool_calls": [call for m in messages for call in m.get("tool_calls") or ()]}


def vectors_of(body: Any) -> tuple[int, int | None] | None:
    """How many vectors an embeddings answer held and their dimensions; None for any other answer.

    The record keeps this count unless STORE_EMBEDDING_VECTORS, else the vectors themselves
    (base64 ones have no dimensions to count here).
    """
    if not isinstance(body, dict):
        return None
    summary = body.get("embeddings")
    if isinstance(summary, dict):
        count, dimensions = summary.get("count"), summary.get("dimensions")
        return (count if isinstance(count, int) else 0), (dimensions if isinstance(dimensions, int) else None)
    if not isinstance(body.get("data"), list):
        return None
    data = [item for item in body["data"] if isinstance(item, dict)]
    vector = data[0].get("embedding") if data else None
    return len(data), len(vector) if isinstance(vector, list) else None


def vectors_note(body: Any) -> str | None:
    """An embeddings answer in words ("2 vectors of 1536 dimensions"), shown where an answer would be."""
    vectors = vectors_of(body)
    if vectors is None:
        return None
    count, dimensions = vectors
    note = f"{count} vector{'' if count == 1 else 's'}"
    return note if dimensions is None else f"{note} of {dimensions} dimensions"


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
