"""Content search on SQLite (FTS5 trigram) and PostgreSQL (pg_trgm): what finds a call and what does not."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import sqlalchemy as sa

from app.db import get_engine
from app.models import Request, Response, SearchDoc
from app.services.history.paging import PageRequest
from app.services.history.records import Filters, delete_request, list_requests, list_responses
from app.services.search import index, trigrams
from app.services.search.indexer import SearchIndexer
from app.services.search.query import like_ids, parse
from app.services.search.text import document
from tests.factories import make_call, make_session

T0 = 1_767_225_600_000


def _call(db, session, when: int, messages: list[dict], answer: str | None = "ok") -> int:
    request = make_call(db, session, timestamp=T0 + when)
    request.openai_request = {"model": "m", "messages": messages}
    if request.response is not None or answer is not None:
        response = db.scalar(sa.select(Response).where(Response.request_id == request.id))
        response.openai_response = {"choices": [{"message": {"role": "assistant", "content": answer}}]}
    db.flush()
    return request.id


@pytest.fixture
def calls(db_session, database_url):
    s = make_session(db_session, "s1", created_at=T0)
    ids = {
        "split": _call(db_session, s, 1, [
            {"role": "system", "content": "You file invoices."},
            {"role": "user", "content": "Which one is overdue?"},
        ], answer="The March invoice is overdue."),
        "chinese": _call(db_session, s, 2, [{"role": "user", "content": "请把这段话翻译成英文：你好世界"}],
                         answer="Hello world"),
        "russian": _call(db_session, s, 3, [{"role": "user", "content": "Привет, как дела?"}], answer="Хорошо"),
        "german": _call(db_session, s, 4, [{"role": "user", "content": "Schöne GRÜSSE aus Köln"}]),
        "tools": _call(db_session, s, 5, [
            {"role": "user", "content": [{"type": "text", "text": "weather please"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "rain, 4 degrees"},
        ], answer="It rains in Oslo."),
        "phrase": _call(db_session, s, 6, [{"role": "user", "content": "the due date is near; date due later"}]),
    }
    db_session.commit()
    assert SearchIndexer(database_url).run_once() == len(ids)
    return ids


def found(db, text: str) -> set[int]:
    page = list_requests(db, filters=Filters(search=parse(text)), page=PageRequest(limit=100))
    assert page.total == len(page.items)
    return {request.id for request in page.items}


@pytest.mark.parametrize(("query", "names"), [
    ("invoice overdue march", {"split"}),  # the words stand in the system, user and answer messages
    ("invoices overdue", {"split"}),
    ("invoice nowhere", set()),
    ('"march invoice"', {"split"}),
    ('"invoice march"', set()),
    ("你好世界", {"chinese"}),
    ("翻译", {"chinese"}),  # two characters: under a trigram, checked in the text
    ("ПРИВЕТ хорошо", {"russian"}),
    ("grüsse köln", {"german"}),  # ß and SS fold alike
    ("get_weather oslo", {"tools"}),
    ("4 degrees", {"tools"}),
    ('"due date"', {"phrase"}),
    ('"date due"', {"phrase"}),
    ("due", {"phrase", "split"}),  # a substring: "overdue" holds it
    ('"100%" _', set()),  # LIKE wildcards are text, not patterns
])
def test_search_finds_calls_holding_every_term(db_session, calls, query, names):
    assert found(db_session, query) == {calls[name] for name in names}


def test_search_combines_with_other_filters_and_the_responses_list(db_session, calls):
    filters = Filters(search=parse("oslo"), start_ms=T0 + 5, status="ok")
    page = list_requests(db_session, filters=filters, page=PageRequest())
    assert [r.id for r in page.items] == [calls["tools"]]
    earlier = Filters(search=parse("oslo"), end_ms=T0 + 4)
    assert list_requests(db_session, filters=earlier, page=PageRequest()).total == 0
    responses = list_responses(db_session, filters=Filters(search=parse("привет")), page=PageRequest())
    assert [r.request_id for r in responses.items] == [calls["russian"]]


def test_a_call_is_indexed_once_its_response_is_recorded(db_session, database_url):
    s = make_session(db_session, "s2", created_at=T0)
    pending = make_call(db_session, s, timestamp=T0, status=None)
    pending.openai_request = {"messages": [{"role": "user", "content": "still thinking"}]}
    db_session.commit()
    indexer = SearchIndexer(database_url)
    assert indexer.run_once() == 0
    assert found(db_session, "thinking") == set()
    db_session.add(Response(
        request_id=pending.id, session_id="s2", response_id="r-late", model="m", timestamp=T0 + 1,
        openai_response={"choices": [{"message": {"content": "finally answered"}}]}, status="ok",
    ))
    db_session.commit()
    assert indexer.run_once() == 1
    assert found(db_session, "thinking answered") == {pending.id}
    assert indexer.run_once() == 0


def test_deleting_a_call_takes_its_text_out_of_the_index(db_session, calls):
    delete_request(db_session, calls["russian"])
    db_session.commit()
    assert found(db_session, "привет") == set()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(SearchDoc)) == len(calls) - 1


def test_a_call_deleted_while_its_text_is_indexed_is_left_out(db_session, database_url):
    """A prune deletes calls between the indexer's read and its write: the others are written, no error."""
    s = make_session(db_session, "s4", created_at=T0)
    kept, pruned = make_call(db_session, s, timestamp=T0), make_call(db_session, s, timestamp=T0 + 1)
    db_session.commit()
    docs = [{"request_id": kept.id, "body": "kept text"}, {"request_id": pruned.id, "body": "pruned text"}]
    delete_request(db_session, pruned.id)
    db_session.commit()
    index._insert(get_engine(database_url), docs)
    assert found(db_session, "text") == {kept.id}


