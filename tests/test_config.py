"""Settings from the environment: defaults that just work, one clear line when a value is bad."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app import create_app
from app.config import PROJECT_ROOT, ConfigError, Settings


def test_defaults_just_work():
    settings = Settings.from_env({})
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'data' / 'provider-router.db'}"
    assert settings.default_provider == "lm-studio"
    assert settings.lm_studio_base_url == "http://localhost:1234/v1"
    assert settings.openai_base_url is None
    assert (settings.request_timeout_ms, settings.session_timeout_ms) == (120_000, 1_800_000)
    assert settings.enable_persistence is True and settings.log_level == "INFO"


def test_database_url_wins_over_path():
    env = {"DATABASE_URL": "postgresql+psycopg://u@h/db", "DATABASE_PATH": "/tmp/x.db"}
    assert Settings.from_env(env).database_url == "postgresql+psycopg://u@h/db"
    assert Settings.from_env({"DATABASE_PATH": "/tmp/x.db"}).database_url == "sqlite:////tmp/x.db"


@pytest.mark.parametrize(("name", "value"), [
    ("REQUEST_TIMEOUT", "soon"),
    ("REQUEST_TIMEOUT", "0"),
    ("SESSION_TIMEOUT", "-5"),
    ("ENABLE_PERSISTENCE", "maybe"),
    ("LOG_LEVEL", "LOUD"),
    ("LM_STUDIO_BASE_URL", "localhost:1234"),
    ("OPENAI_BASE_URL", "ftp://x"),
    ("DATABASE_URL", "not-a-url"),
    ("DEFAULT_PROVIDER", "bad name!"),
    ("DATABASE_PATH", ":memory:"),
    ("AUDIT_JOURNAL_MAX_BYTES", "lots"),
    ("AUDIT_JOURNAL_MAX_BYTES", "0"),
    ("AUDIT_FAILURE_MODE", "maybe"),
    ("AUDIT_WRITE_TIMEOUT_MS", "0"),
    ("AUDIT_SWEEP_GRACE", "soon"),
    ("DB_POOL_SIZE", "0"),
    ("DB_MAX_OVERFLOW", "-1"),
    ("DB_PREPARED_STATEMENTS", "sometimes"),
    ("READ_ONLY", "maybe"),
])
def test_invalid_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_the_audit_journal_belongs_to_its_database_and_is_bounded():
    sqlite = Settings.from_env({"DATABASE_PATH": "/srv/gw/gateway.db"})
    assert str(sqlite.audit_journal_dir) == "/srv/gw/gateway.db.audit-journal"
    postgres = Settings.from_env({"DATABASE_URL": "postgresql+psycopg://u:pw@db.internal:5433/gateway"})
    assert postgres.audit_journal_dir == PROJECT_ROOT / "data" / "audit-journal" / "db.internal_5433_gateway"
    assert (sqlite.audit_journal_max_bytes, sqlite.audit_failure_mode) == (1 << 30, "open")
    assert sqlite.audit_write_timeout_s is None  # the engine's own default
    chosen = Settings.from_env({"AUDIT_JOURNAL_DIR": "/var/spool/gw", "AUDIT_JOURNAL_MAX_BYTES": "512MiB",
                                "AUDIT_FAILURE_MODE": "Closed", "AUDIT_WRITE_TIMEOUT_MS": "250"})
    assert (str(chosen.audit_journal_dir), chosen.audit_journal_max_bytes) == ("/var/spool/gw", 512 << 20)
    assert (chosen.audit_failure_mode, chosen.audit_write_timeout_s) == ("closed", 0.25)


def test_the_connection_budget_is_set_per_worker():
    default = Settings.from_env({}).pool
    assert (default.size, default.overflow, default.per_worker, default.prepared_statements) == (5, 15, 20, True)
    behind_pgbouncer = Settings.from_env(
        {"DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "0", "DB_PREPARED_STATEMENTS": "false"}).pool
    assert (behind_pgbouncer.per_worker, behind_pgbouncer.prepared_statements) == (2, False)


def test_startup_says_how_many_postgresql_connections_an_instance_may_open():
    result = subprocess.run(
        [sys.executable, "-c", "from app.migrate import _say_connection_budget as say; from app.config import "
         "Settings; say(Settings.from_env({'DATABASE_URL': 'postgresql+psycopg://u@h/db', 'DB_POOL_SIZE': '3'}), "
         "workers=4)"],
        capture_output=True, text=True, cwd=PROJECT_ROOT, check=True,
    )
    assert "up to 72 PostgreSQL connections (4 workers x (DB_POOL_SIZE 3 + DB_MAX_OVERFLOW 15))" in result.stderr


def test_a_read_only_instance_needs_its_database():
    with pytest.raises(ConfigError, match="READ_ONLY=true .* not with ENABLE_PERSISTENCE=false"):
        create_app(Settings.from_env({"READ_ONLY": "true", "ENABLE_PERSISTENCE": "false", "LOG_LEVEL": "ERROR"}))


def test_secrets_stay_out_of_repr():
    settings = Settings.from_env({"OPENAI_BASE_URL": "https://x.test/v1", "OPENAI_API_KEY": "sk-secret"})
    assert "sk-secret" not in repr(settings)


def test_startup_check_prints_one_line_and_exits_1():
    result = subprocess.run(
        [sys.executable, "-m", "app", "check"],
        env={"REQUEST_TIMEOUT": "soon", "PATH": ""}, capture_output=True, text=True, cwd=PROJECT_ROOT,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "provider-router: REQUEST_TIMEOUT must be a whole number of milliseconds, got 'soon'"
    ]
