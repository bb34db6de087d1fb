"""/ui/calls/<id>: one call read as a conversation, its raw JSON, a curl to replay it; /ui/diff: two side by side."""

from __future__ import annotations

import json
from typing import Any

from flask import redirect, render_template, request, url_for

from app.api.rest import db
from app.api.ui.blueprint import bp
from app.errors import InvalidRequest
from app.services.history import calls as call_views
from app.services.history.diff import diff_calls
from app.services.history.records import get_request, resolve_request_id
from app.services.search.text import answer_of, messages_of, text_of, tool_calls_of, vectors_note

FOLD_CHARS = 600  # system prompts longer than this start folded
# Request fields that hold a credential, by name (any case, "-" as "_"), at any depth. A name that
# merely holds "key" or "token" in the middle or in the plural (max_tokens) is a parameter of the call.
_SECRET_FIELDS = frozenset({"key", "token", "cookie", "passwd", "bearer"})
_SECRET_ENDINGS = ("_key", "apikey", "_token", "_secret", "_password", "_credential", "_credentials")
_SECRET_PARTS = ("secret", "password", "authorization", "credential", "api_key", "apikey")
_PARAMETERS = frozenset({"prompt_cache_key"})  # OpenAI request parameters whose names look like credentials


def _secret(name: Any) -> bool:
    name = str(name).lower().replace("-", "_")
    if name in _PARAMETERS:
        return False
    return name in _SECRET_FIELDS or name.endswith(_SECRET_ENDINGS) or any(part in name for part in _SECRET_PARTS)


def _without_secrets(value: Any) -> Any:
    """``value`` with every credential field dropped, in nested objects and lists too.

    A JSON Schema's ``properties`` (a tool's parameters, a response format: beside ``"type":
    "object"``) name fields, they hold no values: kept whole.
    """
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    if not isinstance(value, dict):
        return value
    schema = value.get("type") == "object"
    return {
        key: item if key == "properties" and schema else _without_secrets(item)
        for key, item in value.items() if not _secret(key)
    }


def curl_command(body: Any, base_url: str, path: str) -> str:
    """A shell command that sends the client's request again to ``path``, through this gateway; never a secret.

    The body goes in a quoted here-document (no shell expansion) on one line, without the fields
    that hold credentials. The gateway key is the shell's ``$OPENAI_API_KEY``, never a value.
    """
    text = json.dumps(_without_secrets(body), ensure_ascii=False, separators=(",", ":"))
    return (
        f"curl -sS {base_url.rstrip('/')}{path or '/v1/chat/completions'} -H 'Content-Type: application/json' "
        f"-H \"Authorization: Bearer $OPENAI_API_KEY\" --data-binary @- <<'JSON'\n{text}\nJSON"
    )


def card(message: dict[str, Any]) -> dict[str, Any]:
    """A message as the pages show it: role, text, name, the call it answers, its tool calls, folded or not."""
    text = text_of(message.get("content"))
    role = str(message.get("role") or "?")
    return {
        "role": role, "text": text, "name": message.get("name"), "tool_call_id": message.get("tool_call_id"),
        "tool_calls": tool_calls_of(message), "folded": role in ("system", "developer") and len(text) > FOLD_CHARS,
    }


def _record_id(text: str):
    try:
        return resolve_request_id(db(), text)
    except Exception:  # noqa: BLE001 - NotFound or a malformed id: one message
        raise InvalidRequest(f"No call {text!r}: give its id or request UUID.", param="id", code="invalid_id") from None


@bp.get("/calls/<call_id>")
def call(call_id: str):
    found, attempts = call_views.call_with_attempts(db(), _record_id(call_id))
    body = found.openai_request if isinstance(found.openai_request, dict) else {}
    answered = found.response.openai_response if found.response is not None else None
    answer = answer_of(answered)
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    return render_template(
        "ui/call.html", call=found, response=found.response, attempts=attempts,
        cards=[card(m) for m in messages_of(body)], answer=card(answer) if answer else None,
        vectors=vectors_note(answered), tools=tools, around=call_views.neighbours(db(), found),
        curl=curl_command(found.openai_request, request.host_url, found.path),
    )


@bp.get("/diff")
def diff():
    """Two calls side by side; ``b`` missing: the form asks for it."""
    left_id, right_id = request.args.get("a", "").strip(), request.args.get("b", "").strip()
    if not left_id:
        return redirect(url_for("ui.calls"))
    left = get_request(db(), _record_id(left_id))
    right = get_request(db(), _record_id(right_id)) if right_id else None
    rows = diff_calls(left, right) if right is not None else []
    return render_template("ui/diff.html", left=left, right=right, rows=rows)
