"""Which providers exist, which one is active, where a model name routes, and what to fall back to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.config import Settings
from app.errors import InvalidRequest, NotFound
from app.providers.base import Provider, ProviderConfig
from app.providers.lm_studio import LMStudioProvider
from app.providers.mock import MOCK_URL, MockProvider
from app.providers.openai_compat import OpenAICompatibleProvider
from app.providers.qwen import QWEN_DEFAULT_URL, QwenProvider

# A new provider type: one module with a Provider subclass, and one line here.
PROVIDER_TYPES: dict[str, type[Provider]] = {
    "openai-compatible": OpenAICompatibleProvider,
    "lm-studio": LMStudioProvider,
    "qwen": QwenProvider,
    "mock": MockProvider,
}
MODELS_CACHE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    model: str


def build_provider(config: ProviderConfig, *, environ: Mapping[str, str], default_timeout_s: float) -> Provider:
    """The provider object for a configuration; its secrets come from ``environ``."""
    kind = PROVIDER_TYPES.get(config.type)
    if kind is None:
        raise ValueError(f"provider {config.name!r} has unknown type {config.type!r}")
    timeout_s = config.timeout_ms / 1000 if config.timeout_ms else default_timeout_s
    return kind.from_config(config, environ=environ, timeout_s=timeout_s)


def configs_from_settings(settings: Settings) -> list[ProviderConfig]:
    """The providers the environment describes: what a new database is seeded with."""
    configs = [ProviderConfig(name="lm-studio", type="lm-studio", base_url=settings.lm_studio_base_url)]
    if settings.openai_base_url:
        configs.append(ProviderConfig(
            name="openai", type="openai-compatible", base_url=settings.openai_base_url,
            api_key_env="OPENAI_API_KEY",
        ))
    if settings.qwen_token or settings.qwen_base_url:
        configs.append(ProviderConfig(
            name="qwen", type="qwen", base_url=settings.qwen_base_url or QWEN_DEFAULT_URL,
            api_key_env="QWEN_TOKEN", default_model=settings.qwen_model,
            options={"cookies_env": "QWEN_COOKIES"},
        ))
    configs.append(ProviderConfig(name="mock", type="mock", base_url=MOCK_URL))
    return configs


class ProviderSource(Protocol):
    """Where the chat service gets the providers of the moment."""

    def snapshot(self) -> ProviderRegistry: ...

    def check(self) -> None: ...


class ProviderRegistry:
    """One consistent view of the enabled providers, the active one, and the fallback order."""

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        active: str,
        fallbacks: Sequence[str] = (),
        models_cache_s: float = MODELS_CACHE_SECONDS,
    ) -> None:
        self._providers = {provider.name: provider for provider in providers}
        self.active_name = active
        self.fallback_names = tuple(fallbacks)
        self.models_cache_s = models_cache_s

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        """The providers of the environment alone (no database: ENABLE_PERSISTENCE=false)."""
        providers = [
            build_provider(config, environ=settings.secrets(), default_timeout_s=settings.request_timeout_s)
            for config in configs_from_settings(settings)
        ]
        return cls(providers, active=settings.default_provider)

    def snapshot(self) -> ProviderRegistry:
        return self

    def check(self) -> None:
        """Nothing to re-read: these providers are fixed."""

    def names(self) -> list[str]:
        return sorted(self._providers)

    def all(self) -> list[Provider]:
        return [self._providers[name] for name in self.names()]

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            raise NotFound(
                f"Provider {name!r} is not configured; known providers: {', '.join(self.names())}.",
                param="provider", code="provider_not_found",
            )
        return provider

    @property
    def active(self) -> Provider:
        return self.get(self.active_name)

    def route(self, model: str | None) -> Route:
        """``"<provider>/<model>"`` picks that provider; anything else goes to the active one."""
        if model:
            prefix, slash, rest = model.partition("/")
            if slash and prefix in self._providers:
                provider = self._providers[prefix]
                return Route(provider, rest or self._default_model(provider))
        provider = self.active
        return Route(provider, model or self._default_model(provider))

    def fallback_routes(self, route: Route) -> list[Route]:
        """``route``, then each fallback provider (with its default model, else the same model)."""
        routes = [route]
        for name in self.fallback_names:
            provider = self._providers.get(name)  # disabled or deleted since: skipped
            if provider is not None and all(provider is not r.provider for r in routes):
                routes.append(Route(provider, provider.default_model or route.model))
        return routes

    @staticmethod
    def _default_model(provider: Provider) -> str:
        if not provider.default_model:
            raise InvalidRequest(
                f"Provider {provider.name!r} has no default model: say which model to use.",
                param="model", code="model_required",
            )
        return provider.default_model
