"""Two real llmock upstreams behind a real gunicorn gateway: the first fails, the second answers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import openai
import pytest
import requests
from llmock.scenarios import Fail, Reply, StreamFault
from llmock.testing import LLMockServer

from app.services.admin.live_registry import CHECK_INTERVAL_S
from tests.e2e.helpers import rows_for_session

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

MESSAGES = [{"role": "user", "content": "Which upstream are you?"}]
SECOND_ANSWER = "The second upstream answered."


@pytest.fixture(scope="module")
def second_upstream() -> Iterator[LLMockServer]:
    with LLMockServer() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(start_gateway, upstream, second_upstream, e2e_database_url):
    env = {
        "DATABASE_URL": e2e_database_url,
        "DEFAULT_PROVIDER": "lm-studio",
        "LM_STUDIO_BASE_URL": upstream.base_url("openai"),
        "OPENAI_BASE_URL": second_upstream.base_url("openai"),
        "REQUEST_TIMEOUT": "5000",
    }
    with start_gateway(env) as base:
        reply = requests.put(base + "/v1/settings", json={"fallback_providers": ["openai"]}, timeout=5)
        assert reply.status_code == 200, reply.text
        time.sleep(CHECK_INTERVAL_S * 2)  # every worker has read the setting
        yield base


@pytest.fixture
def scripted(upstream, second_upstream):
    """The first upstream fails every call with 503 (and its default Retry-After: 1); the second answers."""
    for server in (upstream, second_upstream):
        server.state.reset()
    upstream.state.scenarios.add(Fail(503, message="first upstream is down", times=None))
    second_upstream.state.scenarios.add(Reply(text=SECOND_ANSWER, times=None))
    yield upstream, second_upstream
    for server in (upstream, second_upstream):
        server.state.reset()


@pytest.fixture
def session_id() -> str:
    return f"fallback-{uuid.uuid4()}"


@pytest.fixture
def sdk(gateway, session_id) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway + "/v1", api_key="unused", max_retries=0, default_headers={"X-Session-Id": session_id}
    )


def chat_calls(server: LLMockServer) -> int:
    return sum(r.path.endswith("/chat/completions") for r in server.state.journal.records(wait=2))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_client_gets_the_second_upstreams_answer_and_both_attempts_are_stored(
    sdk, scripted, e2e_database_url, session_id, stream
):
    first, second = scripted
    if stream:
        chunks = list(sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        content = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content
    assert content == SECOND_ANSWER
    assert (chat_calls(first), chat_calls(second)) == (2, 1)  # retried once (after Retry-After), then moved on
    (row,) = rows_for_session(e2e_database_url, session_id)
    assert row.request.provider == "lm-studio"
    assert [(a.attempt, a.provider, a.model, a.status_code) for a in row.request.attempts] == [
        (1, "lm-studio", "gpt-4o-mini", 503), (2, "lm-studio", "gpt-4o-mini", 503), (3, "openai", "gpt-4o-mini", 200),
    ]
    assert all("first upstream is down" in a.error for a in row.request.attempts[:2])
    response = row.response
    assert (response.status, response.status_code, response.provider, response.error) == ("ok", 200, "openai", None)
    assert response.openai_response["choices"][0]["message"]["content"] == SECOND_ANSWER


def test_a_stream_that_broke_after_its_first_bytes_is_not_retried(
    sdk, upstream, second_upstream, e2e_database_url, session_id
):
    for server in (upstream, second_upstream):
        server.state.reset()
    upstream.state.scenarios.add(StreamFault("disconnect", after_chunks=2))
    received = []
    with pytest.raises(openai.APIError):
        for chunk in sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            received.append(chunk)
    assert received, "the stream had begun"
    assert (chat_calls(upstream), chat_calls(second_upstream)) == (1, 0)
    (row,) = rows_for_session(e2e_database_url, session_id)
    assert row.request.attempts == []
    assert (row.response.status, row.response.provider) == ("incomplete", "lm-studio")
