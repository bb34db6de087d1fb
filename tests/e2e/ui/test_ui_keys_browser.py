"""The Keys page in a real browser against a real gunicorn gateway: each gateway key's usage, and its link to its calls.

Its own gateway and database: the page's figures are checked exactly, so no other test's calls may count.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.e2e.ui.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

PRICES = json.dumps({"mock/priced": {"prompt": 1000, "completion": 0}})
COLUMNS = ("key", "prefix", "status", "budget", "spent", "calls", "errors", "tokens", "cost")


@pytest.fixture(scope="module")
def gateway(start_gateway, ui_database_url):
    env = {"DATABASE_URL": ui_database_url, "DEFAULT_PROVIDER": "mock", "MODEL_PRICES": PRICES}
    with start_gateway(env, workers=1) as base:
        yield base


def new_key(base: str, **body) -> dict:
    """A gateway key made through the admin API (open to loopback clients without ADMIN_API_KEY)."""
    reply = requests.post(base + "/v1/keys", json=body, timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()


def chat(base: str, key: str | None, *, session: str, model: str = "mock/priced") -> requests.Response:
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(base + "/v1/chat/completions", headers={**auth, "X-Session-Id": session}, timeout=10,
                         json={"model": model, "messages": [{"role": "user", "content": f"hello from {session}"}]})


def recorded(base: str, **filters) -> int:
    return requests.get(base + "/v1/requests", params=filters, timeout=5).json()["total"]


def rows_by_key(page) -> dict[str, dict[str, str]]:
    """The Keys table, one dict of cells per key name."""
    rows = {}
    for cells in page.locator("main table tbody tr").evaluate_all(
            "rows => rows.map(row => [...row.cells].map(cell => cell.innerText.trim()))"):
        rows[cells[0]] = dict(zip(COLUMNS, cells, strict=True))
    return rows


def test_keys_page_shows_each_keys_usage_and_links_to_exactly_its_calls(gateway, page):
    search = new_key(gateway, name="search", budget_usd=5, period="month", tags={"team": "search"},
                     models=["mock/priced"])
    new_key(gateway, name="idle")
    for number in range(3):
        assert chat(gateway, search["key"], session=f"search-{number}").status_code == 200
    # Refused (a model the key may not use), and recorded: the key's error.
    assert chat(gateway, search["key"], session="search-error", model="mock/other").status_code == 403
    assert chat(gateway, None, session="anonymous").status_code == 200
    assert wait_for(lambda: recorded(gateway, key="search") == 4 and recorded(gateway) == 5)

    page.goto(gateway + "/ui/keys?range=24h")
    assert page.locator("h1").inner_text() == "Keys"
    rows = rows_by_key(page)
    assert set(rows) == {"search", "idle", "(no key)"}
    assert rows["search"]["prefix"] == search["prefix"] and rows["search"]["status"] == "active"
    assert rows["search"]["budget"] == "$5.00 / month"
    assert (rows["search"]["calls"], rows["search"]["errors"]) == ("4", "1")
    assert rows["search"]["cost"] != "$0.0000" and rows["search"]["spent"] != "$0.0000"
    assert (rows["idle"]["calls"], rows["idle"]["budget"], rows["idle"]["cost"]) == ("0", "-", "$0.0000")
    assert rows["(no key)"]["calls"] == "1"
    assert search["key"] not in page.content()  # only the prefix, never the key itself

    page.click("main table a:text-is('search')")
    page.wait_for_url(re.compile(r"/ui/calls\?.*key=search"))
    assert page.locator("form#filters input[name=key]").input_value() == "search"
    sessions = sorted(page.locator("#rows tr td:last-child").all_inner_texts())
    assert sessions == ["search-0", "search-1", "search-2", "search-error"]
    # The key's default tag marks the same calls.
    page.goto(gateway + "/ui/calls?tag=team:search")
    assert sorted(page.locator("#rows tr td:last-child").all_inner_texts()) == sessions
    assert page.console_errors == [], page.console_errors
