"""GET /v1/models across providers (cached, one failure tolerated) and GET /health from cached probes."""

from __future__ import annotations

import pytest
import requests
import responses
import sqlalchemy as sa

from app.services.admin import health as health_module

LM = "http://lm.test/v1"
OAI = "http://oai.test/v1"


@pytest.fixture
def settings(make_settings):
    return make_settings(lm_studio_base_url=LM, openai_base_url=OAI)


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def models(data: list[str]) -> dict:
    return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "x"} for name in data]}


def ids(client, query: str = "") -> list[str]:
    reply = client.get("/v1/models" + query)
    assert reply.status_code == 200
    return [model["id"] for model in reply.get_json()["data"]]


def test_every_provider_prefixed_and_the_active_one_bare(client, upstream):
    upstream.get(LM + "/models", json=models(["qwen2.5-7b"]))
    upstream.get(OAI + "/models", json=models(["gpt-4o"]))
    assert ids(client) == ["qwen2.5-7b", "lm-studio/qwen2.5-7b", "mock/mock-chat", "mock/mock-tools", "openai/gpt-4o"]
    assert ids(client, "?provider=openai") == ["openai/gpt-4o"]


def test_a_failing_provider_is_left_out_of_the_list(client, upstream):
    upstream.get(LM + "/models", body=requests.ConnectionError("down"))
    upstream.get(OAI + "/models", status=500, json={"error": "boom"})
    assert ids(client) == ["mock/mock-chat", "mock/mock-tools"]
    assert client.get("/v1/models?provider=openai").status_code == 500


def test_the_list_is_cached_failures_included(client, upstream):
    upstream.get(LM + "/models", json=models(["a"]))
    upstream.get(OAI + "/models", body=requests.ConnectionError("down"))
    ids(client)
    ids(client)
    assert len(upstream.calls) == 2


def test_models_cache_seconds_zero_asks_every_time(client, upstream):
    client.put("/v1/settings/models_cache_seconds", json={"value": 0})
    upstream.get(LM + "/models", json=models(["a"]))
    upstream.get(OAI + "/models", json=models(["b"]))
    ids(client)
    ids(client)
    assert len(upstream.calls) == 4


def test_disabled_providers_are_not_listed(client, upstream):
    upstream.get(LM + "/models", json=models(["a"]))
    client.patch("/v1/providers/openai", json={"enabled": False})
    assert ids(client) == ["a", "lm-studio/a", "mock/mock-chat", "mock/mock-tools"]


# /health -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def background(monkeypatch) -> list:
    """Background probes, recorded instead of started: no stray thread calls upstreams in later tests."""
    started: list = []
    monkeypatch.setattr(health_module.HealthMonitor, "_start", staticmethod(started.append))
    return started


@pytest.fixture
def probe_now(app):
    """Run the probes now, as the background job would."""
    gateway = app.extensions["gateway"]

    def run() -> None:
        gateway.health.refresh(gateway.registry.snapshot().all())

    return run


def test_health_reports_each_provider_from_its_last_probe(client, upstream, probe_now):
    upstream.get(LM + "/models", json=models(["a"]))
    upstream.get(OAI + "/models", body=requests.ConnectionError("down"))
    probe_now()
    upstream.calls.reset()
    for _ in range(5):
        reply = client.get("/health")
    assert len(upstream.calls) == 0, "a /health hit must not call upstreams"
    body = reply.get_json()
    assert reply.status_code == 200
    assert (body["status"], body["active_provider"]) == ("ok", "lm-studio")
    providers = body["providers"]
    assert set(providers) == {"lm-studio", "mock", "openai"}
    assert providers["lm-studio"]["status"] == "ok" and providers["lm-studio"]["base_url"] == LM
    assert isinstance(providers["lm-studio"]["latency_ms"], int)
    assert providers["openai"]["status"] == "error"
    assert providers["openai"]["error"] == f"Cannot connect to provider 'openai' at {OAI}."


def test_health_is_degraded_but_up_when_the_active_provider_fails(client, upstream, probe_now):
    upstream.get(LM + "/models", status=503, json={})
    upstream.get(OAI + "/models", json=models([]))
    probe_now()
    reply = client.get("/health")
    assert reply.status_code == 200 and reply.get_json()["status"] == "degraded"


def test_health_never_shows_credentials_in_urls(make_settings):
    from app import create_app

    app = create_app(make_settings(lm_studio_base_url="http://user:pw@lm.test:1234/v1?key=k"))
    body = app.test_client().get("/health").get_json()
    assert body["providers"]["lm-studio"]["base_url"] == "http://lm.test:1234/v1"


def test_stale_probes_are_refreshed_in_the_background_once(client, background):
    started = background
    first = client.get("/health").get_json()
    client.get("/health")
    assert len(started) == 1, "one refresh at a time"
    assert {p["status"] for p in first["providers"].values()} == {"unknown"}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as upstream:
        upstream.get(LM + "/models", json=models([]))
        upstream.get(OAI + "/models", json=models([]))
        started[0]()
    after = client.get("/health").get_json()
    assert {p["status"] for p in after["providers"].values()} == {"ok"}
    assert len(started) == 1, "fresh probes start nothing"


def test_health_says_how_the_audit_trail_stands(app, client, upstream, probe_now, monkeypatch):
    upstream.get(LM + "/models", json=models(["a"]))
    upstream.get(OAI + "/models", json=models([]))
    probe_now()
    body = client.get("/health").get_json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    assert body["audit"] == {"journal_bytes": 0, "journal_records": 0, "oldest_record_age_s": None,
                             "dead_letters": 0, "unrecorded": 0}
    audit = app.extensions["gateway"].chat.audit
    monkeypatch.setattr(audit.tx, "engine", sa.create_engine("sqlite:////nonexistent-directory/x.db"))
    message = {"role": "user", "content": "x"}
    reply = client.post("/v1/chat/completions", json={"model": "mock/x", "messages": [message]})
    assert reply.status_code == 200
    monkeypatch.setattr("app.services.audit.segments.STATUS_CACHE_S", 0)
    body = client.get("/health").get_json()
    assert (body["status"], body["database"]) == ("degraded", "down")
    assert body["audit"]["journal_records"] == 2 and body["audit"]["journal_bytes"] > 0
    audit.database_recovered()  # writable again, the backlog not replayed yet
    assert client.get("/health").get_json()["database"] == "degraded"
