"""The live tail in a real browser: pending rows turn into ended calls, late commits find their place by time.

Calls are written straight into the gateway's SQLite file (as its workers would), so the test
decides when a call ends and in which order calls are committed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from app.db import get_engine
from app.models import now_ms
from app.services.history.calls import TAIL_LIMIT
from tests.factories import answer_call, make_call, make_calls, make_session

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


@pytest.fixture(scope="module")
def gateway(start_gateway, upstream, ui_database_url) -> Iterator[str]:
    env = {
        "DATABASE_URL": ui_database_url, "DEFAULT_PROVIDER": "mock", "LM_STUDIO_BASE_URL": upstream.base_url("openai"),
    }
    with start_gateway(env, workers=1) as base:
        yield base


@pytest.fixture
def db(ui_database_url) -> Iterator[Session]:
    with Session(get_engine(ui_database_url), expire_on_commit=False) as session:
        yield session


def _shown_ids(page) -> list[int]:
    return [int(row_id.removeprefix("call-")) for row_id in page.locator("#rows tr").evaluate_all(
        "rows => rows.map(r => r.id)")]


def test_a_pending_row_ends_in_place_and_a_late_commit_goes_where_its_time_is(gateway, db, page):
    now = now_ms()
    s = make_session(db, "tail-browser", created_at=now - 600_000)
    streaming = make_call(db, s, timestamp=now - 300_000, stream=True, status=None)
    newest = make_call(db, s, timestamp=now - 2_000)
    db.commit()
    page.goto(gateway + "/ui/calls?live=1")
    assert "pending" in page.locator(f"#call-{streaming.id}").inner_text()
    page.keyboard.press("j")
    page.keyboard.press("j")  # the pending row is selected

    answer_call(db, streaming, duration_ms=300_000)
    late = make_call(db, s, timestamp=newest.timestamp - 1_000)  # committed after newest, started before it
    db.commit()
    page.wait_for_selector(f"#call-{streaming.id} .badge.ok", timeout=15_000)
    page.wait_for_selector(f"#call-{late.id}", timeout=15_000)
    assert _shown_ids(page) == [newest.id, late.id, streaming.id]
    assert page.locator(f"#call-{streaming.id}").get_attribute("class") == "selected"
    assert page.console_errors == [], page.console_errors


def test_a_burst_past_what_a_poll_shows_leaves_a_row_that_leads_to_the_rest(gateway, db, page):
    now = now_ms()
    s = make_session(db, "tail-burst", created_at=now - 600_000)
    first = make_call(db, s, timestamp=now - 9_000)
    db.commit()
    page.goto(gateway + "/ui/calls?live=1&session_id=tail-burst")
    assert _shown_ids(page) == [first.id]

    burst = make_calls(db, s, timestamps=[now - 8_000 + 10 * n for n in range(TAIL_LIMIT + 5)])
    db.commit()
    page.wait_for_selector("#rows tr.gap", timeout=15_000)
    rows = page.locator("#rows tr").evaluate_all("rows => rows.map(r => r.id)")
    newest = [f"call-{n}" for n in burst[:-TAIL_LIMIT - 1:-1]]
    assert rows == [*newest, f"gap-{burst[5]}", f"call-{first.id}"]  # the gap where the 5 unshown calls are
    page.click("#rows tr.gap a")
    page.wait_for_url(lambda url: "start_date=" in url)
    listed = {int(row_id.removeprefix("call-")) for row_id in _shown_ids_of(page)}
    assert set(burst[:6]) | {first.id} <= listed
    assert page.console_errors == [], page.console_errors


def _shown_ids_of(page) -> list[str]:
    return page.locator("#rows tr[id^='call-']").evaluate_all("rows => rows.map(r => r.id)")
