"""``history``, ``show``, ``sessions``, ``sessions show``: the audit trail from a terminal."""

from __future__ import annotations

import json

import pytest

from app.models import now_ms
from tests.cli.conftest import failed
from tests.factories import make_call, make_session

HOUR = 3_600_000


@pytest.fixture
def calls(db_session):
    """Three calls in one session, an hour apart, the last one failed; and one call in another session."""
    now = now_ms()
    first = make_session(db_session, "s-1", created_at=now - 5 * HOUR, first_user_message="hello there")
    made = [
        make_call(db_session, first, timestamp=now - 3 * HOUR, model="gpt-4o", provider="openai"),
        make_call(db_session, first, timestamp=now - 2 * HOUR, model="gpt-4o", provider="openai", stream=True),
        make_call(db_session, first, timestamp=now - 1 * HOUR, model="qwen", provider="qwen", status="error",
                  error="upstream down", prompt_tokens=None, completion_tokens=None),
    ]
    other = make_session(db_session, "s-2", created_at=now - 10 * HOUR)
    made.append(make_call(db_session, other, timestamp=now - 10 * HOUR, model="llama", provider="lm-studio"))
    db_session.commit()
    return made


def ids_in(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines()[1:]]


def test_history_is_newest_first_with_its_columns(run, calls):
    result = run("history")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "time", "provider", "model", "stream", "status", "tokens", "duration"]
    assert ids_in(result.stdout) == [str(c.id) for c in reversed(calls[:3])] + [str(calls[3].id)]
    assert lines[1].split()[3:] == ["qwen", "qwen", "no", "error", "-", "100", "ms"]
    assert lines[2].split()[3:] == ["openai", "gpt-4o", "yes", "ok", "15", "100", "ms"]
    assert result.stderr == "4 of 4 requests\n"


@pytest.mark.parametrize(("args", "expected"), [
    (("-l", "1"), [2]),
    (("--session", "s-2"), [3]),
    (("--model", "gpt-4o"), [1, 0]),
    (("--provider", "qwen"), [2]),
    (("--status", "error"), [2]),
    (("--status", "ok", "--since", "150m"), [1]),
    (("--since", "4h"), [2, 1, 0]),
])
def test_history_filters(run, calls, args, expected):
    result = run("history", *args)
    assert ids_in(result.stdout) == [str(calls[i].id) for i in expected]


def test_history_since_an_iso_time_and_json(run, calls):
    data = json.loads(run("history", "--since", "2000-01-01T00:00:00Z", "--json").stdout)
    assert data["total"] == 4
    assert [row["request_id"] for row in data["data"]][0] == calls[2].request_id
    assert data["data"][0]["error"] == "upstream down"


@pytest.mark.parametrize(("args", "message"), [
    (("--since", "yesterday"), "invalid --since 'yesterday'"),
    (("--status", "meh"), "Invalid value for '--status'"),
    (("-l", "0"), "Invalid value for '-l'"),
])
def test_history_bad_options(run, calls, args, message):
    result = run("history", *args)
    if args[0] == "--since":
        assert failed(result, message)
    else:  # click's own usage errors exit 2
        assert result.exit_code == 2 and message in result.stderr


def test_show_by_id_with_response_and_conversation(run, calls):
    result = run("show", str(calls[1].id))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(f"Request {calls[1].request_id} (#{calls[1].id})")
    assert "session s-1, openai / gpt-4o, streamed" in out
    assert "  user: hello" in out and "  assistant: hi" in out
    assert "Response ok (200, stop), 15 tokens, 100 ms" in out
    conversation = out.split("Conversation around it")[1].splitlines()[1:]
    assert [line[0] for line in conversation] == [" ", " ", ">", ">", " ", " "]


def test_show_json_by_uuid_and_by_a_uuid_prefix(run, calls):
    data = json.loads(run("show", calls[2].request_id, "--json").stdout)
    assert (data["response"]["status"], data["response"]["error"]) == ("error", "upstream down")
    assert [turn["this"] for turn in data["conversation"]] == [False, False, True]
    assert json.loads(run("show", calls[2].request_id[:13], "--json").stdout)["id"] == calls[2].id


def test_show_a_missing_request(run, calls):
    assert failed(run("show", "999999"), "No request with id 999999")
    assert failed(run("show", "zz-not-an-id"), "No request with id 'zz-not-an-id'")
    assert failed(run("show", "00000000-0000-0000-0000-000000000000"), "No request with id")


def test_sessions_lists_newest_first(run, calls):
    result = run("sessions")
    assert result.exit_code == 0, result.output
    assert ids_in(result.stdout) == ["s-1", "s-2"]
    assert "hello there" in result.stdout.splitlines()[1]
    assert [s["id"] for s in json.loads(run("sessions", "-l", "1", "--json").stdout)["data"]] == ["s-1"]


def test_sessions_show_is_a_transcript(run, calls):
    result = run("sessions", "show", "s-1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Session s-1: 3 requests, started ")
    assert result.stdout.count("] user:\n  hello") == 3
    assert "[openai / gpt-4o, ok, 15 tokens, 100 ms] assistant:\n  hi" in result.stdout
    assert "[qwen / qwen, error, - tokens, 100 ms] assistant:\n  hi" in result.stdout
    data = json.loads(run("sessions", "show", "s-1", "--json").stdout)
    assert (data["request_count"], len(data["turns"])) == (3, 3)


def test_sessions_show_a_missing_session(run, calls):
    assert failed(run("sessions", "show", "nope"), "No session with id 'nope'")


def test_history_search_and_the_search_index_commands(run, db_session):
    from app.models import Response
    from tests.factories import make_call, make_session

    session = make_session(db_session, "search-cli")
    for n, text in enumerate(("Где мой заказ?", "where is my parcel")):
        request = make_call(db_session, session, timestamp=1_767_225_600_000 + n)
        request.openai_request = {"messages": [{"role": "user", "content": text}]}
        db_session.flush()
        assert db_session.query(Response).filter_by(request_id=request.id).one()
    db_session.commit()
    assert "0 of 2 calls indexed" in run("search", "status").output
    reindexed = run("search", "reindex")
    assert reindexed.exit_code == 0, reindexed.output
    assert "Indexed 2 calls." in reindexed.output
    found = run("history", "--search", "ЗАКАЗ", "--json")
    assert found.exit_code == 0, found.output
    assert '"total": 1' in found.output
    assert run("history", "--search", '"parcel where"', "--json").output.count('"id"') == 0
    bad = run("history", "--search", '""')
    assert bad.exit_code == 2 and "--search" in bad.output


def test_show_gives_the_calls_trace_id_when_it_was_traced(run, calls, db_session):
    assert "trace " not in run("show", str(calls[0].id)).stdout
    assert json.loads(run("show", str(calls[0].id), "--json").stdout)["trace_id"] is None
    calls[0].trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    db_session.commit()
    assert "  trace 4bf92f3577b34da6a3ce929d0e0e4736" in run("show", str(calls[0].id)).stdout
    assert json.loads(run("show", str(calls[0].id), "--json").stdout)["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
