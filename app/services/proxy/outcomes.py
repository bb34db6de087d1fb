"""What the record keeps of how a call ended: a whole answer's outcome or a stream's, with its usage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.errors import GatewayError, StreamEnded, UpstreamCut, UpstreamTimeout
from app.providers.base import Completion
from app.providers.tokens import estimate_text_tokens
from app.services.audit.records import Outcome
from app.services.proxy import endpoints
from app.services.proxy.endpoints import Call


def completion_outcome(
    call: Call, request_body: dict[str, Any], completion: Completion, status_code: int, *, store_vectors: bool
) -> Outcome:
    """A whole answer's outcome: what the response row keeps of it, its usage (estimated when none came)."""
    body = completion.body
    finish_reason, usage, text = endpoints.answer_facts(call, body)
    stored = completion.text if call.endpoint == "chat" and completion.text else endpoints.stored_answer(
        call, body, store_vectors=store_vectors)
    outcome = Outcome(
        status="ok", status_code=status_code, openai_response=stored, provider_response=completion.raw,
        finish_reason=finish_reason, parent_id=completion.parent_id, chat_id=completion.chat_id,
    )
    set_usage(outcome, usage, lambda: endpoints.prompt_tokens(call, request_body), text)
    return outcome

def stream_outcome(
    call: Call, request_body: dict[str, Any], *, capture: Any, error: GatewayError | None, client_gone: bool
) -> Outcome:
    """How a relayed stream ended: ok, incomplete (cut, timed out, ended, the client gone) or error."""
    outcome = Outcome(
        status="ok", status_code=200, openai_response=capture.body(),
        finish_reason=capture.finish_reason, ttft_ms=capture.ttft_ms,
        parent_id=capture.parent_id, chat_id=capture.chat_id,
    )
    if client_gone:
        outcome.status, outcome.client_disconnected = "incomplete", True
        outcome.error = "The client disconnected before the stream ended."
    elif isinstance(error, UpstreamCut | UpstreamTimeout | StreamEnded):
        outcome.status, outcome.error = "incomplete", error.message
    elif error is not None:
        outcome.status, outcome.error = "error", error.message
    elif capture.error is not None:
        outcome.status, outcome.error = "error", error_text({"error": capture.error})
    set_usage(outcome, capture.usage, lambda: endpoints.prompt_tokens(call, request_body),
               "".join(capture.content))
    if capture.tool_calls and outcome.usage_estimated:
        outcome.completion_tokens += sum(
            estimate_text_tokens(call["function"]["arguments"]) for call in capture.tool_calls.values()
        )
        outcome.total_tokens = outcome.prompt_tokens + outcome.completion_tokens
    return outcome


def set_usage(outcome: Outcome, usage: Any, prompt_tokens: Callable[[], int], content: str) -> None:
    """Token counts as reported; estimated (and flagged) when the upstream sent none."""
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        outcome.prompt_tokens = usage["prompt_tokens"]
        outcome.completion_tokens = usage.get("completion_tokens") or 0
        outcome.total_tokens = usage.get("total_tokens")
        if not isinstance(outcome.total_tokens, int):
            outcome.total_tokens = outcome.prompt_tokens + outcome.completion_tokens
        return
    outcome.usage_estimated = True
    outcome.prompt_tokens = prompt_tokens()
    outcome.completion_tokens = estimate_text_tokens(content)
    outcome.total_tokens = outcome.prompt_tokens + outcome.completion_tokens


def error_text(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error is not None:
            return str(error)
    return None if body is None else str(body)[:2000]
