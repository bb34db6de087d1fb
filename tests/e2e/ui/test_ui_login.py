"""With ADMIN_API_KEY set, the dashboard asks for the key and keeps a signed HttpOnly, SameSite=Strict cookie."""

from __future__ import annotations

import re

import pytest
import requests

from tests.e2e.ui.conftest import ADMIN_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


@pytest.fixture(scope="module")
def gateway(start_gateway, ui_database_url):
    env = {"DATABASE_URL": ui_database_url, "DEFAULT_PROVIDER": "mock", "ADMIN_API_KEY": ADMIN_KEY}
    with start_gateway(env) as base:
        yield base


def test_login_then_logout(gateway, page):
    page.goto(gateway + "/ui/calls?status=ok")
    page.wait_for_url(re.compile(r"/ui/login\?next="))
    page.fill("input[name=key]", "not the key")
    page.click("button[type=submit]")
    assert "not the admin key" in page.locator("[role=alert]").inner_text()
    page.fill("input[name=key]", ADMIN_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/calls\?status=ok$"))
    cookie = next(c for c in page.context.cookies() if c["name"] == "pr_ui_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]  # plain HTTP here
    assert ADMIN_KEY not in cookie["value"]
    page.goto(gateway + "/ui/providers")
    assert page.locator("h1").inner_text() == "Providers"
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.goto(gateway + "/ui/providers")
    page.wait_for_url(re.compile(r"/ui/login"))


def test_a_forged_or_missing_cookie_gets_the_login_page(gateway):
    for cookies in ({}, {"pr_ui_session": "x.y.z"}):
        reply = requests.get(gateway + "/ui/", cookies=cookies, allow_redirects=False, timeout=5)
        assert reply.status_code == 302 and "/ui/login" in reply.headers["Location"]
    assert requests.get(gateway + "/ui/static/ui.css", timeout=5).status_code == 200
