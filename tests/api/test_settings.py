"""/v1/settings: a whitelist of run-time settings, checked against the providers, applied without restart."""

from __future__ import annotations

import pytest

from tests.api.test_providers import chat, error_of


def test_defaults_before_anything_is_set(client):
    assert client.get("/v1/settings").get_json() == {
        "active_provider": "lm-studio", "fallback_providers": [], "models_cache_seconds": 30,
    }
    assert client.get("/v1/settings/fallback_providers").get_json() == {
        "key": "fallback_providers", "value": [], "updated_at": None,
    }


def test_switching_the_active_provider_reroutes_the_next_request(client):
    reply = client.put("/v1/settings/active_provider", json={"value": "mock"})
    assert reply.status_code == 200
    body = reply.get_json()
    assert (body["key"], body["value"]) == ("active_provider", "mock") and body["updated_at"] > 0
    assert chat(client, "m").get_json()["choices"][0]["message"]["content"] == "Mock reply to: hi"


def test_put_all_changes_several_together(client):
    reply = client.put("/v1/settings", json={
        "active_provider": "mock", "fallback_providers": ["lm-studio"], "models_cache_seconds": 0,
    })
    assert reply.get_json() == {"active_provider": "mock", "fallback_providers": ["lm-studio"],
                                "models_cache_seconds": 0}
    assert client.get("/v1/settings").get_json() == reply.get_json()


def test_a_rejected_change_changes_nothing(client):
    reply = client.put("/v1/settings", json={"active_provider": "mock", "fallback_providers": ["nobody"]})
    assert error_of(reply) == (400, "fallback_providers", "unknown_provider")
    assert client.get("/v1/settings/active_provider").get_json()["value"] == "lm-studio"


@pytest.mark.parametrize(("key", "value", "code"), [
    ("active_provider", "nobody", "unknown_provider"),
    ("active_provider", "bad name!", "invalid_value"),
    ("active_provider", 5, "invalid_value"),
    ("fallback_providers", "mock", "invalid_value"),
    ("fallback_providers", ["mock", "mock"], "invalid_value"),
    ("fallback_providers", ["mock", "nobody"], "unknown_provider"),
    ("models_cache_seconds", -1, "invalid_value"),
    ("models_cache_seconds", "30", "invalid_value"),
    ("models_cache_seconds", 3601, "invalid_value"),
])
def test_invalid_values_are_400_naming_the_setting(client, key, value, code):
    assert error_of(client.put(f"/v1/settings/{key}", json={"value": value})) == (400, key, code)
    assert error_of(client.put("/v1/settings", json={key: value})) == (400, key, code)


def test_a_disabled_provider_cannot_become_active(client):
    client.put("/v1/settings/active_provider", json={"value": "mock"})
    client.patch("/v1/providers/lm-studio", json={"enabled": False})
    reply = client.put("/v1/settings/active_provider", json={"value": "lm-studio"})
    assert error_of(reply) == (400, "active_provider", "provider_disabled")


@pytest.mark.parametrize("key", ["config_version", "nothing", "default_provider"])
def test_settings_outside_the_whitelist_do_not_exist(client, key):
    assert error_of(client.get(f"/v1/settings/{key}")) == (404, "key", "setting_not_found")
    assert error_of(client.put(f"/v1/settings/{key}", json={"value": "x"})) == (404, "key", "setting_not_found")
    assert error_of(client.put("/v1/settings", json={key: "x"})) == (400, key, "unknown_field")
    assert key not in client.get("/v1/settings").get_json()


@pytest.mark.parametrize(("body", "param", "code"), [
    ({}, "value", "missing_value"),
    ({"value": None}, "value", "invalid_value"),
    ({"value": "mock", "extra": 1}, "extra", "unknown_field"),
])
def test_put_one_needs_exactly_a_value(client, body, param, code):
    assert error_of(client.put("/v1/settings/active_provider", json=body)) == (400, param, code)


def test_settings_need_the_admin_too(client):
    assert client.get("/v1/settings", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 403
