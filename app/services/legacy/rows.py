"""The original gateway's rows as this gateway's rows: every value kept, every oddity noted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.services.legacy.values import body, flag, integer, millis, string, text
from app.services.proxy.sessions import first_user_message

SOURCE_V1 = "node-v1"
SOURCE_V2 = "node-v2"
UNKNOWN_PROVIDER = "unknown"


@dataclass(slots=True, kw_only=True)
class Mapped:
    """One of our rows made from an original row, with what could not be taken as it was."""

    row: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    session_ref: str | None = None
    request_ref: Any = None


def status_of(*, error: str | None, status_code: int | None, finish_reason: str | None) -> str:
    """The original never stored an outcome: an error text, an HTTP error or finish 'error' mean error."""
    if error or (status_code is not None and status_code >= 400) or finish_reason == "error":
        return "error"
    return "ok"


@dataclass(slots=True, kw_only=True)
class V1Call:
    """A request_logs row as a session, a request and a response: v1 had no sessions."""

    session: dict[str, Any]
    request: dict[str, Any]
    response: dict[str, Any]
    problems: list[str]


def v1_call(src: dict[str, Any]) -> V1Call:
    problems: list[str] = []
    legacy = {"legacy_source": SOURCE_V1, "legacy_id": _legacy_id(src, "request_id", problems)}
    stamp = millis(src.get("created_at"), name="created_at", problems=problems, seconds=True)
    request_text, request_json = body(src.get("request_body"), name="request_body", problems=problems)
    response_text, response_json = body(src.get("response_body"), name="response_body", problems=problems)
    sent = request_json if isinstance(request_json, dict) else {}
    answer = response_json if isinstance(response_json, dict) else {}
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    error = text(src.get("error"), name="error", problems=problems)
    status_code = integer(src.get("status_code"), name="status_code", problems=problems)
    finish_reason = string(_finish_reason(answer), name="finish_reason", problems=problems, size=32)
    session = {
        **legacy, "chat_id": None, "parent_id": None,
        "first_user_message": _first_message(sent), "message_count": 1,
        # A one-call history: expired at once (nothing to continue), retained for ever.
        "created_at": stamp, "last_accessed": stamp, "expires_at": stamp, "retained": True,
    }
    request = {
        **legacy, "timestamp": stamp, "created_at": stamp,
        "method": string(src.get("method"), name="method", problems=problems, size=8, required=True),
        "path": string(src.get("endpoint"), name="endpoint", problems=problems, size=255, required=True),
        "openai_request": request_text, "provider_request": None,
        "provider": string(src.get("provider"), name="provider", problems=problems, size=64,
                           required=True, default=UNKNOWN_PROVIDER),
        "model": _model(sent, problems), "stream": sent.get("stream") is True,
    }
    response = {
        **legacy, "timestamp": stamp, "created_at": stamp,
        "provider_response": None, "openai_response": response_text, "parent_id": None,
        **_tokens(usage, problems, prefix="usage."),
        "usage_estimated": False, "finish_reason": finish_reason,
        "status": status_of(error=error, status_code=status_code, finish_reason=finish_reason),
        "status_code": status_code, "error": error,
        "duration_ms": integer(src.get("duration_ms"), name="duration_ms", problems=problems),
        "ttft_ms": None, "client_disconnected": False,
    }
    return V1Call(session=session, request=request, response=response, problems=problems)


def v2_session(src: dict[str, Any]) -> Mapped:
    problems: list[str] = []
    created = millis(src.get("created_at"), name="created_at", problems=problems, seconds=False)
    row = {
        "legacy_source": SOURCE_V2, "legacy_id": _legacy_id(src, "id", problems),
        "chat_id": string(src.get("chat_id"), name="chat_id", problems=problems, size=128),
        "parent_id": string(src.get("parent_id"), name="parent_id", problems=problems, size=128),
        "first_user_message": text(src.get("first_user_message"), name="first_user_message",
                                   problems=problems),
        "message_count": integer(src.get("message_count"), name="message_count", problems=problems) or 0,
        "created_at": created,
        "last_accessed": millis(src.get("last_accessed", created), name="last_accessed",
                                problems=problems, seconds=False),
        "expires_at": millis(src.get("expires_at", created), name="expires_at",
                             problems=problems, seconds=False),
        "retained": True,
    }
    return Mapped(row=row, problems=problems)


def v2_request(src: dict[str, Any]) -> Mapped:
    problems: list[str] = []
    openai_text, openai_json = body(src.get("openai_request"), name="openai_request", problems=problems)
    # The column was renamed between versions of the original: take whichever holds the value.
    provider_text, provider_json = body(
        _either(src, "provider_request", "qwen_request"), name="qwen_request", problems=problems
    )
    sent = openai_json if isinstance(openai_json, dict) else {}
    model = string(src.get("model"), name="model", problems=problems, size=255)
    row = {
        "legacy_source": SOURCE_V2, "legacy_id": _legacy_id(src, "request_id", problems),
        "timestamp": millis(src.get("timestamp"), name="timestamp", problems=problems, seconds=False),
        "method": string(src.get("method"), name="method", problems=problems, size=8, required=True),
        "path": string(src.get("path"), name="path", problems=problems, size=255, required=True),
        "openai_request": openai_text, "provider_request": provider_text,
        "provider": _v2_provider(src, provider_json, problems),
        "model": model if model is not None else _model(sent, problems),
        "stream": flag(src.get("stream")),
        "created_at": millis(src.get("created_at"), name="created_at", problems=problems, seconds=False),
    }
    return Mapped(row=row, problems=problems, session_ref=_ref(src.get("session_id")))


def v2_response(src: dict[str, Any]) -> Mapped:
    problems: list[str] = []
    provider_text, _ = body(
        _either(src, "provider_response", "qwen_response"), name="qwen_response", problems=problems
    )
    openai_text, _ = body(src.get("openai_response"), name="openai_response", problems=problems)
    error = text(src.get("error"), name="error", problems=problems)
    status_code = integer(src.get("status_code"), name="status_code", problems=problems)
    finish_reason = string(src.get("finish_reason"), name="finish_reason", problems=problems, size=32)
    row = {
        "legacy_source": SOURCE_V2, "legacy_id": _legacy_id(src, "response_id", problems),
        "timestamp": millis(src.get("timestamp"), name="timestamp", problems=problems, seconds=False),
        "provider_response": provider_text, "openai_response": openai_text,
        "parent_id": string(src.get("parent_id"), name="parent_id", problems=problems, size=128),
        **_tokens(src, problems),
        "usage_estimated": False, "finish_reason": finish_reason,
        "status": status_of(error=error, status_code=status_code, finish_reason=finish_reason),
        "status_code": status_code, "error": error,
        "duration_ms": integer(src.get("duration_ms"), name="duration_ms", problems=problems),
        "ttft_ms": integer(src.get("ttft_ms"), name="ttft_ms", problems=problems),
        "client_disconnected": flag(src.get("client_disconnected")),
        "created_at": millis(src.get("created_at"), name="created_at", problems=problems, seconds=False),
    }
    return Mapped(row=row, problems=problems, session_ref=_ref(src.get("session_id")),
                  request_ref=src.get("request_id"))


def _tokens(values: dict[str, Any], problems: list[str], *, prefix: str = "") -> dict[str, int | None]:
    # NULL stays NULL (unknown) and 0 stays 0: the original conflated them, we do not.
    return {
        key: integer(values.get(key), name=prefix + key, problems=problems)
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    }


def _either(src: dict[str, Any], first: str, second: str) -> Any:
    value = src.get(first)
    return value if value is not None else src.get(second)


def _legacy_id(src: dict[str, Any], key: str, problems: list[str]) -> str:
    """The original's own unique key; its rowid (stable in that file) when the key is missing."""
    value = text(src.get(key), name=key, problems=problems)
    if value:
        return value
    problems.append(f"{key} missing; identified by rowid {src['_rowid']}")
    return f"rowid:{src['_rowid']}"


def _ref(value: Any) -> str | None:
    return None if value is None else str(value)


def _model(sent: dict[str, Any], problems: list[str]) -> str:
    """The model the client asked for; empty for calls that name none (GET /v1/models)."""
    model = sent.get("model")
    if not isinstance(model, str):
        return ""
    return string(model, name="model", problems=problems, size=255) or ""


def _first_message(sent: dict[str, Any]) -> str | None:
    return first_user_message(sent) if isinstance(sent.get("messages"), list) else None


def _finish_reason(answer: dict[str, Any]) -> str | None:
    choices = answer.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        return reason if isinstance(reason, str) else None
    return None


def _v2_provider(src: dict[str, Any], provider_json: Any, problems: list[str]) -> str:
    """v2 dropped the provider column; a Qwen web-API request body still says who served it."""
    named = string(src.get("provider"), name="provider", problems=problems, size=64)
    if named:
        return named
    if isinstance(provider_json, dict) and {"chat_mode", "incremental_output"} <= provider_json.keys():
        return "qwen"
    return UNKNOWN_PROVIDER
