"""The dashboard in a real browser (Debian's Chromium) against a real gunicorn gateway on SQLite.

The pages' queries run on PostgreSQL too in tests/api/ui/test_ui_pages.py; here the browser
checks what only a browser can: scripts allowed by the CSP, keyboard, live tail, no XSS.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.ui.conftest import chat, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

# Markup in what clients send: a message's text (an element's text or, on the overview, a title
# attribute) and the session id (text, href, an input's value). The first message breaks out of an
# attribute: the overview shows a session's first user message as its link's title.
XSS_TEXTS = (
    '"><svg onload="window.__xss = \'svg\'"> probe',
    "<script>window.__xss = 'script'</script> probe",
    '<img src=x onerror="window.__xss = \'img\'"> probe',
)
XSS_SESSION = '"><img src=x onerror=alert(1)>'
# What escaping that failed would leave in the page: a script the page did not load, an inline handler.
INJECTED = "script:not([src]):not([type='application/json']), [onload], [onerror], img, svg"


@pytest.fixture(scope="module")
def gateway(start_gateway, upstream, ui_database_url):
    env = {
        "DATABASE_URL": ui_database_url, "DEFAULT_PROVIDER": "mock", "LM_STUDIO_BASE_URL": upstream.base_url("openai"),
    }
    with start_gateway(env, workers=2) as base:
        chat(base, "Translate to French: the invoice is overdue", session="thread-1", system="You translate.")
        chat(base, "Перевести: счёт просрочен", session="thread-1")
        chat(base, "weather in Oslo tomorrow?", session="thread-2", model="mock/mock-tools")
        for text in XSS_TEXTS:
            chat(base, text, session=XSS_SESSION)
        # The background indexer makes new calls searchable within a few seconds.
        assert wait_for(lambda: _search_total(base, "probe") == len(XSS_TEXTS))
        yield base


def _search_total(base: str, q: str) -> int:
    reply = requests.get(f"{base}/v1/requests", params={"q": q}, timeout=5)
    return reply.json()["total"]


def _no_errors(page) -> None:
    assert page.console_errors == [], page.console_errors  # a CSP violation shows up here too


def test_every_page_renders_with_its_scripts_allowed(gateway, page):
    page.goto(gateway + "/ui/")
    assert page.locator("h1").inner_text() == "Overview"
    page.wait_for_selector(".chart .uplot")  # uPlot drew: the vendored script ran under the CSP
    assert page.locator(".tile").count() == 7
    for path, heading in (("/ui/calls", "Calls"), ("/ui/providers", "Providers"), ("/ui/sessions/thread-1", "Session"),
                          ("/ui/calls/1", "Call 1"), ("/ui/diff?a=1&b=2", "Diff"), ("/ui/keys", "Keys")):
        page.goto(gateway + path)
        assert page.locator("h1").inner_text() == heading, path
    csp = requests.get(gateway + "/ui/", timeout=5).headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    _no_errors(page)


def test_filters_live_in_the_url_and_a_shared_link_shows_the_same_rows(gateway, page):
    page.goto(gateway + "/ui/calls")
    page.fill("input[name=model]", "mock/mock-tools")
    page.select_option("select[name=status]", "ok")
    page.click("form#filters button[type=submit]")
    page.wait_for_url(re.compile(r"model=mock%2Fmock-tools"))
    assert "status=ok" in page.url
    shown = page.locator("#rows tr").all_inner_texts()
    assert len(shown) == 1 and "Oslo" in shown[0]
    page.goto(page.url)  # the link, opened again
    assert page.locator("#rows tr").all_inner_texts() == shown
    _no_errors(page)


def test_search_finds_words_of_a_call_in_any_language(gateway, page):
    page.goto(gateway + "/ui/calls")
    page.fill("input[name=q]", "СЧЁТ просрочен")
    page.press("input[name=q]", "Enter")
    page.wait_for_url(re.compile(r"q="))
    rows = page.locator("#rows tr").all_inner_texts()
    assert len(rows) == 1 and "Перевести" in rows[0]
    page.fill("input[name=q]", '"invoice is overdue"')
    page.press("input[name=q]", "Enter")
    page.wait_for_url(re.compile(r"q=%22invoice"))
    assert len(page.locator("#rows tr").all_inner_texts()) == 1


def test_live_tail_shows_new_calls_without_a_reload(gateway, page):
    page.goto(gateway + "/ui/calls?live=1")
    before = page.locator("#rows tr").count()
    chat(gateway, "a call made while the page is open", session="tail")
    page.wait_for_selector("#rows tr:first-child:has-text('made while the page is open')", timeout=15_000)
    assert page.locator("#rows tr").count() == before + 1
    _no_errors(page)


def test_keyboard_opens_a_call_and_the_call_page_shows_the_conversation(gateway, page):
    page.goto(gateway + "/ui/calls?session_id=thread-1")
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.locator("#rows tr.selected").count() == 1
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/ui/calls/\d+$"))
    roles = [role.lower() for role in page.locator(".thread .card .role").all_inner_texts()]
    assert roles[:2] == ["system", "user"] and roles[-1] == "assistant"
    assert "invoice is overdue" in page.locator(".thread").inner_text()
    curl = page.locator("#curl").inner_text()
    assert curl.startswith("curl -sS http://127.0.0.1") and "/v1/chat/completions" in curl
    assert 'Authorization: Bearer $OPENAI_API_KEY"' in curl  # for the shell to fill in, never a key
    page.click("summary:has-text(\"Client's request\")")
    assert '"messages"' in page.locator("#raw-request").inner_text()
    assert page.locator("#prev-call, #next-call").count() >= 1
    _no_errors(page)


def test_diff_with_another_call_marks_what_changed(gateway, page):
    page.goto(gateway + "/ui/calls/1")
    page.fill("input[name=b]", "2")
    page.click("form.diffwith button")
    page.wait_for_url(re.compile(r"/ui/diff\?a=1&b=2"))
    assert page.locator("table.diff tr.changed").count() >= 2
    assert page.locator("table.diff ins").count() >= 1 and page.locator("table.diff del").count() >= 1
    _no_errors(page)


def test_session_reads_as_one_chat_and_downloads_as_json(gateway, page):
    page.goto(gateway + "/ui/sessions/thread-1")
    text = page.locator(".thread").inner_text()
    assert text.index("invoice is overdue") < text.index("счёт просрочен")
    assert page.locator(".totals").inner_text().count("2") >= 1
    with page.expect_download() as download:
        page.click("text=Download JSON")
    assert download.value.suggested_filename == "session.json"
    calls = json.loads(Path(download.value.path()).read_text())["data"]
    assert [call["openai_request"]["messages"][-1]["content"] for call in calls] == [
        "Translate to French: the invoice is overdue", "Перевести: счёт просрочен",
    ]


def test_times_show_in_the_viewers_zone_with_utc_on_hover(gateway, chromium):
    """The server writes UTC; the page shows each time in the browser's zone and keeps UTC in the title."""
    call = requests.get(f"{gateway}/v1/requests", params={"session_id": "thread-2"}, timeout=5).json()["data"][0]
    ms = call["timestamp"]
    context = chromium.new_context(timezone_id="Asia/Kolkata", locale="en-GB")  # UTC+05:30, no summer time
    try:
        page = context.new_page()
        page.goto(f"{gateway}/ui/calls/{call['id']}")
        shown = page.locator("main time[datetime]").first
        local = datetime.fromtimestamp(ms / 1000, ZoneInfo("Asia/Kolkata"))
        assert shown.inner_text() == local.strftime("%d/%m/%Y, %H:%M:%S")
        utc = datetime.fromtimestamp(ms / 1000, UTC)
        assert shown.get_attribute("title") == utc.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
    finally:
        context.close()


