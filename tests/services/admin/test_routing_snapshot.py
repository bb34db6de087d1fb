"""The provider snapshot: saved atomically when the version moves, never a secret, and routed by at a boot
without the database."""

from __future__ import annotations

import json
import logging
import os
import stat

from app.db import get_engine
from app.services.admin import config_store
from app.services.admin import settings as settings_admin
from app.services.admin.live_registry import LiveRegistry
from app.services.admin.routing_snapshot import RoutingSnapshot, snapshot_path

SECRET = "sk-never-on-disk-1234"


def watching(settings, environ) -> LiveRegistry:
    """A worker's registry on the test database, saving its snapshot."""
    engine = get_engine(settings.database_url)
    snapshot = RoutingSnapshot(snapshot_path(settings.audit_journal_dir))
    return LiveRegistry(engine, settings=settings, environ=environ, snapshot=snapshot)


def test_the_snapshot_holds_the_key_s_variable_name_never_the_key(make_settings):
    settings = make_settings(openai_base_url="http://openai.test/v1", openai_api_key=SECRET, default_provider="openai")
    config_store.seed(get_engine(settings.database_url), settings)
    watching(settings, {"OPENAI_API_KEY": SECRET})
    path = snapshot_path(settings.audit_journal_dir)
    text = path.read_text()
    assert SECRET not in text
    saved = json.loads(text)
    assert saved["active"] == "openai"
    assert {p["name"]: p["api_key_env"] for p in saved["providers"]}["openai"] == "OPENAI_API_KEY"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_snapshot_is_replaced_whole_and_only_when_the_version_moves(make_settings):
    settings = make_settings()
    engine = get_engine(settings.database_url)
    config_store.seed(engine, settings)
    worker = watching(settings, {})
    path = snapshot_path(settings.audit_journal_dir)
    first = path.stat()
    worker.reload()
    watching(settings, {})  # another worker booting on the same version
    assert path.stat().st_ino == first.st_ino and path.stat().st_mtime_ns == first.st_mtime_ns
    with open(path) as before:  # a reader holding the old file keeps a whole old file
        settings_admin.put_settings(engine, values={"active_provider": "mock"}, default_provider="lm-studio")
        worker.reload()
        assert json.loads(before.read())["active"] == "lm-studio"
    assert path.stat().st_ino != first.st_ino, "written aside and renamed into place, not rewritten in place"
    assert json.loads(path.read_text())["active"] == "mock"
    assert [name for name in os.listdir(path.parent) if name.startswith(f".{path.name}")] == [], "nothing left aside"


def test_a_boot_without_the_database_routes_by_the_snapshot(make_settings):
    settings = make_settings()
    engine = get_engine(settings.database_url)
    config_store.seed(engine, settings)
    settings_admin.put_settings(engine, values={"active_provider": "mock", "fallback_providers": ["lm-studio"]},
                                default_provider="lm-studio")
    watching(settings, {})
    unreachable = make_settings(database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    registry = LiveRegistry.without_database(unreachable.database_url, settings=settings)
    assert registry.snapshot().active_name == "mock"
    assert registry.snapshot().fallback_names == ("lm-studio",)
    assert registry.version is not None


def test_a_first_boot_without_the_database_routes_by_the_environment(make_settings):
    settings = make_settings(openai_base_url="http://openai.test/v1", default_provider="openai")
    registry = LiveRegistry.without_database("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", settings=settings)
    assert registry.snapshot().active_name == "openai"
    assert registry.snapshot().names() == ["lm-studio", "mock", "openai"]
    assert registry.version is None


def test_a_damaged_snapshot_is_left_aside_with_a_warning(tmp_path, caplog):
    path = tmp_path / "journal.providers.json"
    path.write_text('{"version": "v1", "provid')
    with caplog.at_level(logging.WARNING):
        assert RoutingSnapshot(path).load() is None
    assert "unreadable" in caplog.text
