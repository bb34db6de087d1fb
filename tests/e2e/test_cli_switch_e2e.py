"""`provider-cli set` switches a running gunicorn gateway (two workers) without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import assert_every_worker_switched, calls_until_every_worker_answered, llmock_gateway_env

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

PROVIDER_CLI = Path(sys.executable).with_name("provider-cli")


@pytest.fixture(scope="module")
def gateway(start_gateway, upstream, e2e_database_url):
    env = llmock_gateway_env(e2e_database_url, upstream, EXPOSE_WORKER_PID="true")
    with start_gateway(env, workers=2) as base:
        yield base


def provider_cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    """The installed console script in its own process, as an operator runs it (from another directory)."""
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    return subprocess.run([str(PROVIDER_CLI), *args], env=env, capture_output=True, text=True, timeout=60, cwd="/")


def test_provider_cli_set_switches_both_workers_within_a_second(gateway, fresh_upstream, e2e_database_url):
    old, new = "lm-studio", "mock"
    assert {provider for _, provider in calls_until_every_worker_answered(gateway)} == {old}

    done = provider_cli(e2e_database_url, "set", new)
    switched_at = time.monotonic()
    assert (done.returncode, done.stdout, done.stderr) == (0, f"Active provider: {old} -> {new}\n", "")
    slowest = assert_every_worker_switched(gateway, old=old, new=new, switched_at=switched_at)

    listed = provider_cli(e2e_database_url, "history", "-l", "1", "--json")
    assert listed.returncode == 0 and '"provider": "mock"' in listed.stdout
    print(f"\nslowest worker still on {old} {slowest * 1000:.0f} ms after `set`")
