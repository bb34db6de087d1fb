"""The Prometheus series (``/metrics``): calls, tokens, latency, upstream attempts, providers, the audit trail.

Under gunicorn every worker writes its values to memory-mapped files in
PROMETHEUS_MULTIPROC_DIR (set, created and emptied by gunicorn.conf.py before the
workers fork); a scrape sums the files of every worker, living or dead, so a
recycled worker's counts stay. Label values are bounded (``labels``).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from app.services.telemetry.calls import CallEnd

PREFIX = "provider_router_"
# LLM calls take from tens of milliseconds (an embedding) to minutes (a long stream).
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """Every series of the gateway, written by the hot path and the background loops of one process."""

    def __init__(self) -> None:
        disable_created_metrics()  # as in multiprocess mode: no *_created series
        if multiprocess_dir() is not None:  # gunicorn's master made it; a process started otherwise may not have
            os.makedirs(multiprocess_dir(), exist_ok=True)
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(PREFIX + name, doc, labels, registry=reg)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = (), *, mode: str) -> Gauge:
            return Gauge(PREFIX + name, doc, labels, registry=reg, multiprocess_mode=mode)

        call_labels = ("endpoint", "provider", "model")
        self.calls = counter("calls", "Model calls by how they ended (ok, error, incomplete, interrupted).",
                             (*call_labels, "outcome"))
        self.tokens = counter("tokens", "Tokens by type (prompt, completion); estimated=true when the upstream "
                              "reported none and the gateway counted them.", ("provider", "model", "type", "estimated"))
        self.duration = Histogram(PREFIX + "call_duration_seconds", "A call from its request to its last byte.",
                                  call_labels, buckets=CALL_BUCKETS, registry=reg)
        self.ttft = Histogram(PREFIX + "time_to_first_token_seconds", "Streams: from the request to the first "
                              "content token.", call_labels, buckets=CALL_BUCKETS, registry=reg)
        self.in_flight = gauge("calls_in_flight", "Calls started and not yet ended.", ("endpoint",), mode="livesum")
        self.streams = gauge("streams_open", "Streams being relayed to clients.", mode="livesum")
        self.attempts = counter("upstream_attempts", "Upstream calls by provider and result (ok, unreachable, "
                                "timeout, cut, http_429, http_4xx, http_5xx, error).", ("provider", "result"))
        self.retries = counter("upstream_retries", "Calls tried again at the same provider, by why.",
                               ("provider", "reason"))
        self.fallbacks = counter("upstream_fallbacks", "Calls moved on to a fallback provider, by why "
                                 "(provider: the one moved to).", ("provider", "reason"))
        self.provider_up = gauge("provider_up", "1 when the provider answered its last probe.", ("provider",),
                                 mode="mostrecent")
        self.provider_latency = gauge("provider_probe_seconds", "How long the provider's last probe took.",
                                      ("provider",), mode="mostrecent")
        self.records_written = counter("audit_records_written", "Audit records (a call's request, or its ending) "
                                       "committed to the database by the hot path.")
        self.journaled = counter("audit_journaled", "Audit records kept in the journal (the database could not "
                                 "take them).")
        self.replayed = counter("audit_replayed", "Journal records written to the database later.")
        self.dead_letters = counter("audit_dead_letters", "Audit records the database refused, kept aside.")
        self.unrecorded = counter("audit_unrecorded_calls", "Calls recorded nowhere (database and journal unusable).")
        self.journal_bytes = gauge("audit_journal_bytes", "Bytes waiting in the audit journal.", mode="livemax")
        self.database_up = gauge("audit_database_up", "1 while this process's audit database takes writes.",
                                 mode="livemin")
        self.write_seconds = Histogram(PREFIX + "audit_write_seconds", "One audit commit (a group of rows).",
                                       buckets=WRITE_BUCKETS, registry=reg)
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}
        self._in_flight: dict[str, Any] = {}
        self._attempts: dict[tuple[str, str], Any] = {}
        self.database_up.set(1)

    # The hot path: label children are cached; each update is a write to a memory-mapped file.

    def call_started(self, endpoint: str) -> None:
        self._gauge_child(endpoint).inc()

    def call_ended(self, end: CallEnd) -> None:
        self._gauge_child(end.endpoint).dec()
        estimated = "true" if end.tokens_estimated else "false"
        key = (end.endpoint, end.provider, end.model, end.outcome, estimated)
        children = self._children.get(key)
        if children is None:
            labels = (end.endpoint, end.provider, end.model)
            children = self._children[key] = (
                self.calls.labels(*labels, end.outcome), self.duration.labels(*labels), self.ttft.labels(*labels),
                self.tokens.labels(end.provider, end.model, "prompt", estimated),
                self.tokens.labels(end.provider, end.model, "completion", estimated),
            )
        calls, duration, ttft, prompt, completion = children
        calls.inc()
        duration.observe(end.duration_s)
        if end.ttft_s is not None:
            ttft.observe(end.ttft_s)
        if end.prompt_tokens:
            prompt.inc(end.prompt_tokens)
        if end.completion_tokens:
            completion.inc(end.completion_tokens)
        for attempt in end.attempts:
            self._attempt(attempt.provider, attempt.result).inc()
        if len(end.attempts) > 1:
            self._moves(end)

    def call_interrupted(self, *, endpoint: str, provider: str, model: str) -> None:
        """A call of a dead process, ended by the sweep (its in-flight count died with the process)."""
        self.calls.labels(endpoint, provider, model, "interrupted").inc()

    def stream_opened(self) -> None:
        self.streams.inc()

    def stream_closed(self) -> None:
        self.streams.dec()

    def _moves(self, end: CallEnd) -> None:
        """Each attempt after the first: a retry (same provider) or a fallback, by why the one before failed."""
        for previous, attempt in zip(end.attempts, end.attempts[1:], strict=False):
            series = self.retries if attempt.provider == previous.provider else self.fallbacks
            series.labels(attempt.provider, previous.result).inc()

    def _attempt(self, provider: str, result: str) -> Any:
        child = self._attempts.get((provider, result))
        if child is None:
            child = self._attempts[(provider, result)] = self.attempts.labels(provider, result)
        return child

    def _gauge_child(self, endpoint: str) -> Any:
        child = self._in_flight.get(endpoint)
        if child is None:
            child = self._in_flight[endpoint] = self.in_flight.labels(endpoint)
        return child

    # The audit trail and the providers: off the hot path or once per commit.

    def audit_committed(self, records: int, seconds: float) -> None:
        self.records_written.inc(records)
        self.write_seconds.observe(seconds)

    def audit_journaled(self) -> None:
        self.journaled.inc()

    def audit_dead_letter(self) -> None:
        self.dead_letters.inc()

    def audit_unrecorded(self) -> None:
        self.unrecorded.inc()

    def audit_replayed(self, records: int) -> None:
        if records:
            self.replayed.inc(records)

    def audit_state(self, *, database_up: bool, journal_bytes: int) -> None:
        self.database_up.set(1 if database_up else 0)
        self.journal_bytes.set(journal_bytes)

    def provider_probed(self, provider: str, *, up: bool, seconds: float) -> None:
        self.provider_up.labels(provider).set(1 if up else 0)
        self.provider_latency.labels(provider).set(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text of every process (multiprocess mode) or of this one."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)
