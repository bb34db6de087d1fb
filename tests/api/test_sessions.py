"""/v1/sessions: list, detail, the conversation, deleting one, purging expired ones."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.models import ChatSession, Request, Response, now_ms
from tests.factories import make_call, make_session

T0 = 1_700_000_000_000


@pytest.fixture
def sessions(db_session):
    made = [
        make_session(db_session, f"s{i}", created_at=T0 + i * 1000, chat_id=f"chat-{i}") for i in range(5)
    ]
    for n in range(3):
        make_call(db_session, made[1], timestamp=T0 + 10_000 + n, model=f"m{n}")
    db_session.commit()
    return [session.id for session in made]


def test_list_is_newest_first_in_the_original_shape(client, sessions):
    body = client.get("/v1/sessions").get_json()
    assert [row["id"] for row in body["data"]] == sessions[::-1]
    assert (body["object"], body["total"], body["limit"], body["offset"], body["has_more"]) == (
        "list", 5, 50, 0, False,
    )
    assert set(body["data"][0]) == {
        "id", "chat_id", "parent_id", "first_user_message", "message_count", "created_at",
        "last_accessed", "expires_at",
    }


def test_list_pages_with_offset_and_cursor(client, sessions):
    page = client.get("/v1/sessions?limit=2&offset=2").get_json()
    assert [row["id"] for row in page["data"]] == ["s2", "s1"]
    seen, url = [], "/v1/sessions?limit=2&order=asc"
    while url:
        body = client.get(url).get_json()
        seen += [row["id"] for row in body["data"]]
        url = f"/v1/sessions?limit=2&order=asc&after={body['next_cursor']}" if body["next_cursor"] else None
    assert seen == sessions


def test_detail_counts_the_requests(client, sessions):
    body = client.get("/v1/sessions/s1").get_json()
    assert (body["id"], body["chat_id"], body["request_count"]) == ("s1", "chat-1", 3)
    assert client.get("/v1/sessions/s0").get_json()["request_count"] == 0


def test_session_ids_may_hold_slashes(client, db_session):
    make_session(db_session, "team/alice", created_at=T0)
    db_session.commit()
    assert client.get("/v1/sessions/team/alice").get_json()["id"] == "team/alice"
    assert client.get("/v1/sessions/team/alice/stats").get_json()["session_id"] == "team/alice"


@pytest.mark.parametrize(
    "path", ["/v1/sessions/nope", "/v1/sessions/nope/stats", "/v1/sessions/nope/requests"]
)
def test_unknown_session_is_404(client, path):
    reply = client.get(path)
    assert reply.status_code == 404
    assert reply.get_json()["error"] == {
        "message": "No session with id 'nope'.", "type": "invalid_request_error", "param": "id",
        "code": "session_not_found",
    }


@pytest.mark.parametrize("bad", ["x" * 129, "tab%09in"])
def test_invalid_session_id_is_400(client, bad):
    reply = client.get(f"/v1/sessions/{bad}")
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (400, "invalid_id")


def test_the_conversation_is_oldest_first_with_full_responses(client, sessions):
    body = client.get("/v1/sessions/s1/requests").get_json()
    assert [row["model"] for row in body["data"]] == ["m0", "m1", "m2"]
    turn = body["data"][0]
    assert turn["openai_request"]["messages"][0]["content"] == "hello"
    assert turn["response"]["openai_response"] == {"choices": [{"message": {"content": "hi"}}]}
    assert turn["response"]["request_id"] == turn["id"]
    assert "response_summary" not in turn
    newest_first = client.get("/v1/sessions/s1/requests?order=desc&limit=2").get_json()
    assert [row["model"] for row in newest_first["data"]] == ["m2", "m1"]
    rest = client.get(f"/v1/sessions/s1/requests?order=desc&after={newest_first['next_cursor']}")
    assert [row["model"] for row in rest.get_json()["data"]] == ["m0"]


def test_delete_removes_the_session_and_its_history(client, db_session, sessions):
    assert client.delete("/v1/sessions/s1").get_json() == {"deleted": True, "session_id": "s1"}
    assert client.get("/v1/sessions/s1").status_code == 404
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Request)) == 0
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Response)) == 0
    assert client.delete("/v1/sessions/s1").get_json()["error"]["code"] == "session_not_found"


def test_purge_deletes_only_expired_sessions_without_history(client, db_session):
    now = now_ms()
    make_session(db_session, "live", created_at=now, chat_id="c-live")
    make_session(db_session, "expired-empty", created_at=T0, expires_at=T0 + 1)
    make_session(db_session, "imported-empty", created_at=T0, expires_at=T0 + 1, retained=True)
    with_history = make_session(db_session, "expired-kept", created_at=T0, expires_at=T0 + 1,
                                chat_id="c-old", parent_id="p-old")
    make_call(db_session, with_history, timestamp=T0)
    db_session.commit()
    assert client.delete("/v1/sessions").get_json() == {"deleted": 1, "cleared": 1}
    db_session.expire_all()
    assert db_session.get(ChatSession, "expired-empty") is None
    assert db_session.get(ChatSession, "imported-empty") is not None  # imported: never purged
    kept = db_session.get(ChatSession, "expired-kept")
    assert (kept.chat_id, kept.parent_id) == (None, None)
    assert client.get("/v1/sessions/expired-kept/requests").get_json()["total"] == 1
    assert db_session.get(ChatSession, "live").chat_id == "c-live"
    assert client.delete("/v1/sessions").get_json() == {"deleted": 0, "cleared": 0}
