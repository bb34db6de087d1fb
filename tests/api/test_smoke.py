import sqlalchemy as sa

from app.models import Request, Response


def test_mock_completion_is_answered_and_recorded(client, db_session):
    reply = client.post(
        "/v1/chat/completions",
        json={"model": "mock/any", "messages": [{"role": "user", "content": "hello"}]},
    )
    assert reply.status_code == 200
    assert reply.get_json()["choices"][0]["message"]["content"] == "Mock reply to: hello"
    request_row = db_session.scalars(sa.select(Request)).one()
    response_row = db_session.scalars(sa.select(Response)).one()
    assert request_row.request_id == reply.headers["X-Request-Id"]
    assert response_row.request_id == request_row.id
    assert response_row.status == "ok"
