"""Mid-stream read timeouts under gunicorn's gevent workers, kept by the stall watch (no timer per read)."""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from llmock.scenarios import Reply, StreamFault

from tests.e2e.helpers import llmock_gateway_env, rows_for_session

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

MESSAGES = [{"role": "user", "content": "Say something about gateways."}]


@pytest.fixture(scope="module")
def gateway(start_gateway, upstream, e2e_database_url):
    env = llmock_gateway_env(e2e_database_url, upstream, REQUEST_TIMEOUT="1500")
    with start_gateway(env) as base:
        yield base


def stream(gateway: str, session_id: str) -> list[bytes]:
    reply = requests.post(
        gateway + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        headers={"X-Session-Id": session_id}, timeout=30,
    )
    assert reply.status_code == 200
    return [event for event in reply.content.split(b"\n\n") if event]


def test_an_upstream_silent_past_the_read_timeout_mid_stream_ends_the_stream(
    gateway, e2e_database_url, fresh_upstream
):
    session_id = f"e2e-{uuid.uuid4()}"
    fresh_upstream.state.scenarios.add(Reply(text="word " * 50))
    fresh_upstream.state.scenarios.add(StreamFault("stall", after_chunks=2, stall_seconds=4.0))
    events = stream(gateway, session_id)
    assert events[-1] == b"data: [DONE]"
    error = json.loads(events[-2].removeprefix(b"data: "))["error"]
    assert "sent nothing for 1.5s mid-stream" in error["message"]
    relayed = "".join(
        choice["delta"].get("content") or ""
        for event in events[:-2] for choice in json.loads(event.removeprefix(b"data: "))["choices"]
    )
    [row] = rows_for_session(e2e_database_url, session_id)
    assert row.response.status == "incomplete" and row.response.client_disconnected is False
    assert row.response.openai_response["choices"][0]["message"]["content"] == relayed
    assert len(relayed) < len("word " * 50)


def test_an_upstream_silent_for_less_than_the_read_timeout_is_waited_for(gateway, e2e_database_url, fresh_upstream):
    session_id = f"e2e-{uuid.uuid4()}"
    fresh_upstream.state.scenarios.add(Reply(text="word " * 50))
    fresh_upstream.state.scenarios.add(StreamFault("stall", after_chunks=2, stall_seconds=0.5))
    events = stream(gateway, session_id)
    assert events[-1] == b"data: [DONE]"
    assert not any(b'"error"' in event for event in events)
    [row] = rows_for_session(e2e_database_url, session_id)
    assert row.response.status == "ok"
    assert row.response.openai_response["choices"][0]["message"]["content"].strip() == ("word " * 50).strip()
