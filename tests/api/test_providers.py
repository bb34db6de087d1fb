"""/v1/providers: CRUD with validation, 404s and 409s in the OpenAI error shape, and who may call it."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from app import create_app

OPENAI = "http://openai.test/v1"
VLLM = {"name": "vllm", "type": "openai-compatible", "base_url": "http://vllm.test/v1", "api_key_env": "VLLM_KEY"}


@pytest.fixture
def settings(make_settings):
    return make_settings(default_provider="mock")


def error_of(reply) -> tuple:
    error = reply.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return reply.status_code, error["param"], error["code"]


def chat(client, model: str):
    return client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def test_list_shows_the_seeded_providers_and_which_is_active(client):
    reply = client.get("/v1/providers")
    assert reply.status_code == 200
    body = reply.get_json()
    assert body["object"] == "list"
    assert [(p["name"], p["type"], p["active"]) for p in body["data"]] == [
        ("lm-studio", "lm-studio", False), ("mock", "mock", True)
    ]
    mock = body["data"][1]
    assert set(mock) == {
        "name", "type", "base_url", "api_key_env", "api_key_configured", "default_model", "timeout_ms",
        "enabled", "options", "active", "created_at", "updated_at",
    }


def test_urls_are_shown_without_credentials(make_settings):
    client = create_app(make_settings(lm_studio_base_url="http://u:pw@lm.test/v1?key=k")).test_client()
    assert client.get("/v1/providers/lm-studio").get_json()["base_url"] == "http://lm.test/v1"


def test_create_read_and_route_to_a_new_provider(client, monkeypatch):
    monkeypatch.setenv("VLLM_KEY", "sk-vllm-secret")
    reply = client.post("/v1/providers", json={**VLLM, "default_model": "llama", "timeout_ms": 5000})
    assert reply.status_code == 201 and reply.headers["Location"] == "/v1/providers/vllm"
    created = reply.get_json()
    assert created | {"created_at": 0, "updated_at": 0} == {
        **VLLM, "default_model": "llama", "timeout_ms": 5000, "enabled": True, "options": {},
        "api_key_configured": True, "active": False, "created_at": 0, "updated_at": 0,
    }
    assert client.get("/v1/providers/vllm").get_json() == created
    assert "sk-vllm-secret" not in json.dumps(client.get("/v1/providers").get_json())
    with responses.RequestsMock() as upstream:
        upstream.post("http://vllm.test/v1/chat/completions", json={"choices": []})
        assert chat(client, "vllm/llama").status_code == 200  # this worker routes by it at once
        assert upstream.calls[0].request.headers["Authorization"] == "Bearer sk-vllm-secret"


def test_a_duplicate_name_is_409(client):
    assert client.post("/v1/providers", json=VLLM).status_code == 201
    assert error_of(client.post("/v1/providers", json=VLLM)) == (409, "name", "provider_exists")
    assert error_of(client.post("/v1/providers", json={"name": "mock", "type": "mock"})) == (
        409, "name", "provider_exists"
    )


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"type": "mock"}, "name", "missing_value"),
    ({"name": "a/b", "type": "mock"}, "name", "invalid_value"),
    ({"name": "x" * 65, "type": "mock"}, "name", "invalid_value"),
    ({"name": "x", "type": "gemini"}, "type", "invalid_value"),
    ({"name": "x", "type": "openai-compatible"}, "base_url", "missing_value"),
    ({"name": "x", "type": "lm-studio", "base_url": "localhost:1234"}, "base_url", "invalid_value"),
    ({"name": "x", "type": "lm-studio", "base_url": "http://u:p@h.test/v1"}, "base_url", "invalid_value"),
    ({"name": "x", "type": "lm-studio", "base_url": "mock://local"}, "base_url", "invalid_value"),
    ({**VLLM, "api_key": "sk-live"}, "api_key", "invalid_value"),
    ({**VLLM, "api_key_env": "sk-live-1234"}, "api_key_env", "invalid_value"),
    ({**VLLM, "timeout_ms": 0}, "timeout_ms", "invalid_value"),
    ({**VLLM, "timeout_ms": "5000"}, "timeout_ms", "invalid_value"),
    ({**VLLM, "enabled": "yes"}, "enabled", "invalid_value"),
    ({**VLLM, "options": {"cookies_env": "C"}}, "options.cookies_env", "invalid_value"),
    ({**VLLM, "colour": "blue"}, "colour", "unknown_field"),
])
def test_invalid_providers_are_400_naming_the_field(client, body, param, code):
    assert error_of(client.post("/v1/providers", json=body)) == (400, param, code)
    assert [p["name"] for p in client.get("/v1/providers").get_json()["data"]] == ["lm-studio", "mock"]


@pytest.mark.parametrize("data", [b"{nope", b"[1]", b""])
def test_a_body_that_is_not_a_json_object_is_400(client, data):
    reply = client.post("/v1/providers", data=data, content_type="application/json")
    assert error_of(reply) == (400, None, "invalid_json")


def test_a_qwen_provider_takes_its_cookies_variable_as_an_option(client):
    body = {"name": "qwen2", "type": "qwen", "base_url": "https://chat.qwen.ai", "api_key_env": "QWEN_TOKEN",
            "options": {"cookies_env": "QWEN_COOKIES"}, "default_model": "qwen3-max"}
    assert client.post("/v1/providers", json=body).get_json()["options"] == {"cookies_env": "QWEN_COOKIES"}


def test_patch_changes_only_the_fields_sent(client):
    client.post("/v1/providers", json=VLLM)
    before = client.get("/v1/providers/vllm").get_json()
    reply = client.patch("/v1/providers/vllm", json={"default_model": "qwen2.5", "name": "vllm"})
    assert reply.status_code == 200
    after = reply.get_json()
    assert after["default_model"] == "qwen2.5" and after["base_url"] == VLLM["base_url"]
    assert after["created_at"] == before["created_at"] and after["updated_at"] >= before["updated_at"]


@pytest.mark.parametrize(("name", "body", "expected"), [
    ("nobody", {"enabled": False}, (404, "name", "provider_not_found")),
    ("lm-studio", {"name": "renamed"}, (400, "name", "immutable_field")),
    ("lm-studio", {"base_url": None}, (400, "base_url", "invalid_value")),
    ("lm-studio", {"type": "qwen", "options": {"proxy": "P"}}, (400, "options.proxy", "invalid_value")),
    ("mock", {"enabled": False}, (409, "enabled", "provider_active")),
])
def test_patch_errors(client, name, body, expected):
    assert error_of(client.patch(f"/v1/providers/{name}", json=body)) == expected


def test_a_disabled_provider_is_no_longer_routed_to(client):
    assert client.patch("/v1/providers/lm-studio", json={"enabled": False}).get_json()["enabled"] is False
    # Its prefix is no longer a provider's: the name goes to the active provider unchanged.
    assert chat(client, "lm-studio/m").get_json()["model"] == "lm-studio/m"
    assert error_of(client.get("/v1/models?provider=lm-studio")) == (404, "provider", "provider_not_found")


def test_delete_removes_it_from_routing_and_from_the_fallbacks(client):
    client.post("/v1/providers", json=VLLM)
    client.put("/v1/settings", json={"fallback_providers": ["vllm", "lm-studio"]})
    assert client.delete("/v1/providers/vllm").get_json() == {"deleted": True, "provider": "vllm"}
    assert error_of(client.get("/v1/providers/vllm")) == (404, "name", "provider_not_found")
    assert client.get("/v1/settings").get_json()["fallback_providers"] == ["lm-studio"]
    assert error_of(client.delete("/v1/providers/vllm")) == (404, "name", "provider_not_found")


def test_the_active_provider_cannot_be_deleted(client):
    assert error_of(client.delete("/v1/providers/mock")) == (409, "name", "provider_active")


def test_test_reports_latency_and_models(client):
    reply = client.post("/v1/providers/mock/test")
    body = reply.get_json()
    assert reply.status_code == 200
    assert (body["provider"], body["ok"], body["models"], body["error"]) == (
        "mock", True, ["mock-chat", "mock-tools"], None
    )
    assert isinstance(body["latency_ms"], int)


def test_test_reports_the_error_of_a_provider_that_is_down(client):
    client.post("/v1/providers", json=VLLM)
    with responses.RequestsMock() as upstream:
        upstream.get("http://vllm.test/v1/models", body=requests.ConnectionError("refused"))
        body = client.post("/v1/providers/vllm/test").get_json()
    assert (body["ok"], body["models"]) == (False, [])
    assert body["error"] == "Cannot connect to provider 'vllm' at http://vllm.test/v1."
    assert error_of(client.post("/v1/providers/nobody/test")) == (404, "name", "provider_not_found")


# who may call it ------------------------------------------------------------------------------


def test_with_an_admin_key_the_bearer_token_is_required(make_settings):
    client = create_app(make_settings(admin_api_key="adm-secret")).test_client()
    assert error_of(client.get("/v1/providers"))[0::2] == (401, "invalid_api_key")
    wrong = client.get("/v1/providers", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = client.get("/v1/providers", headers={"Authorization": "Bearer adm-secret"},
                       environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert right.status_code == 200


def test_without_an_admin_key_only_this_host_may_manage(client):
    remote = client.get("/v1/providers", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert error_of(remote) == (403, None, "loopback_only")
    assert client.get("/v1/providers", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


@pytest.mark.parametrize("switch", [{"enable_crud_api": False}, {"enable_persistence": False}])
def test_switched_off_the_management_endpoints_do_not_exist(make_settings, switch):
    client = create_app(make_settings(**switch)).test_client()
    for path in ("/v1/providers", "/v1/settings", "/v1/providers/mock"):
        assert error_of(client.get(path)) == (404, None, "not_found")
    assert chat(client, "mock/m").status_code == 200
