"""Dashboard sign-in with ADMIN_API_KEY: the signed cookie, its flags, and what it opens."""

from __future__ import annotations

import re

import pytest

KEY = "ui-test-key"


@pytest.fixture
def settings(make_settings):
    return make_settings(admin_api_key=KEY)


def _token(client) -> str:
    page = client.get("/ui/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_pages_send_strangers_to_the_login_page(client):
    reply = client.get("/ui/calls?q=x")
    assert reply.status_code == 302 and reply.headers["Location"].startswith("/ui/login?next=")


def test_the_key_signs_in_with_a_strict_httponly_cookie_and_logout_ends_it(client):
    token = _token(client)
    wrong = client.post("/ui/login", data={"key": "nope", "csrf_token": token, "next": "/ui/calls"})
    assert wrong.status_code == 401
    reply = client.post("/ui/login", data={"key": KEY, "csrf_token": token, "next": "/ui/calls"})
    assert reply.status_code == 303 and reply.headers["Location"] == "/ui/calls"
    cookie = next(h for h in reply.headers.getlist("Set-Cookie") if h.startswith("pr_ui_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie and KEY not in cookie
    assert client.get("/ui/calls").status_code == 200
    out = client.post("/ui/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert client.get("/ui/calls").status_code == 302


def test_the_cookie_is_secure_over_https(client):
    token = _token(client)
    reply = client.post("/ui/login", data={"key": KEY, "csrf_token": token}, base_url="https://localhost")
    assert "Secure" in next(h for h in reply.headers.getlist("Set-Cookie") if h.startswith("pr_ui_session="))


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/v1/requests"])
def test_login_never_sends_to_another_site(client, target):
    reply = client.post("/ui/login", data={"key": KEY, "csrf_token": _token(client), "next": target})
    assert reply.headers["Location"] == "/ui/"


def test_login_without_the_csrf_token_is_refused(client):
    _token(client)
    assert client.post("/ui/login", data={"key": KEY}).status_code == 403
