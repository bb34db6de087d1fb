"""A settings change reaches every worker within 1 s: gunicorn with 2 workers, no restart."""

from __future__ import annotations

import time

import pytest
import requests

from tests.e2e.helpers import (
    WORKERS,
    assert_every_worker_switched,
    calls_until_every_worker_answered,
    llmock_gateway_env,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]



@pytest.fixture(scope="module")
def gateway(start_gateway, upstream, e2e_database_url):
    env = llmock_gateway_env(e2e_database_url, upstream, EXPOSE_WORKER_PID="true")
    with start_gateway(env, workers=WORKERS) as base:
        yield base


def switch(base: str, provider: str) -> float:
    reply = requests.put(base + "/v1/settings/active_provider", json={"value": provider}, timeout=10)
    assert reply.status_code == 200, reply.text
    return time.monotonic()


def test_switching_the_active_provider_reaches_both_workers_within_a_second(gateway, fresh_upstream):
    old, new = "lm-studio", "mock"
    assert {provider for _, provider in calls_until_every_worker_answered(gateway)} == {old}

    slowest = assert_every_worker_switched(gateway, old=old, new=new, switched_at=switch(gateway, new))
    print(f"\nslowest worker still on {old} {slowest * 1000:.0f} ms after the switch")
