"""A gateway started while PostgreSQL cannot be reached, through real gunicorn: it comes up, serves, routes by
the providers last read, and records every call once the database answers (the TCP proxy of tests/faults.py)."""

from __future__ import annotations

import json

import pytest
import requests
import sqlalchemy as sa

from app import migrate
from app.db import dispose_engines
from app.services.admin.routing_snapshot import snapshot_path
from tests.e2e.calls import assert_each_recorded_once, fire
from tests.e2e.helpers import calls_until_every_worker_answered, database_recovered, gateway_env
from tests.faults import TcpProxy, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.xdist_group("audit-faults")]


@pytest.fixture
def new_database(pg_url):
    """A database of its own with no schema at all (a gateway's first start), behind its own proxy."""
    name = f"{sa.make_url(pg_url).database}_new"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(pg_url).set(database=name)
    proxy = TcpProxy((url.host, url.port or 5432))
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), \
        url.render_as_string(hide_password=False)
    proxy.close()
    dispose_engines()
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["at head", "new"])
def unreachable_database(request, pg_url):
    """(proxy refusing connections, the gateway's URL through it, the direct URL): a database at head, or empty."""
    if request.param == "at head":
        proxy, proxied_url = request.getfixturevalue("pg_proxy")
        direct_url = pg_url
    else:
        proxy, proxied_url, direct_url = request.getfixturevalue("new_database")
    proxy.set_mode("refuse")
    return proxy, proxied_url, direct_url


def test_a_gateway_started_while_postgresql_refuses_serves_and_records_every_call_once_it_answers(
    unreachable_database, answering, start_gateway, tmp_path
):
    proxy, proxied_url, direct_url = unreachable_database
    env = gateway_env(proxied_url, answering, tmp_path / "journal", EXPOSE_WORKER_PID="true")
    with start_gateway(env) as base:
        assert {provider for _, provider in calls_until_every_worker_answered(base)} == {"lm-studio"}
        during = fire(base, 6, concurrency=2, tag="boot-outage")
        history = requests.get(base + "/v1/requests", headers={"Connection": "close"}, timeout=30)
        assert history.status_code == 503 and history.json()["error"]["code"] == "database_unavailable"
        proxy.set_mode("pass")
        after = fire(base, 2, tag="after")
        calls = during.calls + after.calls
        assert [call.status for call in calls] == [200] * len(calls), [c.error for c in calls if c.status != 200]
        head = migrate.head_revision(direct_url)
        assert wait_until(lambda: migrate.current_revision(direct_url) == head, timeout_s=30)  # a new one's made
        assert_each_recorded_once(direct_url, calls)
        assert wait_until(lambda: database_recovered(base), timeout_s=30)
        assert requests.get(base + "/v1/requests", headers={"Connection": "close"}, timeout=30).status_code == 200


def test_a_gateway_restarted_while_postgresql_refuses_routes_by_the_providers_last_read(
    pg_proxy, pg_url, answering, start_gateway, tmp_path
):
    proxy, proxied_url = pg_proxy
    env = gateway_env(proxied_url, answering, tmp_path / "journal", EXPOSE_WORKER_PID="true")
    snapshot = snapshot_path(tmp_path / "journal")
    with start_gateway(env) as base:
        switched = requests.put(base + "/v1/settings/active_provider", json={"value": "mock"}, timeout=10)
        assert switched.status_code == 200, switched.text
        assert wait_until(lambda: snapshot.exists() and json.loads(snapshot.read_text())["active"] == "mock",
                          timeout_s=10)
    proxy.set_mode("refuse")
    with start_gateway(env) as base:
        assert {provider for _, provider in calls_until_every_worker_answered(base)} == {"mock"}
        calls = fire(base, 2, tag="restarted").calls
        proxy.set_mode("pass")
        assert_each_recorded_once(pg_url, calls)
        assert wait_until(lambda: database_recovered(base), timeout_s=30)
