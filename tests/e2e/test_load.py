"""Load (not timed): 4 gevent workers, 2,000 requests at concurrency 64 on SQLite; nothing lost."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa
from requests.adapters import HTTPAdapter

from app import migrate
from app.db import dispose_engines, get_engine

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

TOTAL = 2000
CONCURRENCY = 64


def test_2000_requests_at_concurrency_64_leave_2000_complete_rows(start_gateway, tmp_path):
    url = f"sqlite:///{tmp_path / 'load.db'}"
    migrate.upgrade(url)
    dispose_engines()
    http = requests.Session()
    http.mount("http://", HTTPAdapter(pool_maxsize=CONCURRENCY))

    with start_gateway({"DATABASE_URL": url}, workers=4) as base:
        def call(index: int) -> tuple[int, str]:
            stream = index % 2 == 1
            reply = http.post(
                base + "/v1/chat/completions",
                json={"model": "mock/load", "stream": stream,
                      "messages": [{"role": "user", "content": f"request {index}"}]},
                headers={"X-Session-Id": f"load-{index % 50}"}, timeout=60,
            )
            body = reply.text
            complete = body.endswith("data: [DONE]\n\n") if stream else '"choices"' in body
            return reply.status_code, "ok" if complete else body[-200:]

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            results = list(pool.map(call, range(TOTAL)))

        failures = [result for result in results if result != (200, "ok")]
        assert failures == []
        counts = _counts_once_settled(url)
    assert counts == (TOTAL, TOTAL, TOTAL, TOTAL)


def _counts_once_settled(url: str) -> tuple[int, ...]:
    """Row counts, after the last streams' rows (written as their generators end) are in."""
    deadline = time.monotonic() + 15
    while True:
        with get_engine(url).connect() as connection:
            counts = tuple(connection.execute(sa.text(
                "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM responses),"
                " (SELECT count(*) FROM responses WHERE status = 'ok'),"
                " (SELECT sum(message_count) FROM sessions)"
            )).one())
        if counts[1] >= TOTAL or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)