def test_reindex_indexes_the_history_that_predates_the_index(db_session, database_url):
    s = make_session(db_session, "s3", created_at=T0)
    for n in range(25):
        make_call(db_session, s, timestamp=T0 + n)
    db_session.commit()
    seen: list[int] = []
    assert index.reindex(get_engine(database_url), progress=seen.append) == 25
    assert sum(seen) == 25
    state = index.state(get_engine(database_url))
    assert (state.calls, state.indexed, state.accelerated) == (25, 25, True)
    assert index.reindex(get_engine(database_url)) == 0


def test_the_index_holds_text_not_json():
    body = {"model": "m", "messages": [{"role": "user", "content": "Ünïcode \u00e9t\u00e9"}]}
    text = document(body, {"choices": [{"message": {"content": "réponse"}}]})
    assert text == "ünïcode été\nréponse"
    assert "model" not in text and "{" not in text


@pytest.mark.parametrize("query", ["", "   ", '""', "x" * 501])
def test_empty_or_huge_queries_are_refused(query):
    with pytest.raises(ValueError):
        parse(query)


def test_the_model_filter_takes_the_name_the_client_sent(db_session):
    s = make_session(db_session, "s4", created_at=T0)
    routed = make_call(db_session, s, timestamp=T0, provider="mock", model="alpha")
    named = make_call(db_session, s, timestamp=T0 + 1, provider="openrouter", model="mock/alpha")
    other = make_call(db_session, s, timestamp=T0 + 2, provider="lm-studio", model="alpha")
    db_session.commit()
    for status in (None, "ok"):
        page = list_requests(db_session, filters=Filters(model="mock/alpha", status=status), page=PageRequest())
        assert {r.id for r in page.items} == {routed.id, named.id}
        assert page.total == 2
    page = list_requests(db_session, filters=Filters(model="alpha"), page=PageRequest())
    assert {r.id for r in page.items} == {routed.id, other.id}
    assert db_session.get(Request, other.id) is not None


