"""How a call ended, told once to what watches the gateway: the Prometheus series and the per-call log line.

(Its OpenTelemetry span is ended by the chat service, which holds it: ``tracing``.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from app.services.audit.records import Outcome
from app.services.telemetry.labels import ModelNames, endpoint_label

call_log = logging.getLogger("app.calls")
ATTEMPT_REASONS = frozenset({"unreachable", "timeout", "cut"})
MODEL_LOGGED = 200


@dataclass(slots=True, frozen=True)
class AttemptEnd:
    provider: str
    result: str  # attempt_result()


@dataclass(slots=True, kw_only=True)
class CallEnd:
    """A finished call with bounded label values (``endpoint``, ``provider``, ``model``)."""

    endpoint: str
    provider: str
    model: str
    outcome: str
    duration_s: float
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_estimated: bool = False
    attempts: list[AttemptEnd] = field(default_factory=list)


class NoMetrics:
    """METRICS=false: every update is a no-op."""

    def __getattr__(self, name: str) -> Any:
        return _nothing


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


NO_METRICS = NoMetrics()


class Telemetry:
    """One per process: told when a call starts and how it ended (``AuditLog.close`` or, without
    persistence, ``ChatService``); passes it on to the metrics and the per-call log line."""

    def __init__(self, *, metrics: Any = None, names: ModelNames | None = None, log_calls: bool = False) -> None:
        self.metrics = metrics
        self.sink = metrics if metrics is not None else NO_METRICS  # for the audit trail's counters
        self.names = names or ModelNames(None)
        self.log_calls = log_calls

    @classmethod
    def off(cls) -> Telemetry:
        return cls()

    def started(self, path: str) -> None:
        if self.metrics is not None:
            self.metrics.call_started(endpoint_label(path))

    def ended(
        self, *, request_id: str | None, session_id: str | None, path: str, provider: str, model: str,
        outcome: Outcome, duration_s: float, stream: bool,
    ) -> None:
        if self.metrics is None and not self.log_calls:
            return
        last = outcome.attempts[-1] if outcome.attempts else None
        answered_by = outcome.provider or provider
        end = CallEnd(
            endpoint=endpoint_label(path), provider=self.names.provider_label(answered_by),
            model=self.names.label(answered_by, last.model if last else model), outcome=outcome.status,
            duration_s=duration_s, ttft_s=None if outcome.ttft_ms is None else outcome.ttft_ms / 1000,
            prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
            tokens_estimated=outcome.usage_estimated,
            attempts=[AttemptEnd(self.names.provider_label(a.provider), attempt_result(a.status_code, a.reason))
                      for a in outcome.attempts],
        )
        if self.metrics is not None:
            self.metrics.call_ended(end)
        if self.log_calls:
            call_log.info("call %s %s", end.endpoint, outcome.status, extra={"call": {
                "request_id": request_id, "session_id": session_id, "endpoint": end.endpoint,
                "provider": answered_by, "model": (last.model if last else model)[:MODEL_LOGGED], "stream": stream,
                "outcome": outcome.status, "status": outcome.status_code,
                "duration_ms": round(duration_s * 1000, 1), "ttft_ms": outcome.ttft_ms,
                "prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
                "tokens_estimated": outcome.usage_estimated, "attempts": len(outcome.attempts),
            }})

    def interrupted(self, *, path: str | None, provider: str | None, model: str | None) -> None:
        """A call of a dead process, ended by the sweep (its in-flight count died with the process)."""
        if self.metrics is not None:
            self.metrics.call_interrupted(endpoint=endpoint_label(path), provider=self.names.provider_label(provider),
                                          model=self.names.label(provider, model))


def attempt_result(status_code: int | None, reason: str | None) -> str:
    """An attempt's bounded result: ``ok``, an HTTP class, or why it failed without one."""
    if status_code is not None and status_code < 400:
        return "ok"
    if status_code == 429:
        return "http_429"
    if status_code is not None:
        return "http_5xx" if status_code >= 500 else "http_4xx"
    return reason if reason in ATTEMPT_REASONS else "error"
