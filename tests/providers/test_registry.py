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


# from configuration rows ------------------------------------------------------------------


def test_every_type_builds_from_a_config_with_its_key_from_the_environment():
    from app.providers.base import ProviderConfig
    from app.providers.qwen import QwenProvider
    from app.providers.registry import PROVIDER_TYPES, build_provider

    environ = {"UP_KEY": "sk-up", "QT": "tok", "QC": "a=b"}
    built = {
        kind: build_provider(
            ProviderConfig(name=f"p-{kind}", type=kind, base_url="http://up.test/v1", api_key_env="UP_KEY",
                           timeout_ms=2500, default_model="m"),
            environ=environ, default_timeout_s=9,
        )
        for kind in PROVIDER_TYPES
    }
    assert {kind: type(p) for kind, p in built.items()} == {
        "openai-compatible": OpenAICompatibleProvider, "lm-studio": LMStudioProvider,
        "qwen": QwenProvider, "mock": MockProvider,
    }
    assert built["openai-compatible"].transport.timeout == (2.5, 2.5)
    assert built["openai-compatible"]._headers == {"Authorization": "Bearer sk-up"}
    assert built["mock"].base_url == "mock://local" and built["mock"].default_model == "m"
    qwen = build_provider(
        ProviderConfig(name="q", type="qwen", base_url="https://qwen.test", api_key_env="QT",
                       options={"cookies_env": "QC"}),
        environ=environ, default_timeout_s=9,
    )
    assert qwen._headers == {"bx-umidtoken": "tok", "Cookie": "a=b"}
    assert qwen.transport.timeout == (9, 9)


def test_a_missing_key_variable_means_no_authorization():
    from app.providers.base import ProviderConfig
    from app.providers.registry import build_provider

    provider = build_provider(
        ProviderConfig(name="o", type="openai-compatible", base_url="http://o.test", api_key_env="NOT_SET"),
        environ={}, default_timeout_s=5,
    )
    assert provider._headers == {}


def test_unknown_type_is_refused():
    from app.providers.base import ProviderConfig
    from app.providers.registry import build_provider

    with pytest.raises(ValueError, match="unknown type 'gemini'"):
        build_provider(ProviderConfig(name="g", type="gemini", base_url="http://g"), environ={}, default_timeout_s=1)


def test_environment_seeds_qwen_when_its_token_or_url_is_set():
    from app.providers.registry import configs_from_settings

    names = [c.name for c in configs_from_settings(Settings.from_env(DB))]
    assert names == ["lm-studio", "mock"]
    configs = configs_from_settings(Settings.from_env({**DB, "QWEN_TOKEN": "t", "QWEN_MODEL": "qwen-plus"}))
    qwen = next(c for c in configs if c.name == "qwen")
    assert (qwen.type, qwen.base_url, qwen.api_key_env, qwen.default_model, dict(qwen.options)) == (
        "qwen", "https://chat.qwen.ai", "QWEN_TOKEN", "qwen-plus", {"cookies_env": "QWEN_COOKIES"}
    )
    configs = configs_from_settings(Settings.from_env({**DB, "QWEN_BASE_URL": "http://qwen.local/"}))
    assert next(c for c in configs if c.name == "qwen").base_url == "http://qwen.local"


# fallbacks --------------------------------------------------------------------------------


def test_fallback_routes_follow_the_setting_after_the_routed_one():
    lm = LMStudioProvider(name="lm", base_url="http://lm.test", timeout_s=1, default_model="llama")
    reg = ProviderRegistry([MockProvider(), openai(), lm], active="openai", fallbacks=["openai", "gone", "lm", "mock"])
    routes = reg.fallback_routes(reg.route("gpt-4o"))
    assert [(r.provider.name, r.model) for r in routes] == [
        ("openai", "gpt-4o"), ("lm", "llama"), ("mock", "mock-chat")
    ]


def test_a_fallback_without_default_model_gets_the_requested_one():
    reg = ProviderRegistry([MockProvider(), openai()], active="mock", fallbacks=["openai"])
    routes = reg.fallback_routes(reg.route("mock/x"))
    assert [(r.provider.name, r.model) for r in routes] == [("mock", "x"), ("openai", "x")]


def test_no_fallbacks_is_just_the_route():
    reg = registry()
    route = reg.route("gpt")
    assert reg.fallback_routes(route) == [route]
