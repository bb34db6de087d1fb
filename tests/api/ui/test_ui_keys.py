"""/ui/keys: each gateway key's usage, cost and errors in a range, and a link to exactly its calls."""

from __future__ import annotations

import re

import pytest

from app.config import ModelPrice

PRICES = {"mock/priced": ModelPrice(prompt=1000.0, completion=0.0)}


@pytest.fixture
def settings(make_settings):
    return make_settings(model_prices=PRICES)


def chat(client, key: str | None, session: str):
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    reply = client.post("/v1/chat/completions", headers={**auth, "X-Session-Id": session},
                        json={"model": "mock/priced", "messages": [{"role": "user", "content": "hello there"}]})
    assert reply.status_code == 200, reply.get_json()


def test_keys_page_shows_each_keys_usage_and_links_to_its_calls(client, flush_audit):
    search = client.post("/v1/keys", json={"name": "search", "budget_usd": 5, "period": "month"}).get_json()
    client.post("/v1/keys", json={"name": "idle"})
    for number in range(3):
        chat(client, search["key"], f"s{number}")
    chat(client, None, "anonymous")
    flush_audit()

    page = client.get("/ui/keys")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert search["key"] not in html  # never the key itself, only its prefix
    rows = {name: re.sub(r"<[^>]+>", " ", row) for name, row in re.findall(
        r"<tr>\s*<td><a href=\"[^\"]*\">([^<]+)</a></td>(.*?)</tr>", html, flags=re.S)}
    assert set(rows) == {"search", "idle"}
    assert search["prefix"] in rows["search"] and "$5" in rows["search"]
    cells = rows["search"].split()
    assert "3" in cells and "3" not in rows["idle"].split()
    assert "(no key)" in html

    link = re.search(r'href="(/ui/calls\?[^"]*key=search[^"]*)"', html).group(1).replace("&amp;", "&")
    listed = client.get(link).get_data(as_text=True)
    assert listed.count("/ui/calls/") - listed.count("/ui/calls/export") >= 3
    assert "anonymous" not in listed


def test_keys_page_refuses_a_bad_range(client):
    reply = client.get("/ui/keys?range=forever")
    assert reply.status_code == 400


def test_the_calls_form_keeps_the_key_tag_and_endpoint_filters(client):
    html = client.get("/ui/calls?key=search&tag=team:search&endpoint=embeddings").get_data(as_text=True)
    assert 'name="key" value="search"' in html and 'name="tag" value="team:search"' in html
    assert '<option value="embeddings" selected>' in html
