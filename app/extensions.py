"""What the app holds for its requests: settings, providers, and the chat service."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from app.config import Settings
from app.providers.registry import ProviderSource
from app.services.admin.health import HealthMonitor
from app.services.proxy.chat import ChatService
from app.services.search.indexer import SearchIndexer


@dataclass(slots=True, kw_only=True)
class Gateway:
    settings: Settings
    registry: ProviderSource  # .snapshot(): the providers of the moment
    chat: ChatService
    health: HealthMonitor
    indexer: SearchIndexer | None = None  # content search's background indexer


def gateway() -> Gateway:
    """The gateway of the app handling the current request."""
    return current_app.extensions["gateway"]
