"""The Responses API over chat completions, for providers that speak only chat (Qwen, chat-only servers).

A request's ``instructions`` and input items become chat messages (function calls and their
outputs included), function tools become chat tools; the chat answer becomes a Response object,
and a chat stream becomes the Responses events the official SDK expects. Built-in tools (web
search, file search, ...) and item references have no chat equivalent: they are refused by name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from app.errors import InvalidRequest
from app.models.base import uuid7

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_PASSED = ("temperature", "top_p", "user", "parallel_tool_calls", "stream", "seed", "service_tier")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id() -> str:
    """An id in OpenAI's form, minted by the gateway (36 characters, time-ordered)."""
    return "resp_" + uuid7().replace("-", "")[:31]


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A request's own ``input`` as a list of items (a string is one user message)."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []


def to_chat(body: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat request for a Responses request whose earlier turns are already in ``items``."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    messages += items_to_messages(items)
    chat: dict[str, Any] = {"messages": messages}
    for key in _PASSED:
        if key in body:
            chat[key] = body[key]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = [_tool(tool, index) for index, tool in enumerate(body["tools"])]
    if "tool_choice" in body:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    text_format = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(text_format, dict) and text_format.get("type") == "json_schema":
        schema = {key: text_format[key] for key in ("name", "schema", "strict", "description") if key in text_format}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(text_format, dict) and text_format.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    return chat


def items_to_messages(items: list[dict[str, Any]], *, lenient: bool = False) -> list[dict[str, Any]]:
    """Input (and earlier output) items as chat messages: calls join the assistant turn they follow.

    ``lenient`` reads a recorded call, whose items a native provider may have taken as they were:
    roles and content are kept as sent, items with no chat form left out, nothing refused.
    """
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "message":
            role = _ROLES.get(item["role"]) if isinstance(item.get("role"), str) else None
            if role is None and not lenient:
                raise _unsupported(f"input[{index}].role", f"role {item.get('role')!r}")
            content = item.get("content") if lenient else _content(item.get("content"), f"input[{index}].content")
            messages.append({"role": role or str(item.get("role") or "?"), "content": content})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant" and not last.get("tool_call_id"):
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) or lenient else _content(output, f"input[{index}].output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind != "reasoning" and not lenient:  # reasoning items have no chat form: left out
            raise _unsupported(f"input[{index}].type", f"{kind!r} items")
    return messages


def from_chat(chat: dict[str, Any], *, request: dict[str, Any], response: str) -> dict[str, Any]:
    """A chat.completion as the Response object of ``request``."""
    choices = chat.get("choices") if isinstance(chat.get("choices"), list) else []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    items = output_items(message.get("content"), message.get("tool_calls") or [])
    return response_object(request, response, model=chat.get("model") or request.get("model"),
                           items=items, finish_reason=choice.get("finish_reason"), usage=chat.get("usage"))


def output_items(text: Any, tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = []
    if (isinstance(text, str) and text) or not tool_calls:
        items.append(message_item(text if isinstance(text, str) else "", status="completed"))
    for call in tool_calls:
        function = call.get("function") or {}
        items.append(function_item(call.get("id"), function.get("name"), function.get("arguments") or ""))
    return items


def message_item(text: str, *, status: str, item_id: str | None = None) -> dict[str, Any]:
    return {"type": "message", "id": item_id or _item_id("msg"), "status": status, "role": "assistant",
            "content": [] if status == "in_progress" else [text_part(text)]}


def function_item(call_id: str | None, name: str | None, arguments: str, *, item_id: str | None = None,
                  status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id or _item_id("fc"), "call_id": call_id or _item_id("call"),
            "name": name or "", "arguments": arguments, "status": status}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_object(
    request: dict[str, Any], response: str, *, model: str | None, items: list[dict[str, Any]],
    finish_reason: str | None, usage: Any, status: str = "completed", created: int | None = None,
) -> dict[str, Any]:
    """A Response object with every field the official SDK requires."""
    incomplete = status == "completed" and finish_reason in _INCOMPLETE
    return {
        "id": response, "object": "response", "created_at": created or int(time.time()),
        "status": "incomplete" if incomplete else status, "model": model or "",
        "output": items, "parallel_tool_calls": bool(request.get("parallel_tool_calls", True)),
        "tool_choice": request.get("tool_choice", "auto"), "tools": request.get("tools") or [],
        "instructions": request.get("instructions"), "metadata": request.get("metadata") or {},
        "temperature": request.get("temperature"), "top_p": request.get("top_p"),
        "max_output_tokens": request.get("max_output_tokens"),
        "text": request.get("text") or {"format": {"type": "text"}},
        "truncation": request.get("truncation", "disabled"),
        "previous_response_id": request.get("previous_response_id"), "error": None,
        "incomplete_details": {"reason": _INCOMPLETE[finish_reason]} if incomplete else None,
        "usage": responses_usage(usage) if status == "completed" else None,
    }


def responses_usage(usage: Any) -> dict[str, Any] | None:
    """Chat usage as the Responses API counts it."""
    if not isinstance(usage, dict) or not isinstance(usage.get("prompt_tokens"), int):
        return None
    prompt, completion = usage["prompt_tokens"], usage.get("completion_tokens") or 0
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": usage.get("total_tokens")
            if isinstance(usage.get("total_tokens"), int) else prompt + completion}


def item_messages_back(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Output items as the input items that continue a conversation (``previous_response_id``)."""
    for item in items:
        if item.get("type") == "message":
            yield {"type": "message", "role": item.get("role", "assistant"),
                   "content": _output_text(item.get("content"))}
        elif item.get("type") == "function_call":
            yield {"type": "function_call", "call_id": item.get("call_id"), "name": item.get("name"),
                   "arguments": item.get("arguments", "")}


def _output_text(content: Any) -> str:
    """An output message's text: its parts' text joined (a recorded answer may hold a string, or nothing)."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else ()
    return "".join(str(part.get("text") or "") for part in parts if isinstance(part, dict))


def _content(content: Any, param: str) -> Any:
    """Input content as chat content: text parts joined into a string, images as image parts."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid '{param}': must be a string or a list of content parts.", param=param,
                             code="invalid_value")
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal"):
            parts.append({"type": "text", "text": part.get("text") or part.get("refusal") or ""})
        elif kind == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"],
                                                             "detail": part.get("detail", "auto")}})
        else:
            raise _unsupported(f"{param}[{index}].type", f"{kind!r} content")
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _tool(tool: Any, index: int) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else tool
        raise _unsupported(f"tools[{index}].type", f"{kind!r} tools")
    function = {key: tool[key] for key in ("name", "description", "parameters", "strict") if key in tool}
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def _unsupported(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{param}': {what} are not supported by a provider that speaks only chat completions.",
        param=param, code="unsupported_value",
    )


def _item_id(prefix: str) -> str:
    return f"{prefix}_{uuid7().replace('-', '')[:24]}"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
