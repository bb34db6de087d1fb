"""/ui/calls/<id>: one call read as a conversation, its raw JSON, a curl to replay it; /ui/diff: two side by side."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import redirect, render_template, request, url_for

from app.api.rest import db
from app.api.ui.blueprint import bp
from app.errors import InvalidRequest
from app.services.history import calls as call_views
from app.services.history.diff import diff_calls
from app.services.history.records import get_request, resolve_request_id
from app.services.search.text import answer_of, messages_of, text_of, tool_calls_of

FOLD_CHARS = 600  # system prompts longer than this start folded
_SECRET_KEY = re.compile(r"key|token|secret|password|authorization|cookie", re.IGNORECASE)


def curl_command(body: Any, base_url: str) -> str:
    """A shell command that sends the client's request again, through this gateway; never a secret.

    The body goes in a quoted here-document (no shell expansion) on one line; keys that look like
    credentials are dropped. The gateway holds the provider keys: none is needed here.
    """
    if isinstance(body, dict):
        body = {key: value for key, value in body.items() if not _SECRET_KEY.search(key)}
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return (
        f"curl -sS {base_url.rstrip('/')}/v1/chat/completions -H 'Content-Type: application/json' "
        f"--data-binary @- <<'JSON'\n{text}\nJSON"
    )


def _card(message: dict[str, Any]) -> dict[str, Any]:
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
    answer = answer_of(found.response.openai_response) if found.response is not None else None
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    return render_template(
        "ui/call.html", call=found, response=found.response, attempts=attempts,
        cards=[_card(m) for m in messages_of(body)], answer=_card(answer) if answer else None, tools=tools,
        around=call_views.neighbours(db(), found), curl=curl_command(found.openai_request, request.host_url),
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
