"""The provider settings last read from the database, on local disk: what a worker booting without it routes by.

One small JSON file beside the audit journal (``<journal dir>.providers.json``: one per database,
as the journal is), rewritten only when ``config_version`` moves: written aside, synced, then
renamed into place, so a reader finds the old file or the new one, never half of one. It holds
what the ``providers`` and ``settings`` rows hold: the NAMES of the environment variables with
the keys (``api_key_env``, ``options``), never a key. Mode 0600 all the same: a ``base_url`` may
carry credentials.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import fields
from pathlib import Path

from app.providers.base import ProviderConfig
from app.services.admin.config_store import RoutingConfig
from app.services.audit.disk import fsync

log = logging.getLogger(__name__)

FORMAT = 1


def snapshot_path(journal_dir: Path) -> Path:
    """Where the snapshot of the database that ``journal_dir`` journals for lives."""
    journal_dir = Path(journal_dir)
    return journal_dir.with_name(journal_dir.name + ".providers.json")


class RoutingSnapshot:
    """Reads and writes one snapshot file; writes only a version it has not written (or found) yet."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._version: str | None = None  # the version the file holds, once known
        self._known = False

    def load(self) -> RoutingConfig | None:
        """The settings last saved; None when there are none (a first start) or the file is damaged."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            config = RoutingConfig(
                version=data["version"],
                providers=tuple(ProviderConfig(**provider) for provider in data["providers"]),
                active=data["active"], fallbacks=tuple(data["fallbacks"]),
                models_cache_s=float(data["models_cache_s"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("provider snapshot %s unreadable (%s): not used", self.path, exc)
            return None
        self._version, self._known = config.version, True
        return config

    def save(self, config: RoutingConfig) -> None:
        """Write ``config`` unless the file already holds its version; a failure is logged, never raised."""
        if not self._known:
            self.load()
            self._known = True
        if config.version is None or config.version == self._version:
            return
        data = {
            "format": FORMAT, "version": config.version, "active": config.active,
            "fallbacks": list(config.fallbacks), "models_cache_s": config.models_cache_s,
            "providers": [_stored(provider) for provider in config.providers],
        }
        aside = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, json.dumps(data, indent=1).encode())
            finally:
                fsync(fd, close=True)
            os.replace(aside, self.path)
        except OSError as exc:
            log.warning("cannot save the provider snapshot %s (%s): a start without the database would route "
                        "by an older one", self.path, exc)
            aside.unlink(missing_ok=True)
            return
        self._version = config.version


def _stored(provider: ProviderConfig) -> dict:
    """A provider as its row holds it: names of environment variables, never their values."""
    return {field.name: getattr(provider, field.name) for field in fields(provider)} | {
        "options": dict(provider.options)}
