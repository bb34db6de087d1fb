"""Providers and settings from the database: seeded once, and re-read by every process soon after a change."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from app.db import get_engine
from app.models import ProviderRow, Setting
from app.services.admin import config_store
from app.services.admin import providers as provider_admin
from app.services.admin import settings as settings_admin
from app.services.admin.live_registry import CHECK_INTERVAL_S, RETRY_AFTER_FAILURE_S, LiveRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = CHECK_INTERVAL_S) -> None:
        self.now += seconds


@pytest.fixture
def engine(database_url):
    return get_engine(database_url)


@pytest.fixture
def seeded(engine, settings):
    config_store.seed(engine, settings)
    return engine


def live(engine, settings, clock=None, environ=None) -> LiveRegistry:
    return LiveRegistry(engine, settings=settings, clock=clock or Clock(), environ=environ or {})


def statements(engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


# seeding ----------------------------------------------------------------------------------


def test_first_start_seeds_the_environment_s_providers_once(engine, make_settings, db_session):
    settings = make_settings(openai_base_url="http://openai.test/v1", default_provider="openai")
    assert config_store.seed(engine, settings) is True
    assert config_store.seed(engine, make_settings(default_provider="mock")) is False
    rows = {row.name: row for row in db_session.scalars(sa.select(ProviderRow))}
    assert set(rows) == {"lm-studio", "mock", "openai"}
    assert (rows["openai"].type, rows["openai"].api_key_env) == ("openai-compatible", "OPENAI_API_KEY")
    assert rows["lm-studio"].enabled is True and rows["lm-studio"].timeout_ms is None
    assert db_session.get(Setting, "active_provider").value == "openai"
    assert db_session.get(Setting, "config_version").value


def test_an_active_provider_already_stored_is_kept(engine, settings, db_session):
    with engine.begin() as connection:
        connection.execute(sa.insert(Setting.__table__).values(key="active_provider", value="mock", updated_at=1))
    config_store.seed(engine, settings)
    assert db_session.get(Setting, "active_provider").value == "mock"


def test_workers_starting_together_seed_exactly_once(engine, settings, db_session):
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        results.append(config_store.seed(engine, settings))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    assert db_session.scalar(sa.select(sa.func.count()).select_from(ProviderRow)) == 2


# propagation --------------------------------------------------------------------------------


def test_a_watching_worker_reads_changes_in_its_own_loop_and_no_request_waits_for_it(
    seeded, settings, monkeypatch
):
    worker = LiveRegistry(seeded, settings=settings, environ={}, interval_s=0.05)
    worker.watch()
    request_thread = threading.current_thread().name
    settings_admin.put_settings(seeded, values={"active_provider": "mock"}, default_provider="lm-studio")
    deadline = time.monotonic() + 5
    while worker.snapshot().active_name != "mock" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert worker.snapshot().active_name == "mock"
    inline = []
    monkeypatch.setattr(worker, "check", lambda: inline.append(threading.current_thread().name))
    worker._checked_at = float("-inf")  # however stale the view, a request only reads it
    assert worker.snapshot().active_name == "mock"
    worker.stop()
    assert request_thread not in inline


def test_a_change_reaches_every_process_at_its_next_check(seeded, settings):
    clocks = [Clock(), Clock()]
    workers = [live(seeded, settings, clock) for clock in clocks]
    assert [w.snapshot().active_name for w in workers] == ["lm-studio", "lm-studio"]
    settings_admin.put_settings(seeded, values={"active_provider": "mock"}, default_provider="lm-studio")
    assert [w.snapshot().active_name for w in workers] == ["lm-studio", "lm-studio"]  # within the interval
    for clock in clocks:
        clock.advance()
    assert [w.snapshot().active_name for w in workers] == ["mock", "mock"]
    assert workers[0].snapshot().route("anything").provider.name == "mock"


def test_between_checks_no_request_reads_the_database(seeded, settings):
    clock = Clock()
    worker = live(seeded, settings, clock)
    seen = statements(seeded)
    for _ in range(100):
        worker.snapshot()
    assert seen == []
    clock.advance()
    for _ in range(100):
        worker.snapshot()
    assert len(seen) == 1, "one small read per interval; an unchanged version reloads nothing"
    assert "FROM settings" in seen[0]


def test_unchanged_providers_are_reused_and_changed_ones_rebuilt(seeded, settings):
    clock = Clock()
    worker = live(seeded, settings, clock)
    before = {p.name: p for p in worker.snapshot().all()}
    provider_admin.update_provider(seeded, name="lm-studio", changes={"timeout_ms": 1500},
                                   default_provider="lm-studio")
    clock.advance()
    after = {p.name: p for p in worker.snapshot().all()}
    assert after["mock"] is before["mock"]
    assert after["lm-studio"] is not before["lm-studio"]
    assert after["lm-studio"].transport.timeout == (1.5, 1.5)


def test_disabled_providers_are_not_routed_to_and_settings_flow_in(seeded, settings):
    clock = Clock()
    worker = live(seeded, settings, clock)
    provider_admin.create_provider(seeded, fields={"name": "spare", "type": "mock", "enabled": False},
                                   default_provider="lm-studio")
    settings_admin.put_settings(seeded, values={"fallback_providers": ["spare", "mock"], "models_cache_seconds": 5},
                                default_provider="lm-studio")
    clock.advance()
    snapshot = worker.snapshot()
    assert snapshot.names() == ["lm-studio", "mock"]
    assert (snapshot.fallback_names, snapshot.models_cache_s) == (("spare", "mock"), 5.0)
    route = snapshot.route("m")
    assert [r.provider.name for r in snapshot.fallback_routes(route)] == ["lm-studio", "mock"]


def test_keys_are_read_from_the_variable_the_row_names(seeded, settings):
    provider_admin.create_provider(
        seeded, fields={"name": "vllm", "type": "openai-compatible", "base_url": "http://vllm.test/v1",
                        "api_key_env": "VLLM_KEY"},
        default_provider="lm-studio",
    )
    worker = live(seeded, settings, environ={"VLLM_KEY": "sk-vllm"})
    assert worker.snapshot().get("vllm")._headers == {"Authorization": "Bearer sk-vllm"}


def test_a_row_of_an_unknown_type_is_left_out(seeded, settings, caplog):
    with seeded.begin() as connection:
        connection.execute(sa.insert(ProviderRow.__table__).values(
            name="future", type="gemini", base_url="http://g.test", enabled=True, created_at=1, updated_at=1))
        config_store.bump_version(connection)
    assert live(seeded, settings).snapshot().names() == ["lm-studio", "mock"]
    assert "unknown type 'gemini'" in caplog.text


def test_an_unreadable_database_keeps_the_last_view(seeded, settings, monkeypatch, caplog):
    clock = Clock()
    worker = live(seeded, settings, clock)

    def broken(connection):
        raise sa.exc.OperationalError("SELECT", {}, Exception("gone"))

    monkeypatch.setattr("app.services.admin.live_registry.read_version", broken)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            clock.advance()
            assert worker.snapshot().active_name == "lm-studio"
    assert caplog.text.count("cannot read the provider settings") == 1


def test_after_a_failed_read_requests_route_by_the_last_view_without_asking_for_a_while(
    seeded, settings, monkeypatch
):
    clock = Clock()
    worker = live(seeded, settings, clock)
    attempts = []

    def broken(connection):
        attempts.append(clock.now)
        raise sa.exc.OperationalError("SELECT", {}, Exception("gone"))

    monkeypatch.setattr("app.services.admin.live_registry.read_version", broken)
    clock.advance()
    worker.snapshot()
    for _ in range(int(RETRY_AFTER_FAILURE_S / CHECK_INTERVAL_S) - 2):
        clock.advance()
        assert worker.snapshot().active_name == "lm-studio"
    assert len(attempts) == 1  # a sick database is not asked again on every request's path
    clock.advance(2 * CHECK_INTERVAL_S)
    worker.snapshot()
    assert len(attempts) == 2


def test_a_damaged_setting_is_ignored_not_fatal(seeded, settings):
    with seeded.begin() as connection:
        config_store.put_setting(connection, "fallback_providers", "mock,lm-studio")
        config_store.put_setting(connection, "models_cache_seconds", "soon")
    snapshot = live(seeded, settings).snapshot()
    assert (snapshot.fallback_names, snapshot.models_cache_s) == ((), 30.0)
