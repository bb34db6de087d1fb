"""A read-only history instance on a real hot standby: a private primary and its streaming standby, the
gateway (real gunicorn) recording calls on the primary and a second one started on the standby."""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app import migrate
from app.db import dispose_engines, get_engine
from app.models import UsageRollupDay, now_ms
from app.services.history.stats import usage_report
from app.services.history.usage_sql import UsageFilters
from tests.e2e.conftest import free_port
from tests.e2e.helpers import llmock_gateway_env
from tests.e2e.standby import hot_standby, missing_binaries, private_server
from tests.factories import DAY_MS, make_call, make_session
from tests.faults import IN_CI, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow, pytest.mark.xdist_group("scale-out")]
CALLS = 6


def _url(port: int) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/gateway"


@pytest.fixture(scope="module")
def servers():
    """A primary at head and its hot standby, both private; yields their database URLs."""
    reason = missing_binaries()
    if reason:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the replica test must run)")
        pytest.skip(reason)
    primary_port, standby_port = free_port(), free_port()
    with private_server(primary_port):
        admin = sa.create_engine(_url(primary_port).replace("/gateway", "/postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text("CREATE DATABASE gateway"))
        admin.dispose()
        migrate.upgrade(_url(primary_port))
        with hot_standby(primary_port=primary_port, port=standby_port):
            yield _url(primary_port), _url(standby_port)
            dispose_engines()


def _replayed(primary: str, standby: str) -> None:
    """Wait until the standby has replayed everything the primary has committed so far."""
    with get_engine(primary).connect() as connection:
        target = connection.execute(sa.text("SELECT pg_current_wal_lsn()")).scalar_one()
    query = sa.text("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), :target) >= 0")
    with get_engine(standby).connect() as connection:
        assert wait_until(lambda: connection.execute(query, {"target": target}).scalar_one(), timeout_s=30)


def test_a_gateway_on_the_standby_serves_the_primarys_history_and_refuses_writes(servers, upstream, start_gateway):
    primary, standby = servers
    with start_gateway(llmock_gateway_env(primary, upstream)) as base:
        for n in range(CALLS):
            reply = requests.post(base + "/v1/chat/completions", timeout=10, headers={"X-Session-Id": "replayed"},
                                  json={"model": "m", "stream": n % 2 == 1,
                                        "messages": [{"role": "user", "content": f"call {n}"}]})
            assert reply.status_code == 200
        assert wait_until(lambda: requests.get(base + "/v1/stats/usage", timeout=10).json()["totals"]["requests"]
                          == CALLS, timeout_s=10)
    with Session(get_engine(primary)) as db:  # and two calls imported for three days ago
        past = make_session(db, "imported", created_at=now_ms() - 3 * DAY_MS)
        for n in range(2):
            make_call(db, past, timestamp=now_ms() - 3 * DAY_MS + n)
        db.commit()
        recorded = db.scalars(sa.text("SELECT request_id FROM requests ORDER BY timestamp DESC, id DESC")).all()
        # A report on the primary rolls those past days up; the standby reads them from there.
        usage_report(db, filters=UsageFilters(start_ms=now_ms() - 5 * DAY_MS), prices={})
        rolled_up = db.scalar(sa.select(sa.func.count()).select_from(UsageRollupDay))
    assert rolled_up == 3  # the three whole days since the oldest call
    _replayed(primary, standby)
    with Session(get_engine(standby)) as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(UsageRollupDay)) == rolled_up

    with start_gateway(llmock_gateway_env(standby, upstream)) as replica:
        assert requests.get(replica + "/health", timeout=10).json()["read_only"] is True
        page = requests.get(replica + "/v1/requests?limit=100", timeout=10).json()
        assert [call["request_id"] for call in page["data"]] == recorded
        sessions = {s["id"]: s for s in requests.get(replica + "/v1/sessions", timeout=10).json()["data"]}
        assert set(sessions) == {"replayed", "imported"}
        usage = requests.get(replica + f"/v1/stats/usage?start_date={now_ms() - 5 * DAY_MS}&group_by=day", timeout=10)
        assert usage.status_code == 200
        assert usage.json()["totals"]["requests"] == CALLS + 2
        assert [group["requests"] for group in usage.json()["data"]] == [CALLS, 2]
        assert requests.get(replica + "/ui/calls", timeout=10).status_code == 200

        chat = requests.post(replica + "/v1/chat/completions", timeout=10,
                             json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        switch = requests.put(replica + "/v1/settings/active_provider", json={"value": "lm-studio"}, timeout=10)
        for refused in (chat, switch):
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "read_only_instance"
            assert "read-only" in refused.json()["error"]["message"]
    log = start_gateway.log_path.read_text()
    assert "read-only instance: the database is a hot standby" in log
    assert "Traceback" not in log and "read-only transaction" not in log
