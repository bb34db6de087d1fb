"""Which providers exist, which one is active, and where a model name routes."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.errors import InvalidRequest, NotFound
from app.providers.base import Provider
from app.providers.lm_studio import LMStudioProvider
from app.providers.mock import MockProvider
from app.providers.openai_compat import OpenAICompatibleProvider

PROVIDER_TYPES: dict[str, type[Provider]] = {
    "openai-compatible": OpenAICompatibleProvider,
    "lm-studio": LMStudioProvider,
    "mock": MockProvider,
}


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    model: str


class ProviderRegistry:
    """The providers this process knows, by name."""

    def __init__(self, providers: list[Provider], *, active: str) -> None:
        self._providers = {provider.name: provider for provider in providers}
        self.active_name = active

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        timeout_s = settings.request_timeout_s
        providers: list[Provider] = [
            LMStudioProvider(name="lm-studio", base_url=settings.lm_studio_base_url, timeout_s=timeout_s),
            MockProvider(),
        ]
        if settings.openai_base_url:
            providers.append(
                OpenAICompatibleProvider(
                    name="openai", base_url=settings.openai_base_url,
                    api_key=settings.openai_api_key, timeout_s=timeout_s,
                )
            )
        return cls(providers, active=settings.default_provider)

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

    @staticmethod
    def _default_model(provider: Provider) -> str:
        if not provider.default_model:
            raise InvalidRequest(
                f"Provider {provider.name!r} has no default model: say which model to use.",
                param="model", code="model_required",
            )
        return provider.default_model
