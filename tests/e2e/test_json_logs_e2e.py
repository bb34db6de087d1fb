"""LOG_FORMAT=json through real gunicorn: every line is JSON, one ``app.calls`` line per call, no body, no secret."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from app import migrate
from app.db import dispose_engines
from tests.e2e.conftest import run_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SECRET = "sk-never-in-a-log-" + uuid.uuid4().hex


def test_json_logs_one_line_per_call_and_never_a_body_or_secret(upstream, tmp_path):
    upstream.state.reset()
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade(url)
    dispose_engines()
    log_path = tmp_path / "gunicorn.log"
    env = {"DATABASE_URL": url, "DEFAULT_PROVIDER": "lm-studio", "LM_STUDIO_BASE_URL": upstream.base_url("openai"),
           "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": SECRET, "ADMIN_API_KEY": SECRET + "-admin",
           "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "REQUEST_TIMEOUT": "5000"}
    body_text = "a private prompt " + uuid.uuid4().hex
    sent = []
    with run_gateway(env, log_path=log_path) as base:
        for model, stream in (("gpt-4o-mini", False), ("gpt-4o-mini", True), ("openai/refused", False)):
            reply = requests.post(base + "/v1/chat/completions", stream=stream, timeout=30,
                                  headers={"Authorization": f"Bearer {SECRET}", "Connection": "close"},
                                  json={"model": model, "stream": stream,
                                        "messages": [{"role": "user", "content": body_text}]})
            reply.content  # noqa: B018 - read it to the end
            sent.append((reply.headers.get("X-Request-Id"), reply.status_code))  # errors carry no id header
        requests.get(base + "/v1/requests", headers={"Authorization": f"Bearer {SECRET}-admin"}, timeout=5)
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line parses
    assert {line["logger"] for line in lines} >= {"gunicorn.error", "app.calls"}
    calls = [line["call"] for line in lines if line["logger"] == "app.calls"]
    assert sorted(call["status"] for call in calls) == sorted(status for _, status in sent) == [200, 200, 502]
    assert {request_id for request_id, _ in sent if request_id} <= {call["request_id"] for call in calls}
    assert all(call["request_id"] for call in calls)
    for call in calls:
        assert set(call) >= {"request_id", "session_id", "endpoint", "provider", "model", "outcome", "status",
                             "duration_ms", "prompt_tokens", "completion_tokens"}
    assert [call["outcome"] for call in calls].count("ok") == 2
    assert body_text not in text
    assert SECRET not in text
