"""/metrics through a real gunicorn with 2 workers: exact counts per outcome summed across workers,
histograms that count every call, in-flight back to 0, and totals that survive recycled workers."""

from __future__ import annotations

import os
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from llmock.scenarios import Fail, Reply, StreamFault
from prometheus_client.parser import text_string_to_metric_families

from app import migrate
from app.db import dispose_engines
from tests.faults import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

N = 6  # calls of each outcome


def scrape(base: str) -> dict[tuple[str, frozenset], float]:
    reply = requests.get(base + "/metrics", timeout=5)
    assert reply.status_code == 200, reply.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text) for sample in family.samples
    }


def total(found: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (sample, got), value in found.items() if sample == name and wanted <= got)


def call(base: str, *, stream: bool) -> requests.Response:
    """One call on a new connection (either worker may take it), read to its end."""
    reply = requests.post(
        base + "/v1/chat/completions", stream=stream, timeout=30,
        headers={"Connection": "close", "X-Session-Id": f"m-{uuid.uuid4()}"},
        json={"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "count me"}]},
    )
    reply.content  # noqa: B018 - the whole answer, streamed or not
    return reply


@pytest.fixture
def gateway(start_gateway, upstream, tmp_path):
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade(url)
    dispose_engines()
    env = {"DATABASE_URL": url, "DEFAULT_PROVIDER": "lm-studio", "LM_STUDIO_BASE_URL": upstream.base_url("openai"),
           "EXPOSE_WORKER_PID": "true", "REQUEST_TIMEOUT": "10000"}
    upstream.state.reset()
    with start_gateway(env) as base:
        yield base
    upstream.state.reset()


def fire_each_outcome(base: str, upstream) -> tuple[set[str], int]:
    """N calls that end ok (half streamed), N in error (upstream 400), N incomplete (upstream cut mid-stream),
    4 at a time; then ok calls until both workers have answered. (workers, ok calls)."""
    workers: set[str] = set()

    def batch(stream: bool | None, status: int) -> None:
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda n: call(base, stream=n % 2 == 1 if stream is None else stream), range(N)))
        for reply in replies:
            assert reply.status_code == status, reply.text
            workers.add(reply.headers["X-Gateway-Worker"])
        return replies

    upstream.state.scenarios.add(Reply(text="counted", times=N))
    batch(None, 200)
    upstream.state.scenarios.add(Fail(400, message="no", times=N))
    batch(False, 400)
    upstream.state.scenarios.add(StreamFault("disconnect", after_chunks=1, times=N))
    upstream.state.scenarios.add(Reply(text="cut short after its first words", times=N))
    assert all(b'"error"' in reply.content for reply in batch(True, 200))
    ok = N
    while len(workers) < 2:
        assert ok < 200, "one worker took every call"
        reply = call(base, stream=False)
        assert reply.status_code == 200
        workers.add(reply.headers["X-Gateway-Worker"])
        ok += 1
    return workers, ok


def counted(base: str, expected: float):
    """The scrape once every call's ending is counted (a stream's is, just after its last byte)."""
    return wait_until(lambda: (found := scrape(base)) and
                      total(found, "provider_router_calls_total") >= expected and found, timeout_s=15)


def test_counts_are_exact_per_outcome_across_workers_and_survive_a_recycle(gateway, upstream):
    workers, ok = fire_each_outcome(gateway, upstream)
    found = counted(gateway, ok + 2 * N)
    by_outcome = {outcome: total(found, "provider_router_calls_total", outcome=outcome)
                  for outcome in ("ok", "error", "incomplete", "interrupted")}
    assert by_outcome == {"ok": ok, "error": N, "incomplete": N, "interrupted": 0}
    assert total(found, "provider_router_call_duration_seconds_count") == ok + 2 * N
    # Every stream that answered; a cut one only if its first content came before the cut.
    assert N // 2 <= total(found, "provider_router_time_to_first_token_seconds_count") <= N // 2 + N
    assert total(found, "provider_router_calls_in_flight") == 0
    assert total(found, "provider_router_streams_open") == 0
    assert total(found, "provider_router_upstream_attempts_total", result="http_4xx") == N
    # Rows are written a little after the call is counted (the response row rides the next group commit).
    assert wait_until(lambda: total(scrape(gateway), "provider_router_audit_records_written_total")
                      >= 2 * (ok + 2 * N), timeout_s=15)

    # Recycle every worker (SIGHUP: new workers, the old ones leave): no count is lost.
    metrics_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"provider-router-metrics-127.0.0.1-{gateway.split(':')[-1]}"
    assert metrics_dir.is_dir()
    os.kill(gateway.pid, signal.SIGHUP)
    assert wait_until(lambda: not (workers & {call(gateway, stream=False).headers.get("X-Gateway-Worker")
                                              for _ in range(4)}), timeout_s=30)
    upstream.state.reset()  # the calls above used the default reply: N more ok ones, counted on top
    before = total(scrape(gateway), "provider_router_calls_total", outcome="ok")
    for _ in range(N):
        assert call(gateway, stream=False).status_code == 200
    found = counted(gateway, before + 3 * N)
    assert total(found, "provider_router_calls_total", outcome="error") == N
    assert total(found, "provider_router_calls_total", outcome="incomplete") == N
    assert total(found, "provider_router_calls_total", outcome="ok") == before + N
    assert total(found, "provider_router_call_duration_seconds_count") == 2 * N + before + N
    assert total(found, "provider_router_calls_in_flight") == 0
    # The old workers' live gauges were dropped when they exited (mark_process_dead); their counters stay.
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), timeout_s=30)
    for pid in workers:
        assert not list(metrics_dir.glob(f"gauge_live*_{pid}.db"))
        assert (metrics_dir / f"counter_{pid}.db").exists()


def test_gunicorn_answers_its_own_errors_as_openai_json(gateway):
    reply = requests.get(gateway + "/v1/requests?q=" + "a" * 9000, timeout=5)
    assert reply.status_code == 414
    assert reply.headers["Content-Type"] == "application/json"
    error = reply.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "uri_too_long", None)
    reply = requests.get(gateway + "/health", headers={"X-Big": "b" * 9000}, timeout=5)
    assert reply.status_code in (400, 431)
    assert reply.json()["error"]["type"] == "invalid_request_error"
