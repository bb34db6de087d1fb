"""One settings object, read from the environment, with defaults that just work."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from app import env_values as read
from app.env_values import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_PATH = "data/provider-router.db"
AUDIT_FAILURE_MODES = ("open", "closed")
GATEWAY_KEY_MODES = ("optional", "required")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """What a model costs, in US dollars per million prompt and completion tokens."""

    prompt: float
    completion: float


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """PostgreSQL connections per worker: ``size`` kept, ``overflow`` more at peaks."""

    size: int = 5
    overflow: int = 15
    # Server-side prepared statements (psycopg prepares a statement run 5 times); off behind
    # PgBouncer in transaction mode, where the next transaction may run on another server connection.
    prepared_statements: bool = True

    @property
    def per_worker(self) -> int:
        return self.size + self.overflow


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the gateway reads from its environment."""

    database_url: str
    default_provider: str = "lm-studio"
    lm_studio_base_url: str = "http://localhost:1234/v1"
    openai_base_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    qwen_base_url: str | None = None
    qwen_token: str | None = field(default=None, repr=False)
    qwen_cookies: str | None = field(default=None, repr=False)
    qwen_model: str = "qwen3-max"
    request_timeout_ms: int = 120_000
    session_timeout_ms: int = 1_800_000
    enable_persistence: bool = True
    enable_crud_api: bool = True
    # Serve history reads only, write nothing (a hot standby's gateway); also found at start-up from the server.
    read_only: bool = False
    admin_api_key: str | None = field(default=None, repr=False)
    log_level: str = "INFO"
    # Adds X-Gateway-Worker (the worker's pid) to chat answers: for tests and debugging only.
    expose_worker_pid: bool = False
    # The background indexer of content search (off: calls are indexed by `provider-cli search reindex`).
    search_indexer: bool = True
    # Signs the dashboard's session cookie; derived from ADMIN_API_KEY when unset (see app/api/ui/auth.py).
    ui_secret_key: str | None = field(default=None, repr=False)
    # Keyed by "provider/model" or bare "model"; models missing here are priced 0 and flagged.
    model_prices: Mapping[str, ModelPrice] = field(default_factory=dict, hash=False)
    # Where audit records wait when the database cannot take them (one directory per database).
    audit_journal_dir: Path = field(default=PROJECT_ROOT / "data" / "audit-journal")
    audit_journal_max_bytes: int = 1 << 30
    # Database unusable and journal full: "open" serves and counts unrecorded calls, "closed" answers 503.
    audit_failure_mode: str = "open"
    # The longest a call waits for its audit write (SQLite's lock, PostgreSQL's round trips);
    # None: the engine's default (100 ms on SQLite, 1000 ms on PostgreSQL).
    audit_write_timeout_ms: int | None = None
    # How long a gateway process on another host may go unseen before its open calls are ended.
    audit_sweep_grace_ms: int = 60_000
    # PostgreSQL connections per worker, and whether the server may keep prepared statements.
    db_pool_size: int = 5
    db_max_overflow: int = 15
    db_prepared_statements: bool = True
    # Embeddings calls keep their count, dimensions and usage; the vectors too only when asked.
    store_embedding_vectors: bool = False
    # Gateway keys on model calls: "optional" attributes calls that carry one, "required" refuses the others.
    gateway_keys: str = "optional"
    # Prometheus series at /metrics (METRICS), open to any client that reaches it (METRICS_PUBLIC).
    metrics: bool = True
    metrics_public: bool = False
    log_format: str = "text"  # "json": one JSON object per line, one line per call
    # OpenTelemetry traces: on once an OTLP endpoint is set; message content only when asked.
    tracing: bool = False
    trace_content: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def request_timeout_s(self) -> float:
        return self.request_timeout_ms / 1000

    @property
    def pool(self) -> PoolSettings:
        return PoolSettings(size=self.db_pool_size, overflow=self.db_max_overflow,
                            prepared_statements=self.db_prepared_statements)

    @property
    def audit_write_timeout_s(self) -> float | None:
        return None if self.audit_write_timeout_ms is None else self.audit_write_timeout_ms / 1000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the settings; raise ConfigError naming the bad variable."""
        env = os.environ if environ is None else environ
        database_url = _database_url(env)
        return cls(
            database_url=database_url,
            default_provider=read.name(env, "DEFAULT_PROVIDER", "lm-studio"),
            lm_studio_base_url=read.url(env, "LM_STUDIO_BASE_URL", "http://localhost:1234/v1"),
            openai_base_url=read.url(env, "OPENAI_BASE_URL", None),
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            qwen_base_url=read.url(env, "QWEN_BASE_URL", None),
            qwen_token=env.get("QWEN_TOKEN") or None,
            qwen_cookies=env.get("QWEN_COOKIES") or None,
            qwen_model=env.get("QWEN_MODEL", "").strip() or "qwen3-max",
            request_timeout_ms=read.positive_int(env, "REQUEST_TIMEOUT", 120_000),
            session_timeout_ms=read.positive_int(env, "SESSION_TIMEOUT", 1_800_000),
            enable_persistence=read.flag(env, "ENABLE_PERSISTENCE", True),
            enable_crud_api=read.flag(env, "ENABLE_CRUD_API", True),
            read_only=read.flag(env, "READ_ONLY", False),
            admin_api_key=env.get("ADMIN_API_KEY") or None,
            log_level=read.log_level(env),
            expose_worker_pid=read.flag(env, "EXPOSE_WORKER_PID", False),
            search_indexer=read.flag(env, "SEARCH_INDEXER", True),
            ui_secret_key=env.get("UI_SECRET_KEY") or None,
            model_prices=_model_prices(env),
            audit_journal_dir=_journal_dir(env, database_url),
            audit_journal_max_bytes=read.size(env, "AUDIT_JOURNAL_MAX_BYTES", 1 << 30),
            audit_failure_mode=read.choice(env, "AUDIT_FAILURE_MODE", AUDIT_FAILURE_MODES),
            audit_write_timeout_ms=read.positive_int(env, "AUDIT_WRITE_TIMEOUT_MS", None),
            audit_sweep_grace_ms=read.positive_int(env, "AUDIT_SWEEP_GRACE", 60_000),
            db_pool_size=read.count(env, "DB_POOL_SIZE", 5, minimum=1),
            db_max_overflow=read.count(env, "DB_MAX_OVERFLOW", 15, minimum=0),
            db_prepared_statements=read.flag(env, "DB_PREPARED_STATEMENTS", True),
            store_embedding_vectors=read.flag(env, "STORE_EMBEDDING_VECTORS", False),
            gateway_keys=read.choice(env, "GATEWAY_KEYS", GATEWAY_KEY_MODES),
            metrics=read.flag(env, "METRICS", True),
            metrics_public=read.flag(env, "METRICS_PUBLIC", False),
            log_format=read.choice(env, "LOG_FORMAT", LOG_FORMATS),
            tracing=bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            and not read.flag(env, "OTEL_SDK_DISABLED", False) and env.get("OTEL_TRACES_EXPORTER", "otlp") != "none",
            trace_content=read.flag(env, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", False),
        )

    def secrets(self) -> dict[str, str]:
        """The provider secrets read from the environment, by variable name."""
        values = {
            "OPENAI_API_KEY": self.openai_api_key,
            "QWEN_TOKEN": self.qwen_token,
            "QWEN_COOKIES": self.qwen_cookies,
        }
        return {name: value for name, value in values.items() if value}


def _database_url(env: Mapping[str, str]) -> str:
    url = env.get("DATABASE_URL", "").strip()
    if url:
        if "://" not in url:
            raise ConfigError(
                f"DATABASE_URL must be an SQLAlchemy URL such as "
                f"postgresql+psycopg://user@host/db, got {url!r}"
            )
        return url
    raw = env.get("DATABASE_PATH", "").strip() or DEFAULT_DATABASE_PATH
    if raw == ":memory:":
        raise ConfigError("DATABASE_PATH=:memory: is not supported: each worker would log alone")
    path = Path(raw)
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    return f"sqlite:///{path}"


def _journal_dir(env: Mapping[str, str], database_url: str) -> Path:
    """AUDIT_JOURNAL_DIR, else one of the database's own: next to an SQLite file, or under data/."""
    raw = env.get("AUDIT_JOURNAL_DIR", "").strip()
    if raw:
        path = Path(raw)
        return path if path.is_absolute() else PROJECT_ROOT / path
    url = urlsplit(database_url)
    if url.scheme.startswith("sqlite"):
        return Path(database_url.split("///", 1)[1] + ".audit-journal")
    name = "_".join(part for part in (url.hostname, str(url.port or ""), url.path.strip("/")) if part)
    return PROJECT_ROOT / "data" / "audit-journal" / (name.replace("/", "_") or "default")


