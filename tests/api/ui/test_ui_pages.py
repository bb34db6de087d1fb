"""The dashboard's pages through the Flask app, on SQLite and PostgreSQL: what each shows, escaping, export."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import sqlalchemy as sa

from app.api.ui.sessions import THREAD_LIMIT
from app.models import Attempt, Request, Response, now_ms
from app.services.history.calls import TAIL_LIMIT, TAIL_OVERLAP_MS
from app.services.search.indexer import SearchIndexer
from tests.factories import answer_call, make_call, make_calls, make_session

MINUTE = 60_000
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def calls(db_session, database_url):
    now = now_ms()
    s = make_session(db_session, "chat/one", created_at=now - 55 * MINUTE, message_count=3)
    first = make_call(db_session, s, timestamp=now - 50 * MINUTE, provider="mock", model="alpha")
    first.openai_request = {"model": "mock/alpha", "messages": [
        {"role": "system", "content": "You are terse. " * 60}, {"role": "user", "content": "first question"}]}
    second = make_call(db_session, s, timestamp=now - 20 * MINUTE, status="error", error="upstream 502")
    second.openai_request = {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "first question"}, {"role": "assistant", "content": "hi"},
        {"role": "user", "content": XSS}]}
    db_session.add(Attempt(request_id=second.id, attempt=1, provider="openai", model="gpt-4o", status_code=502,
                           error="bad gateway", duration_ms=40, started_at=now - 20 * MINUTE))
    db_session.commit()
    SearchIndexer(database_url).run_once()
    return first, second


def html(client, path: str, status: int = 200) -> str:
    reply = client.get(path)
    assert reply.status_code == status, (path, reply.status_code, reply.get_data(as_text=True)[:500])
    assert reply.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self';")
    return reply.get_data(as_text=True)


@pytest.mark.parametrize("query", ["", "?range=1h", "?range=24h", "?range=7d", "?range=30d", "?range=custom"])
def test_overview_of_each_range(client, calls, query):
    if query == "?range=custom":
        query += f"&start={now_ms() - 100 * 86_400_000}&end={now_ms() + 60_000}"
    page = html(client, "/ui/" + query)
    assert page.count('class="tile"') == 7
    data = json.loads(re.search(r'id="chart-data">(.*?)</script>', page, re.S).group(1))
    assert sum(data["ok"]) + sum(data["error"]) == 2 and sum(data["error"]) == 1
    assert "openai/gpt-4o" in data["tokens"] and "chat/one" in page


def test_overview_refuses_a_bad_range(client, calls):
    assert "Invalid range" in html(client, "/ui/?range=custom&start=2030-01-01&end=2020-01-01", 400)


def test_calls_list_previews_filters_and_escapes(client, calls):
    first, second = calls
    page = html(client, "/ui/calls")
    assert page.index(f"/ui/calls/{second.id}") < page.index(f"/ui/calls/{first.id}")  # newest first
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    only = html(client, "/ui/calls?model=mock/alpha&status=&q=")  # empty fields are no filter
    assert f"/ui/calls/{first.id}" in only and f"/ui/calls/{second.id}\"" not in only
    assert 'value="mock/alpha"' in only
    assert f"/ui/calls/{second.id}" in html(client, "/ui/calls?q=onerror")
    assert "Invalid &#39;status&#39;" in html(client, "/ui/calls?status=maybe", 400)


def test_calls_pages_by_cursor_and_the_tail_gives_newer_rows(client, calls):
    first, second = calls
    page = html(client, "/ui/calls?limit=1")
    cursor = re.search(r'after=([A-Za-z0-9_-]+)', page).group(1)
    older = html(client, f"/ui/calls?limit=1&after={cursor}")
    assert f"/ui/calls/{first.id}" in older and "newest" in older
    tail = html(client, f"/ui/calls/tail?since={first.timestamp}.{first.id}")
    assert tail.index(f'id="call-{second.id}"') < tail.index(f'id="call-{first.id}"')  # newest first
    again = html(client, f"/ui/calls/tail?since={second.timestamp}.{second.id}")
    assert f'id="call-{second.id}"' in again and f'id="call-{first.id}"' not in again  # 30 minutes older
    assert html(client, "/ui/calls/tail?since=nope", 400)
    assert html(client, f"/ui/calls/tail?since=0.0&pending={first.id},x", 400)


def test_the_tail_shows_a_call_committed_late_with_an_earlier_timestamp(client, db_session):
    now = now_ms()
    s = make_session(db_session, "tail/late", created_at=now - MINUTE)
    shown = make_call(db_session, s, timestamp=now - 2_000)
    db_session.commit()
    since = f"{shown.timestamp}.{shown.id}"  # the newest row the page shows
    assert f'id="call-{shown.id}"' in html(client, f"/ui/calls/tail?since={since}")
    # Another worker commits a call it started a second before the one shown.
    late = make_call(db_session, s, timestamp=now - 3_000)
    too_late = make_call(db_session, s, timestamp=shown.timestamp - TAIL_OVERLAP_MS - 1)
    db_session.commit()
    assert late.id > shown.id
    tail = html(client, f"/ui/calls/tail?since={since}")
    assert tail.index(f'id="call-{shown.id}"') < tail.index(f'id="call-{late.id}"')
    assert f'id="call-{too_late.id}"' not in tail  # the overlap is bounded


def test_more_calls_between_two_polls_than_a_poll_shows_leave_a_row_that_leads_to_them(client, db_session):
    now = now_ms()
    s = make_session(db_session, "tail/burst", created_at=now - MINUTE)
    shown = make_call(db_session, s, timestamp=now - 5_000)
    burst = make_calls(db_session, s, timestamps=[now - 4_000 + 50 * n for n in range(TAIL_LIMIT + 12)])
    db_session.commit()
    tail = html(client, f"/ui/calls/tail?since={shown.timestamp}.{shown.id}&session_id=tail/burst")
    listed = [int(n) for n in re.findall(r'<tr id="call-(\d+)"', tail)]
    assert listed == burst[:-TAIL_LIMIT - 1:-1]  # the newest, newest first
    gap = re.search(r'<tr id="gap-(\d+)" class="gap" data-since="(\d+)\.(\d+)" data-href="([^"]+)"', tail)
    assert gap and int(gap[1]) == listed[-1] == int(gap[3])  # placed just after the oldest row shown
    unshown = html(client, gap[4].replace("&amp;", "&"))
    assert sorted(int(n) for n in re.findall(r'<tr id="call-(\d+)"', unshown)) == [shown.id, *burst[:12], listed[-1]]
    # Once caught up (the page's newest is the burst's newest), no gap is claimed.
    caught_up = html(client, f"/ui/calls/tail?since={now - 4_000 + 50 * (TAIL_LIMIT + 11)}.{burst[-1]}")
    assert 'class="gap"' not in caught_up


def test_a_pending_row_of_the_tail_turns_into_the_ended_call(client, db_session):
    now = now_ms()
    s = make_session(db_session, "tail/stream", created_at=now - 10 * MINUTE)
    # A stream that started long before the overlap behind the newest row.
    streaming = make_call(db_session, s, timestamp=now - 5 * MINUTE, stream=True, status=None)
    newest = make_call(db_session, s, timestamp=now - 1_000)
    db_session.commit()
    page = html(client, "/ui/calls?live=1")
    assert re.search(rf'<tr id="call-{streaming.id}"[^>]* data-pending="{streaming.id}"', page)
    poll = f"/ui/calls/tail?since={newest.timestamp}.{newest.id}&pending={streaming.id}"
    assert f'id="call-{streaming.id}"' not in html(client, poll)  # still streaming: nothing new
    answer_call(db_session, streaming, duration_ms=5 * MINUTE)
    db_session.commit()
    row = re.search(rf'<tr id="call-{streaming.id}".*?</tr>', html(client, poll), re.S).group(0)
    assert "data-pending" not in row and 'class="badge ok"' in row and "5 min" in row


def test_export_is_exactly_the_filtered_set(client, calls):
    first, second = calls
    rows = list(csv.DictReader(io.StringIO(client.get("/ui/calls/export.csv?status=error").get_data(as_text=True))))
    assert [int(r["id"]) for r in rows] == [second.id]
    lines = client.get("/ui/calls/export.jsonl?q=question").get_data(as_text=True).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [first.id, second.id]
    assert json.loads(lines[0])["request"]["model"] == "mock/alpha"


def test_one_call_with_cards_attempts_raw_json_and_curl(client, calls):
    first, second = calls
    page = html(client, f"/ui/calls/{second.id}")
    assert "bad gateway" in page and "upstream 502" in page  # the attempt and the error
    assert f'href="/ui/calls/{first.id}"' in page  # previous
    assert "curl -sS http://localhost/v1/chat/completions" in page and "&lt;script&gt;" in page
    folded = html(client, f"/ui/calls/{first.id}")
    assert "<details><summary>You are terse." in folded  # a long system prompt starts folded
    assert html(client, f"/ui/calls/{second.request_id}")  # by UUID too
    assert "No request" in html(client, "/ui/calls/99999", 404)
    assert "No call" in html(client, "/ui/calls/nope", 400)


def test_diff_marks_changed_messages(client, calls):
    first, second = calls
    page = html(client, f"/ui/diff?a={first.id}&b={second.id}")
    assert "<ins>" in page and "<del>" in page and "&lt;script&gt;" in page
    assert 'class="changed"><th>message 1 (system)' in page


def test_session_thread_has_idle_markers_totals_and_json(client, calls):
    page = html(client, "/ui/sessions/chat/one")
    assert page.count("idle for") == 1 and "idle for 30 min" in page  # 50 and 20 minutes ago
    assert page.index("first question") < page.index("&lt;script&gt;")
    body = client.get("/ui/session-json/chat/one")
    assert body.headers["Content-Disposition"].startswith("attachment")
    assert [item["id"] for item in body.get_json()["data"]] == [c.id for c in calls]
    assert html(client, "/ui/sessions/nope", 404)


def test_a_long_session_shows_its_newest_calls_and_downloads_them_all_in_order(client, db_session):
    count = THREAD_LIMIT + 201  # two pages of the conversation, and some
    now = now_ms()
    s = make_session(db_session, "chat/long", created_at=now - 60 * MINUTE)
    # Inserted out of time order (as two workers commit), read back by time.
    timestamps = [now - 50 * MINUTE + (i * 7919 % count) * 1000 for i in range(count)]
    ids = make_calls(db_session, s, timestamps=timestamps)
    db_session.commit()
    in_order = [call_id for _, call_id in sorted(zip(timestamps, ids, strict=True))]

    page = html(client, "/ui/sessions/chat/long")
    assert "The newest 1,000 of 1,201 calls are shown" in page and "JSON download</a> holds them all" in page
    assert f'href="/ui/calls/{in_order[-1]}"' in page and f'href="/ui/calls/{in_order[200]}"' not in page

    reply = client.get("/ui/session-json/chat/long")
    assert reply.is_streamed and reply.headers["Content-Disposition"].startswith("attachment")
    body = json.loads(reply.get_data(as_text=True))
    assert [item["id"] for item in body["data"]] == in_order
    assert body["total"] == count and body["has_more"] is False and body["next_cursor"] is None
    first_page = client.get("/v1/sessions/chat/long/requests?limit=1").get_json()
    assert body["data"][0] == first_page["data"][0]  # each call as the REST API gives it
    missing = client.get("/ui/session-json/nope")
    assert missing.status_code == 404 and "No session" in missing.get_data(as_text=True)


def test_providers_page_and_switching_with_the_csrf_token(client, calls):
    page = html(client, "/ui/providers")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused = client.post("/ui/providers/active", data={"name": "mock"})
    assert refused.status_code == 403
    done = client.post("/ui/providers/active", data={"name": "mock", "csrf_token": token})
    assert done.status_code == 303
    assert "active" in html(client, "/ui/providers").split('data-provider="mock"')[1].split("</tr>")[0]
    bad = client.post("/ui/providers/fallbacks", data={"fallbacks": "mock, mock", "csrf_token": token})
    assert bad.status_code == 400 and "listed twice" in bad.get_data(as_text=True)


def test_remote_clients_without_a_key_are_refused(client, calls):
    reply = client.get("/ui/", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert reply.status_code == 403 and "clients on this host" in reply.get_data(as_text=True)


def cards(page: str) -> list[tuple[str, str]]:
    """The conversation's cards of a page: (role, the card's HTML) in order."""
    return re.findall(r'<article class="card role-([\w-]+)">(.*?)</article>', page, flags=re.DOTALL)


def test_completions_responses_and_embeddings_calls_read_as_conversations(client, endpoint_calls):
    page = html(client, f"/ui/calls/{endpoint_calls['completion']}")
    assert "curl -sS http://localhost/v1/completions " in page  # copy as curl: the call's own endpoint
    completion = cards(page)
    assert [role for role, _ in completion] == ["user", "assistant"]
    assert "Summarise the harbour report" in completion[0][1]
    assert "Mock completion of: Summarise the harbour report" in completion[1][1]
    prompts = cards(html(client, f"/ui/calls/{endpoint_calls['completion_stream']}"))  # streamed, two prompts
    assert [role for role, _ in prompts] == ["user", "user", "assistant"] and "Tide table" in prompts[1][1]
    assert "Mock completion of: Lighthouse keeper log" in prompts[2][1]

    page = html(client, f"/ui/calls/{endpoint_calls['response']}")
    response = cards(page)
    assert [role for role, _ in response] == ["system", "user", "assistant"]
    assert "You are a ferry timetable clerk." in response[0][1]
    assert "When does the night ferry leave?" in response[1][1]
    assert "<b>ferry_times</b>" in response[2][1]  # the answer: a function call
    assert "1 tool definition(s): ferry_times" in page and "curl -sS http://localhost/v1/responses " in page
    followed = cards(html(client, f"/ui/calls/{endpoint_calls['response_stream']}"))  # streamed, a call answered
    assert [role for role, _ in followed] == ["system", "user", "assistant", "tool", "assistant"]
    assert "<b>ferry_times</b>" in followed[2][1]
    assert "result of call_ferry" in followed[3][1] and "23:40 from pier 4" in followed[3][1]
    assert "Mock reply to: When does the night ferry leave?" in followed[4][1]

    embeddings = cards(html(client, f"/ui/calls/{endpoint_calls['embeddings']}"))
    assert [role for role, _ in embeddings] == ["user", "user", "assistant"]
    assert "glacier melt rates" in embeddings[0][1] and "fjord depth survey" in embeddings[1][1]
    assert "2 vectors of 8 dimensions" in embeddings[2][1]


def test_long_responses_instructions_start_folded(client, flush_audit, db_session):
    reply = client.post("/v1/responses", json={"model": "mock/m", "instructions": "Check the tides. " * 50,
                                               "input": "Is it safe?"})
    assert reply.status_code == 200
    flush_audit()
    call_id = db_session.scalar(sa.select(Request.id))
    assert "<details><summary>Check the tides." in html(client, f"/ui/calls/{call_id}")


def test_the_session_thread_and_the_diff_show_non_chat_calls(client, endpoint_calls, flush_audit, db_session):
    first = db_session.scalar(sa.select(Response.response_id).where(Response.request_id == endpoint_calls["response"]))
    reply = client.post("/v1/responses", headers={"X-Session-Id": "endpoints"}, json={
        "model": "mock/m", "previous_response_id": first, "instructions": "You are a ferry timetable clerk.",
        "input": "And the morning one?"})
    assert reply.status_code == 200
    flush_audit()
    thread = html(client, "/ui/sessions/endpoints")
    for text in ("Summarise the harbour report", "Mock completion of: Lighthouse keeper log", "23:40 from pier 4",
                 "fjord depth survey", "2 vectors of 8 dimensions", "And the morning one?"):
        assert text in thread
    assert thread.count("You are a ferry timetable clerk.") == 1  # a continued response sends only its new turns

    diff = html(client, f"/ui/diff?a={endpoint_calls['response']}&b={endpoint_calls['embeddings']}")
    text = re.sub(r"<[^>]+>", "", diff)  # changed words are marked one run at a time
    assert re.search(r"tools offered</th><td class=\"text\">(<del>)?ferry_times", diff)  # named by itself
    assert "glacier melt rates" in text and "2 vectors of 8 dimensions" in text
