"""Retries and fallbacks: one answer for the client out of as many upstream calls as it takes.

A call is tried again only when it failed before anything reached the client,
in a way another try may fix (``should_retry``): no connection, a timeout, 429
or 5xx. Each provider of the chain (the routed one, then the ``fallback_providers``)
gets one retry after a short backoff, or after the ``Retry-After`` it asked for
when that still fits in the request's time; then the next provider is tried.
Once a stream has begun reaching the client nothing is retried.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from app.errors import GatewayError, UpstreamCut, UpstreamHTTPError, UpstreamTimeout, UpstreamUnreachable
from app.models import now_ms
from app.providers.base import EventStream, Provider, StreamEvent
from app.providers.registry import Route
from app.services.audit.records import AttemptRecord

log = logging.getLogger(__name__)

TRIES_PER_PROVIDER = 2
BACKOFF_S = 0.2  # before a retry without Retry-After: 0.5x to 1.5x this

T = TypeVar("T")
_sleep = time.sleep  # cooperative under gevent; replaced in tests


def should_retry(error: GatewayError) -> bool:
    """Whether another try (here or at the next provider) may succeed where this one failed."""
    if isinstance(error, UpstreamUnreachable | UpstreamTimeout | UpstreamCut):
        return True
    return isinstance(error, UpstreamHTTPError) and (error.status == 429 or error.status >= 500)


def failure_reason(error: GatewayError) -> str | None:
    """Why an attempt failed when no status says it (the metrics' attempt result)."""
    if isinstance(error, UpstreamUnreachable):
        return "unreachable"
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    return "cut" if isinstance(error, UpstreamCut) else None


def retry_delay_s(error: GatewayError) -> float:
    """How long to wait before trying the same provider again: its Retry-After, else a short backoff."""
    asked = _retry_after_s(getattr(error, "retry_after", None))
    return asked if asked is not None else BACKOFF_S * (0.5 + random.random())


def _retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def call_with_fallbacks(
    routes: Sequence[Route],
    *,
    first_payload: dict[str, Any],
    build: Callable[[Route], dict[str, Any]],
    call: Callable[[Route, dict[str, Any]], T],
    deadline: float,
    attempts: list[AttemptRecord],
) -> tuple[Route, dict[str, Any], T]:
    """Call down ``routes`` until one answers; every call is appended to ``attempts``.

    Raises the last error when none answers, at once when an error is not
    worth retrying, and stops moving on once ``deadline`` (``time.monotonic``) has passed.
    """
    last_error: GatewayError | None = None
    for index, route in enumerate(routes):
        if index and time.monotonic() >= deadline:
            break
        try:
            payload = first_payload if index == 0 else build(route)  # pure: no I/O
        except GatewayError as exc:
            log.warning("fallback %s cannot take this request: %s", route.provider.name, exc.message)
            continue
        for tries in range(1, TRIES_PER_PROVIDER + 1):
            attempt = AttemptRecord(
                number=len(attempts) + 1, provider=route.provider.name, model=route.model, started_at=now_ms()
            )
            attempts.append(attempt)
            started = time.perf_counter()
            try:
                result = call(route, payload)
            except GatewayError as exc:
                attempt.duration_ms = int((time.perf_counter() - started) * 1000)
                attempt.status_code = exc.status if isinstance(exc, UpstreamHTTPError) else None
                attempt.error = exc.message
                attempt.reason = failure_reason(exc)
                last_error = exc
                if not should_retry(exc):
                    raise
                delay = retry_delay_s(exc)
                if tries == TRIES_PER_PROVIDER or time.monotonic() + delay >= deadline:
                    break  # no time to wait here: on to the next provider
                _sleep(delay)
                continue
            attempt.duration_ms = int((time.perf_counter() - started) * 1000)
            attempt.status_code = 200
            return route, payload, result
    assert last_error is not None  # the first route is always called
    raise last_error


def open_primed(provider: Provider, opener: Callable[[], EventStream]) -> EventStream:
    """Open a stream and read its first event, so a stream that dies before it can still be retried."""
    events = opener()
    batches = events.batches()
    try:
        first = next(batches)
    except StopIteration:
        events.close()
        raise UpstreamCut(f"Provider {provider.name!r} ended the stream before sending anything.") from None
    except BaseException:
        events.close()
        raise
    return _PrimedStream(events, first, batches)


class _PrimedStream(EventStream):
    def __init__(
        self, events: EventStream, first: Sequence[StreamEvent], rest: Iterator[Sequence[StreamEvent]]
    ) -> None:
        self._events, self._first, self._rest = events, first, rest

    def __iter__(self) -> Iterator[StreamEvent]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[Sequence[StreamEvent]]:
        yield self._first
        yield from self._rest

    def close(self) -> None:
        self._events.close()
