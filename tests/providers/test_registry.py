"""Which provider a model name routes to, and which providers the settings configure."""

from __future__ import annotations

import pytest
import responses

from app.config import Settings
from app.errors import InvalidRequest, NotFound
from app.providers.base import Conversation
from app.providers.lm_studio import LMStudioProvider
from app.providers.mock import MockProvider
from app.providers.openai_compat import OpenAICompatibleProvider
from app.providers.registry import ProviderRegistry

DB = {"DATABASE_URL": "sqlite:///unused.db"}


def openai(default_model: str | None = None) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        name="openai", base_url="http://openai.test/v1", timeout_s=5, default_model=default_model
    )


def registry(active: str = "mock", *, openai_default: str | None = None) -> ProviderRegistry:
    return ProviderRegistry([MockProvider(), openai(openai_default)], active=active)


def test_prefix_routes_to_that_provider():
    route = registry().route("openai/gpt-4o")
    assert (route.provider.name, route.model) == ("openai", "gpt-4o")


def test_only_the_first_slash_splits():
    route = registry(active="openai").route("mock/org/model")
    assert (route.provider.name, route.model) == ("mock", "org/model")


def test_unknown_prefix_goes_to_the_active_provider_unchanged():
    route = registry(active="openai").route("meta-llama/Llama-3")
    assert (route.provider.name, route.model) == ("openai", "meta-llama/Llama-3")


def test_plain_model_goes_to_the_active_provider():
    route = registry(active="openai").route("gpt-4o")
    assert (route.provider.name, route.model) == ("openai", "gpt-4o")


@pytest.mark.parametrize("model", [None, ""])
def test_no_model_uses_the_active_default(model):
    route = registry(active="mock").route(model)
    assert (route.provider.name, route.model) == ("mock", "mock-chat")


def test_prefix_alone_uses_that_providers_default():
    route = registry(active="openai", openai_default="gpt-x").route("mock/")
    assert (route.provider.name, route.model) == ("mock", "mock-chat")


@pytest.mark.parametrize("model", [None, "openai/"])
def test_no_model_and_no_default_is_model_required(model):
    with pytest.raises(InvalidRequest) as caught:
        registry(active="openai").route(model)
    assert (caught.value.status, caught.value.code, caught.value.param) == (400, "model_required", "model")


def test_get_unknown_is_provider_not_found():
    with pytest.raises(NotFound) as caught:
        registry().get("anthropic")
    error = caught.value
    assert (error.status, error.code, error.param) == (404, "provider_not_found", "provider")
    assert "mock, openai" in error.message


def test_active_that_is_not_configured_is_not_found():
    with pytest.raises(NotFound):
        registry(active="gone").route("some-model")


def test_names_and_all_are_sorted():
    reg = ProviderRegistry([openai(), MockProvider()], active="mock")
    assert reg.names() == ["mock", "openai"]
    assert [p.name for p in reg.all()] == ["mock", "openai"]
    assert reg.active.name == "mock"


def test_from_settings_without_openai():
    reg = ProviderRegistry.from_settings(Settings.from_env(DB))
    assert reg.names() == ["lm-studio", "mock"]
    assert reg.active_name == "lm-studio"
    lm_studio = reg.get("lm-studio")
    assert isinstance(lm_studio, LMStudioProvider)
    assert lm_studio.base_url == "http://localhost:1234/v1"
    assert lm_studio.transport.timeout == (10.0, 120.0)
    assert isinstance(reg.get("mock"), MockProvider)
    with pytest.raises(NotFound):
        reg.get("openai")


def test_from_settings_with_openai():
    settings = Settings.from_env({
        **DB,
        "OPENAI_BASE_URL": "https://openai.test/v1/",
        "OPENAI_API_KEY": "sk-live",
        "LM_STUDIO_BASE_URL": "http://gpu.test:1234/v1",
        "DEFAULT_PROVIDER": "openai",
        "REQUEST_TIMEOUT": "4000",
    })
    reg = ProviderRegistry.from_settings(settings)
    assert reg.names() == ["lm-studio", "mock", "openai"]
    assert reg.active.name == "openai"
    chosen = reg.get("openai")
    assert type(chosen) is OpenAICompatibleProvider
    assert chosen.base_url == "https://openai.test/v1"
    assert chosen.transport.timeout == (4.0, 4.0)
    assert reg.get("lm-studio").base_url == "http://gpu.test:1234/v1"
    with responses.RequestsMock() as upstream:
        upstream.post("https://openai.test/v1/chat/completions", json={"choices": []})
        chosen.complete({"model": "gpt-4o", "messages": []}, conversation=Conversation(session_id="s"))
        assert upstream.calls[0].request.headers["Authorization"] == "Bearer sk-live"


def test_from_settings_openai_without_key_sends_no_authorization():
    reg = ProviderRegistry.from_settings(Settings.from_env({**DB, "OPENAI_BASE_URL": "http://local.test/v1"}))
    with responses.RequestsMock() as upstream:
        upstream.get("http://local.test/v1/models", json={"data": []})
        reg.get("openai").list_models()
        assert "Authorization" not in upstream.calls[0].request.headers