def test_switching_the_active_provider(gateway, page):
    page.goto(gateway + "/ui/providers")
    row = page.locator("tr[data-provider=lm-studio]")
    row.locator("button:has-text('Make active')").click()
    page.wait_for_selector("[role=status]")
    assert "active" in page.locator("tr[data-provider=lm-studio]").inner_text()
    assert requests.get(gateway + "/v1/settings", timeout=5).json()["active_provider"] == "lm-studio"
    page.fill("input[name=fallbacks]", "mock, nowhere")
    page.click("form.fallbacks button")
    assert "no provider 'nowhere'" in page.locator("[role=alert]").inner_text()
    page.locator("tr[data-provider=mock] button:has-text('Make active')").click()
    page.wait_for_selector("[role=status]")
    assert requests.get(gateway + "/v1/settings", timeout=5).json()["active_provider"] == "mock"


def test_a_form_without_its_csrf_token_is_refused(gateway, page):
    page.goto(gateway + "/ui/providers")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.value = 'forged')")
    page.locator("tr[data-provider=lm-studio] button:has-text('Make active')").click()
    assert "security token" in page.locator("p.error").inner_text()
    assert requests.get(gateway + "/v1/settings", timeout=5).json()["active_provider"] == "mock"
    # Another site's form post (no cookie, foreign origin) is refused too.
    forged = requests.post(gateway + "/ui/providers/active", data={"name": "lm-studio", "csrf_token": "x"},
                           headers={"Origin": "http://evil.example"}, timeout=5)
    assert forged.status_code == 403