def test_one_indexer_works_at_a_time(db_session, database_url):
    s = make_session(db_session, "s5", created_at=T0)
    make_call(db_session, s, timestamp=T0)
    db_session.commit()
    engine = get_engine(database_url)
    with index._exclusive(engine) as held:
        assert held
        assert index.index_batch(engine, after=0) is None  # another holds the lock: its turn
        assert SearchIndexer(database_url).run_once() == 0
    assert SearchIndexer(database_url).run_once() == 1


def test_the_background_loop_indexes_new_calls_and_stops(db_session, database_url):
    indexer = SearchIndexer(database_url, interval_s=0.05)
    indexer.start()
    try:
        s = make_session(db_session, "s6", created_at=T0)
        request = make_call(db_session, s, timestamp=T0)
        request.openai_request = {"messages": [{"role": "user", "content": "written while it runs"}]}
        db_session.commit()
        deadline = time.monotonic() + 10
        while not found(db_session, "while it runs") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert found(db_session, "while it runs") == {request.id}
    finally:
        indexer.stop()
    assert indexer._thread is None


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # pg_trgm is PostgreSQL's own
def test_without_pg_trgm_searches_still_answer_and_accelerate_restores_the_index(db_session, calls, database_url):
    engine = get_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_search_docs_body_trgm")
    try:
        assert index.state(engine).accelerated is False
        assert found(db_session, "invoice overdue march") == {calls["split"]}
        assert found(db_session, "你好世界") == {calls["chinese"]}
    finally:
        index.accelerate(engine)
    assert index.state(engine).accelerated is True
    assert found(db_session, "invoice overdue march") == {calls["split"]}


def test_a_search_matching_many_calls_checks_rows_in_order_and_caps_its_total(db_session, database_url, monkeypatch):
    monkeypatch.setattr("app.services.history.matching.SEARCH_COUNT_CAP", 3)
    s = make_session(db_session, "s7", created_at=T0)
    ids = []
    for n in range(6):
        ids.append(_call(db_session, s, 10 + n, [{"role": "user", "content": f"common word {n} ok"}]))
    errored = make_call(db_session, s, timestamp=T0 + 30, status="error")
    errored.openai_request = {"messages": [{"role": "user", "content": "common word, failed"}]}
    db_session.commit()
    SearchIndexer(database_url).run_once()
    page = list_requests(db_session, filters=Filters(search=parse("common word")), page=PageRequest(limit=2))
    assert page.total == 4  # more than 3
    assert [r.id for r in page.items] == [errored.id, ids[5]]
    nxt = list_requests(db_session, filters=Filters(search=parse("common word")),
                        page=PageRequest(limit=10, after=page.next_cursor))
    assert [r.id for r in nxt.items] == ids[::-1][1:]
    failed = list_requests(db_session, filters=Filters(search=parse("common"), status="error"), page=PageRequest())
    assert [r.id for r in failed.items] == [errored.id]
    assert list_requests(db_session, filters=Filters(search=parse("word 3")), page=PageRequest()).total == 1


