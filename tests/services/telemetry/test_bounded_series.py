"""Label values stay bounded: session ids never reach a label, a model no provider lists counts as ``other``."""

from __future__ import annotations

import random
import string
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.services.telemetry.labels import ModelNames, endpoint_label

CALLS = 10_000


def series(client) -> set[tuple[str, frozenset]]:
    text = client.get("/metrics").get_data(as_text=True)
    return {
        (sample.name, frozenset(sample.labels.items()))
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def random_model() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits + "-/.:", k=random.randint(1, 40)))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ten_thousand_calls_with_distinct_sessions_and_random_models_leave_the_series_bounded(make_settings):
    app = create_app(make_settings(default_provider="mock"))
    client = app.test_client()
    warm = client.post("/v1/chat/completions",
                       json={"model": "mock-chat", "messages": [{"role": "user", "content": "w"}]})
    assert warm.status_code == 200
    before = series(client)
    for number in range(CALLS):
        model = "mock-chat" if number % 10 == 0 else random_model()
        reply = client.post(
            "/v1/chat/completions", headers={"X-Session-Id": f"s-{uuid.uuid4()}"},
            json={"model": model, "stream": number % 2 == 1, "messages": [{"role": "user", "content": str(number)}]},
        )
        assert reply.status_code in (200, 400, 404), reply.get_json()
        reply.close()
    app.extensions["gateway"].chat.audit.flush()
    after = series(client)
    labels = {value for _, labelset in after for _, value in labelset}
    assert labels <= {"chat", "mock", "mock-chat", "other", "ok", "error", "incomplete", "true", "false",
                      "prompt", "completion", *{le for name, ls in after for key, le in ls if key == "le"}}
    assert len(after) <= len(before) + 60, sorted(after - before)[:20]  # "other" and ttft series, not 10,000 models
    totals = {name: 0.0 for name, _ in after}
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "provider_router_calls_total":
                totals[sample.name] += sample.value
    assert totals["provider_router_calls_total"] == CALLS + 1
    app.extensions["gateway"].stop_background()


def test_a_model_counts_under_its_name_only_when_its_provider_lists_it(make_settings):
    app = create_app(make_settings(default_provider="mock"))
    names = ModelNames(app.extensions["gateway"].registry)
    assert names.label("mock", "mock-chat") == "mock-chat"  # its default model
    assert names.label("mock", "gpt-5-from-a-client") == "other"
    assert names.label("no-such-provider", "mock-chat") == "other"
    assert names.provider_label("no-such-provider") == "other"
    assert names.label("mock", None) == "other"
    app.extensions["gateway"].stop_background()


@pytest.mark.parametrize(("path", "endpoint"), [
    ("/v1/chat/completions", "chat"), ("/v1/embeddings", "embeddings"), ("/v1/completions", "completions"),
    ("/v1/responses", "responses"), ("/v1/chat/completions?x=1", "other"), ("/anything", "other"), (None, "other"),
])
def test_endpoints_are_labelled_by_their_path(path, endpoint):
    assert endpoint_label(path) == endpoint