def _model_prices(env: Mapping[str, str]) -> dict[str, ModelPrice]:
    """MODEL_PRICES: inline JSON, or the path of a JSON file, mapping models to USD per 1M tokens.

    ``{"gpt-4o": {"prompt": 2.5, "completion": 10}, "openai/gpt-4o-mini": {...}}``
    """
    raw = env.get("MODEL_PRICES", "").strip()
    if not raw:
        return {}
    if raw[0] in "{[":
        text = raw
    else:
        path = Path(raw)
        if not path.is_absolute():
            path = PROJECT_ROOT / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"MODEL_PRICES names a file that cannot be read: {path} ({exc.strerror})") from None
    try:
        table = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"MODEL_PRICES is not valid JSON: {exc}") from None
    if not isinstance(table, dict):
        raise ConfigError("MODEL_PRICES must be a JSON object mapping model names to prices")
    prices = {}
    for model, price in table.items():
        if not model.strip() or not isinstance(price, dict) or set(price) != {"prompt", "completion"}:
            raise ConfigError(
                f"MODEL_PRICES[{model!r}] must be {{\"prompt\": USD, \"completion\": USD}} per 1M tokens"
            )
        values = [price["prompt"], price["completion"]]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                   for v in values):
            raise ConfigError(f"MODEL_PRICES[{model!r}] prices must be numbers >= 0, got {price!r}")
        prices[model.strip()] = ModelPrice(prompt=float(values[0]), completion=float(values[1]))
    return prices