@pytest.mark.parametrize(("terms", "common", "parts"), [
    (("ticket-123456",), {"tic", "ick", "cke", "ket"}, ("123456",)),
    (("ticketing",), {"tic", "ick", "cke", "ket", "ing"}, ("etin",)),  # the run of rare trigrams
    (("database", "ticket-42x"), {"dat", "ata", "tab", "aba", "bas", "ase", "tic", "ick", "cke", "ket"}, ("42x",)),
    (("ticket", "ok"), {"tic", "ick", "cke", "ket"}, None),  # nothing rare: the terms whole
    (("ticket-123456",), set(), None),  # nothing known
    (("get_weather",), {"wea"}, ("get", "eather")),  # _ is no letter to pg_trgm
])
def test_the_index_is_asked_about_the_rare_runs_of_each_term(terms, common, parts):
    assert trigrams.rare_parts(terms, frozenset(common)) == parts


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # pg_trgm is PostgreSQL's own
def test_a_term_with_common_trigrams_is_found_through_its_rare_part(db_session, database_url, monkeypatch):
    """Every call says "ticket-": the index is asked about the number, each candidate checked whole."""
    monkeypatch.setattr(trigrams, "_cache", {})
    monkeypatch.setattr(trigrams, "_refreshing", set())
    s = make_session(db_session, "tickets", created_at=T0)
    ids = {}
    for n in range(trigrams.MIN_SAMPLE + 40):
        ids[n] = _call(db_session, s, n, [{"role": "user", "content": f"About ticket-{n:06d}: the deploy failed."}],
                       answer=f"Ticket {n:06d} is fixed.")
    # The number without the word, and the word with another number: found by the part, not the term.
    decoy = _call(db_session, s, 900, [{"role": "user", "content": "order 000123, ticket-999999"}])
    db_session.commit()
    index.reindex(get_engine(database_url))
    assert trigrams.common_trigrams(db_session) == frozenset()  # never measured: not waited for
    deadline = time.monotonic() + 10
    while not trigrams.common_trigrams(db_session) and time.monotonic() < deadline:
        time.sleep(0.05)  # measured in the background meanwhile
    common = trigrams.common_trigrams(db_session)
    assert {"tic", "ket", "dep"} <= common and "012" not in common
    assert trigrams.refresh(get_engine(database_url)) == common
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    sa.event.listen(db_session.get_bind(), "before_cursor_execute", listener)
    try:
        assert found(db_session, "ticket-000123") == {ids[123]}
    finally:
        sa.event.remove(db_session.get_bind(), "before_cursor_execute", listener)
    assert any("strpos(search_docs.body" in sql for sql in statements)  # the lists took the rare part
    assert found(db_session, "icket-000123 DEPLOY") == {ids[123]}
    assert found(db_session, '"ticket 000123 is fixed"') == {ids[123]}
    assert found(db_session, "000123") == {ids[123], decoy}
    assert found(db_session, "ticket-999999") == {decoy}
    assert found(db_session, "ticket-0001") == {ids[n] for n in range(100, 200)}
    # The index is asked about the number only ("000" and "001" are common too).
    search = parse("ticket-000123")
    probed = like_ids(replace(search, probes=trigrams.rare_parts(search.terms, common)))
    sql = str(probed.compile(dialect=db_session.get_bind().dialect, compile_kwargs={"literal_binds": True}))
    db_session.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a small table: as on a big one
    plan = db_session.execute(sa.text("EXPLAIN " + sql.replace("%%", "%"))).scalars().all()
    assert [line.strip() for line in plan if "Index Cond" in line] == ["Index Cond: (body ~~ '%0123%'::text)"], plan


@pytest.mark.parametrize(("query", "names"), [
    ("harbour report", {"completion"}),  # a completion's prompt
    ("mock completion harbour", {"completion"}),  # and its answer
    ("tide table", {"completion_stream"}),  # the second of two prompts
    ("mock completion lighthouse", {"completion_stream"}),  # a streamed completion's answer
    ("ferry timetable clerk", {"response", "response_stream"}),  # a response's instructions
    ("night ferry", {"response", "response_stream"}),  # input messages, string or input_text parts
    ("ferry_times route", {"response", "response_stream"}),  # a function call answered, one given back
    ("pier 4", {"response_stream"}),  # a function call's output
    ("mock reply night ferry", {"response_stream"}),  # a streamed response's output text
    ("fjord depth survey", {"embeddings"}),  # an embeddings input
    ("embedding", set()),  # the vectors and the JSON around them are not text
])
def test_completions_responses_and_embeddings_are_found_by_their_text(
    db_session, database_url, endpoint_calls, query, names
):
    assert SearchIndexer(database_url).run_once() == len(endpoint_calls)
    assert found(db_session, query) == {endpoint_calls[name] for name in names}
