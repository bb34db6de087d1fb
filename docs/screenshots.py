"""Screenshots of each dashboard page for the README: docs/ui-*.png.

    python docs/screenshots.py

Fills a throwaway SQLite database with a month of synthetic calls (bench/history_data.py), starts
the gateway under gunicorn on it (with an admin key, so the login page is shown too), makes a few
real calls through the mock provider (a conversation, a tool call, markup, a failure, calls made
with gateway keys), and has Debian's Chromium photograph each page. No network is needed; a CJK
font (`apt-get install fonts-wqy-microhei`) keeps the Chinese words of one call from showing as boxes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from history_data import fill  # noqa: E402

from app.db import dispose_engines, get_engine  # noqa: E402
from app.services.search import index  # noqa: E402

PRICES = json.dumps({
    "gpt-4o": {"prompt": 2.5, "completion": 10}, "gpt-4o-mini": {"prompt": 0.15, "completion": 0.6},
    "mock/mock-chat": {"prompt": 400, "completion": 1600},
})
ADMIN_KEY = "screenshots-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
# Gateway keys: name, budget (USD a month), default tags, calls made with it.
KEYS = (("support-bot", 50, {"team": "support"}, 6), ("search", 20, {"team": "search"}, 3),
        ("nightly-batch", None, {"team": "data"}, 2), ("intern-sandbox", 1, {}, 0))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chat(base: str, messages: list[dict], *, session: str, model: str = "mock/mock-chat", key: str | None = None,
          **extra) -> None:
    body = {"model": model, "messages": messages, "user": session, **extra}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    requests.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=10)


def seed_keys(base: str) -> None:
    """A few gateway keys and calls made with them, for the Keys page."""
    for name, budget, tags, calls in KEYS:
        body = {"name": name, "budget_usd": budget, "period": "month", "tags": tags}
        key = requests.post(f"{base}/v1/keys", json=body, headers=ADMIN, timeout=10).json()["key"]
        for number in range(calls):
            text = f"Summarize ticket #{4000 + number} for the {name} queue."
            _chat(base, [{"role": "user", "content": text}], session=f"{name}-{number}", key=key)


def seed(base: str) -> None:
    seed_keys(base)  # first: the newest calls, at the top of the calls page, are the varied ones below
    system = {"role": "system", "content": "You are the support assistant of an invoicing service. " * 4}
    turns = ["My invoice INV-2041 shows the wrong VAT rate.", "It should be 7 %, not 19 %.",
             "Can you reissue it with the due date unchanged?"]
    history: list[dict] = [system]
    for text in turns:
        history.append({"role": "user", "content": text})
        _chat(base, history, session="support-4711")
        history.append({"role": "assistant", "content": text})
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}}
    tool = {"type": "function",
            "function": {"name": "get_weather", "description": "Weather for a city", "parameters": parameters}}
    _chat(base, [{"role": "user", "content": "What is the weather in Oslo?"}], session="tools-1",
          model="mock/mock-tools", tools=[tool])
    _chat(base, [{"role": "user", "content": "Привет! Как дела? 你好，世界"}], session="intl")
    _chat(base, [{"role": "user", "content": '<script>alert("logged markup is shown, never run")</script>'}],
          session="probe")
    _chat(base, [{"role": "user", "content": "hello?"}], session="down", model="lm-studio/qwen2.5-7b-instruct")


def _call_ids(base: str, session: str) -> list[int]:
    """The session's call ids, newest first."""
    reply = requests.get(f"{base}/v1/requests", params={"session_id": session}, headers=ADMIN, timeout=5)
    reply.raise_for_status()
    return [call["id"] for call in reply.json()["data"]]


def _shoot(page, name: str, *, height: int | None = None) -> None:
    page.wait_for_load_state("networkidle")
    path = ROOT / "docs" / f"ui-{name}.png"
    clip = {"x": 0, "y": 0, "width": page.viewport_size["width"], "height": height} if height else None
    page.screenshot(path=str(path), clip=clip)
    print(path.relative_to(ROOT))


def main() -> None:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="pr-shots-"))
    database = work / "gateway.db"
    fill(str(database), responses=30_000, days=30)
    url = f"sqlite:///{database}"
    index.reindex(get_engine(url))
    dispose_engines()
    port = _port()
    env = {**os.environ, "DATABASE_URL": url, "HOST": "127.0.0.1", "PORT": str(port), "DEFAULT_PROVIDER": "mock",
           "LM_STUDIO_BASE_URL": "http://127.0.0.1:9/v1", "LOG_LEVEL": "WARNING", "WEB_CONCURRENCY": "1",
           "MODEL_PRICES": PRICES, "ADMIN_API_KEY": ADMIN_KEY}
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(base + "/health", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        seed(base)
        time.sleep(3)  # the background indexer
        newest = _call_ids(base, "support-4711")
        last, first = newest[0], newest[-1]
        tools = _call_ids(base, "tools-1")[0]
        pages = {
            "overview": "/ui/?range=7d", "calls": "/ui/calls", "search": "/ui/calls?q=invoice+VAT",
            "call": f"/ui/calls/{last}", "call-tools": f"/ui/calls/{tools}", "diff": f"/ui/diff?a={first}&b={last}",
            "session": "/ui/sessions/support-4711", "keys": "/ui/keys?range=7d", "providers": "/ui/providers",
        }
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for scheme in ("light", "dark"):
                page = browser.new_page(viewport={"width": 1400, "height": 900}, color_scheme=scheme)
                suffix = "" if scheme == "light" else "-dark"
                page.goto(base + "/ui/")
                page.wait_for_url("**/ui/login**")
                if scheme == "light":
                    _shoot(page, "login", height=420)  # the form, not the empty page below it
                page.fill("input[name=key]", ADMIN_KEY)
                page.click("button[type=submit]")
                page.wait_for_url(base + "/ui/")
                for name, path in pages.items() if scheme == "light" else [("overview", pages["overview"])]:
                    page.goto(base + path)
                    _shoot(page, name + suffix)
            browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=15)


if __name__ == "__main__":
    main()
