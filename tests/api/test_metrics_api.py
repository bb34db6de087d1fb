"""GET /metrics: who may read it, and that every endpoint's calls are counted by how they ended."""

from __future__ import annotations

import pytest
import responses
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.services.proxy import fallback

CHAT = {"model": "mock/mock-chat", "messages": [{"role": "user", "content": "hi"}]}


def samples(client, **kwargs) -> dict[tuple[str, frozenset], float]:
    reply = client.get("/metrics", **kwargs)
    assert reply.status_code == 200, reply.get_json()
    assert reply.content_type.startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.get_data(as_text=True))
        for sample in family.samples
    }


def total(found: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (sample, got), value in found.items() if sample == name and wanted <= got)


def test_without_a_key_only_loopback_clients_may_scrape(client):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    reply = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.7"})
    assert reply.status_code == 403
    assert reply.get_json()["error"]["code"] == "loopback_only"


def test_with_a_key_the_scraper_needs_it(make_settings):
    client = create_app(make_settings(admin_api_key="s3cret")).test_client()
    assert client.get("/metrics").status_code == 401
    headers = {"Authorization": "Bearer s3cret"}
    assert client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.7"}).status_code == 200


def test_metrics_public_opens_it_to_any_client(make_settings):
    client = create_app(make_settings(admin_api_key="s3cret", metrics_public=True)).test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.7"}).status_code == 200


def test_metrics_off_has_no_endpoint(make_settings):
    client = create_app(make_settings(metrics=False)).test_client()
    reply = client.get("/metrics")
    assert reply.status_code == 404
    assert reply.get_json()["error"]["code"] == "not_found"
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_each_endpoint_counted_by_outcome(client, flush_audit):
    for _ in range(3):
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert client.post("/v1/embeddings", json={"model": "mock/mock-chat", "input": "hi"}).status_code == 200
    assert client.post("/v1/completions", json={"model": "mock/mock-chat", "prompt": "hi"}).status_code == 200
    streamed = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert b"[DONE]" in streamed.get_data()
    flush_audit()
    found = samples(client)
    assert total(found, "provider_router_calls_total", endpoint="chat", outcome="ok") == 4
    assert total(found, "provider_router_calls_total", endpoint="embeddings", outcome="ok") == 1
    assert total(found, "provider_router_calls_total", endpoint="completions", outcome="ok") == 1
    assert total(found, "provider_router_calls_total", outcome="error") == 0
    assert total(found, "provider_router_call_duration_seconds_count") == 6
    assert total(found, "provider_router_time_to_first_token_seconds_count") == 1  # the stream
    assert total(found, "provider_router_calls_in_flight") == 0
    assert total(found, "provider_router_streams_open") == 0
    assert total(found, "provider_router_tokens_total", type="prompt", provider="mock") > 0
    assert total(found, "provider_router_audit_records_written_total") == 12  # a request and an ending each


def test_errors_retries_and_fallbacks_are_counted_by_reason(make_settings, monkeypatch):
    app = create_app(make_settings(lm_studio_base_url="http://upstream.test/v1", request_timeout_ms=5000))
    client = app.test_client()
    monkeypatch.setattr(fallback, "_sleep", lambda seconds: None)
    call = {**CHAT, "model": "lm-studio/gpt-x"}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as upstream:
        url = "http://upstream.test/v1/chat/completions"
        upstream.add(responses.POST, url, status=400, json={"error": {"message": "bad", "type": "invalid_request"}})
        assert client.post("/v1/chat/completions", json=call).status_code == 400
        upstream.replace(responses.POST, url, status=503, json={"error": {"message": "busy"}})
        assert client.post("/v1/chat/completions", json=call).status_code == 503
    app.extensions["gateway"].chat.audit.flush()
    found = samples(client)
    assert total(found, "provider_router_calls_total", provider="lm-studio", outcome="error") == 2
    assert total(found, "provider_router_calls_total", model="gpt-x") == 0  # listed by no provider: other
    assert total(found, "provider_router_calls_total", model="other") == 2
    assert total(found, "provider_router_upstream_attempts_total", provider="lm-studio", result="http_4xx") == 1
    assert total(found, "provider_router_upstream_attempts_total", provider="lm-studio", result="http_5xx") == 2
    assert total(found, "provider_router_upstream_retries_total", provider="lm-studio", reason="http_5xx") == 1
    assert total(found, "provider_router_calls_in_flight") == 0


@pytest.mark.parametrize("public", [False, True])
def test_scrape_never_counts_itself_as_a_call(make_settings, public):
    client = create_app(make_settings(metrics_public=public)).test_client()
    client.get("/metrics")
    assert total(samples(client), "provider_router_calls_total") == 0


def test_calls_the_database_could_not_take_are_counted_as_journaled(app, client):
    audit = app.extensions["gateway"].chat.audit
    audit.healthy = False  # what a failed write does: records go to the journal until it recovers
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    found = samples(client)
    assert total(found, "provider_router_audit_journaled_total") == 2  # the request, then its ending
    assert total(found, "provider_router_calls_total", outcome="ok") == 1
    assert total(found, "provider_router_audit_records_written_total") == 0
