"""Browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser), real gunicorn gateways.

Without /usr/bin/chromium the browser tests skip with the reason, except under CI=true, where
they fail: CI installs the package (.ci/run).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from app import migrate
from app.db import dispose_engines
from tests.conftest import IN_CI

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture(scope="session")
def chromium() -> Iterator:
    """A headless Chromium, launched by its path."""
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM}: `apt-get install chromium` to run the browser tests"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the browser tests must run)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium) -> Iterator:
    """A fresh browser context (no cookies) and page; the page's console errors are collected."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture(scope="module")
def ui_database_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'gateway.db'}"
    migrate.upgrade(url)
    dispose_engines()
    return url


def chat(base: str, text: str, *, session: str = "ui-session", model: str = "mock/mock-chat",
         system: str | None = None) -> dict:
    """One chat call through the gateway (the mock provider echoes the last user message)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    reply = requests.post(base + "/v1/chat/completions", json={"model": model, "messages": messages, "user": session},
                          timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def wait_for(check: Callable[[], bool], *, timeout_s: float = 15.0) -> bool:
    """Poll ``check`` until it holds or time runs out (the caller asserts the result)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()
