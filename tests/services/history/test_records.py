"""History services used by the API and the CLI: ids, cursors, the query shapes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.models import Request
from app.services.history import records
from app.services.history import sessions as session_history
from app.services.history.paging import Cursor, PageRequest
from tests.factories import make_call, make_session

T0 = 1_700_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1), ("123456789012345678", 123456789012345678),
        ("3F2504E0-4F89-11D3-9A0C-0305E82C3301", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
    ],
)
def test_record_ids(text, expected):
    assert records.parse_record_id(text) == expected


@pytest.mark.parametrize(
    "text", ["0", "01", "-1", "1234567890123456789", "1.0", "٣", "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}", ""]
)
def test_not_record_ids(text):
    with pytest.raises(ValueError):
        records.parse_record_id(text)


def test_cursors_round_trip_and_refuse_tampering():
    cursor = Cursor(kind="requests", sort_value=T0, tiebreak=42)
    assert Cursor.decode(cursor.encode(), kind="requests") == cursor
    session_cursor = Cursor(kind="sessions", sort_value=T0, tiebreak="team/alice")
    assert Cursor.decode(session_cursor.encode(), kind="sessions") == session_cursor
    for bad in (cursor.encode()[:-2], Cursor(kind="x", sort_value=1, tiebreak=1).encode(), "e30", "!!"):
        with pytest.raises(ValueError):
            Cursor.decode(bad, kind="requests")
    with pytest.raises(ValueError):
        Cursor.decode(cursor.encode(), kind="responses")


def test_list_rows_leave_the_bodies_unloaded(db_session):
    make_call(db_session, make_session(db_session, created_at=T0), timestamp=T0)
    db_session.commit()
    db_session.expunge_all()
    page = records.list_requests(db_session, filters=records.Filters(), page=PageRequest())
    state = sa.inspect(page.items[0])
    assert {"openai_request", "provider_request"} <= state.unloaded
    assert page.items[0].response.status == "ok"
    full = records.list_requests(db_session, filters=records.Filters(), page=PageRequest(), bodies=True)
    assert full.items[0].openai_request["model"] == "gpt-4o"


def test_missing_records_raise_not_found_with_their_code(db_session):
    for call, code in (
        (lambda: session_history.get_session(db_session, "x"), "session_not_found"),
        (lambda: records.get_request(db_session, 7), "request_not_found"),
        (lambda: records.get_response(db_session, 7), "response_not_found"),
        (lambda: session_history.delete_session(db_session, "x"), "session_not_found"),
    ):
        with pytest.raises(records.NotFound) as raised:
            call()
        assert raised.value.code == code


def test_purge_keeps_every_request(db_session):
    old = make_session(db_session, "old", created_at=T0, expires_at=T0 + 1, chat_id="c")
    make_call(db_session, old, timestamp=T0)
    make_session(db_session, "empty", created_at=T0, expires_at=T0 + 1)
    db_session.commit()
    result = session_history.purge_expired_sessions(db_session, now_ms=T0 + 10)
    db_session.commit()
    assert (result.deleted, result.cleared) == (1, 1)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Request)) == 1


@pytest.mark.parametrize(
    "filters",
    [
        records.Filters(status="error"),
        records.Filters(min_duration_ms=500, model="m1"),
        records.Filters(finish_reason="length", stream=True),
        records.Filters(has_error=False, session_id="busy"),
    ],
)
def test_both_page_strategies_agree(db_session, monkeypatch, filters):
    """Few matching responses: pages start from their ids; many: each request's response is checked."""
    busy = make_session(db_session, "busy", created_at=T0)
    for n in range(30):
        make_call(db_session, busy, timestamp=T0 + n, model=f"m{n % 3}", stream=n % 2 == 0,
                  status="error" if n % 4 == 0 else "ok", finish_reason="length" if n % 5 == 0 else "stop",
                  duration_ms=n * 50)
    db_session.commit()
    pages = {}
    for few in (0, 1000):
        monkeypatch.setattr(records, "FEW_MATCHES", few)
        walked, after = [], None
        while True:
            page = records.list_requests(db_session, filters=filters, page=PageRequest(limit=4, after=after))
            walked += [request.id for request in page.items]
            if not page.has_more:
                break
            after = page.next_cursor
        pages[few] = (walked, page.total)
    assert pages[0] == pages[1000]
    assert pages[0][1] == len(pages[0][0]) > 0


def test_list_totals_are_exact_up_to_the_cap_then_say_more_than_it(db_session, monkeypatch):
    monkeypatch.setattr("app.services.history.paging.COUNT_CAP", 3)
    s = make_session(db_session, "capped", created_at=T0)
    for n in range(5):
        make_call(db_session, s, timestamp=T0 + n, model="gpt-4o" if n < 2 else "gpt-4o-mini")
    db_session.commit()
    everything = records.list_requests(db_session, filters=records.Filters(), page=PageRequest(limit=2))
    assert (everything.total, len(everything.items), everything.has_more) == (4, 2, True)  # more than 3
    few = records.list_requests(db_session, filters=records.Filters(model="gpt-4o"), page=PageRequest())
    assert few.total == 2
    answered = records.list_responses(db_session, filters=records.Filters(status="ok"), page=PageRequest(limit=4))
    assert (answered.total, len(answered.items)) == (4, 4)
    assert session_history.session_requests(db_session, "capped", page=PageRequest(limit=4)).total == 4
    # A first page holding every row says how many it holds, past the cap too.
    assert session_history.session_requests(db_session, "capped", page=PageRequest()).total == 5


def test_a_first_page_holding_every_row_is_its_own_total(db_session):
    """No second statement counts them: one committed in between would make the total disagree."""
    s = make_session(db_session, "whole", created_at=T0)
    for n in range(3):
        make_call(db_session, s, timestamp=T0 + n)
    db_session.commit()
    statements = []
    engine = db_session.get_bind()
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        whole = records.list_requests(db_session, filters=records.Filters(session_id="whole"), page=PageRequest())
        counted = [sql for sql in statements if "count(" in sql.lower()]
        part = records.list_requests(db_session, filters=records.Filters(session_id="whole"),
                                     page=PageRequest(limit=2))
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert (whole.total, len(whole.items), counted) == (3, 3, [])
    assert (part.total, len(part.items), part.has_more) == (3, 2, True)
    assert any("count(" in sql.lower() for sql in statements)
