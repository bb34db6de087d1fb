"""What the app holds for its requests: settings, providers, and the chat service."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from app.config import Settings
from app.providers.registry import ProviderRegistry
from app.services.chat import ChatService


@dataclass(slots=True, kw_only=True)
class Gateway:
    settings: Settings
    registry: ProviderRegistry
    chat: ChatService


def gateway() -> Gateway:
    """The gateway of the app handling the current request."""
    return current_app.extensions["gateway"]