def test_logged_markup_is_shown_as_text_and_never_runs(gateway, page):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    calls = requests.get(gateway + "/v1/requests", params={"session_id": XSS_SESSION}, timeout=5).json()["data"]
    ids = sorted(call["id"] for call in calls)
    assert len(ids) == len(XSS_TEXTS)

    _visit_inert(page, gateway + "/ui/?range=24h", dialogs)
    link = page.locator(".tops a", has_text=XSS_SESSION[:20])
    assert link.get_attribute("title") == XSS_TEXTS[0]
    session_path = link.get_attribute("href")
    assert session_path == "/ui/sessions/" + quote(XSS_SESSION, safe="=()")

    for path in ("/ui/calls?q=probe", "/ui/calls?" + urlencode({"session_id": XSS_SESSION}), session_path):
        _visit_inert(page, gateway + path, dialogs)
        shown = page.locator("main").inner_text()
        assert all(text in shown for text in XSS_TEXTS), path
        assert XSS_SESSION[:12] in shown, path

    for call_id in ids:
        _visit_inert(page, f"{gateway}/ui/calls/{call_id}", dialogs)
        assert page.locator(".thread").inner_text().count(XSS_TEXTS[ids.index(call_id)]) == 2  # asked, echoed
        assert page.locator("dl.facts a").first.inner_text() == XSS_SESSION

    _visit_inert(page, f"{gateway}/ui/diff?a={ids[0]}&b={ids[1]}", dialogs)
    shown = page.locator("main").inner_text()
    assert XSS_TEXTS[0] in shown and XSS_TEXTS[1] in shown

    # Filters are shown back in the form: markup in the address stays an input's value.
    reflected = {"model": XSS_TEXTS[0], "session_id": XSS_SESSION, "tag": "team:" + XSS_TEXTS[0]}
    _visit_inert(page, gateway + "/ui/calls?" + urlencode(reflected), dialogs)
    for name, value in reflected.items():
        assert page.locator(f"form#filters input[name={name}]").input_value() == value


def _visit_inert(page, url: str, dialogs: list[str]) -> None:
    """Open ``url``; no markup it shows became an element, ran, opened a dialog, or broke the CSP."""
    page.goto(url, wait_until="networkidle")
    assert page.locator("main").count() == 1 and page.locator("h1").count() == 1, url
    injected = page.locator(INJECTED).evaluate_all("elements => elements.map(e => e.outerHTML)")
    assert injected == [], (url, injected)
    assert page.evaluate("window.__xss") is None, url
    assert dialogs == [], (url, dialogs)
    assert page.console_errors == [], (url, page.console_errors)  # a CSP violation is reported here
