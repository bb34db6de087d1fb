"""provider-router: an OpenAI-compatible LLM gateway that logs every call."""

from __future__ import annotations

import dataclasses
import logging
import os
from functools import partial

import sqlalchemy as sa
from flask import Flask, Response

from app.config import ConfigError, Settings
from app.db import configure_pool, get_engine
from app.db.read_only import force_read_only, read_only_for
from app.errors import register_error_handlers
from app.extensions import Gateway
from app.logs import configure_logging
from app.migrate import ensure_schema_or_outage
from app.providers.registry import ProviderRegistry, ProviderSource
from app.services.admin.deferred_start import live_providers
from app.services.admin.health import HealthMonitor
from app.services.admin.live_registry import LiveRegistry
from app.services.audit.log import AuditLog
from app.services.history.responses_api import previous_items
from app.services.keys.gate import Counters, KeyGate
from app.services.keys.verify import KeyVerifier
from app.services.proxy.chat import ChatService
from app.services.search.indexer import SearchIndexer
from app.services.telemetry.calls import Telemetry
from app.services.telemetry.labels import ModelNames

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 32 * 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    """The gateway as a WSGI app; settings default to the environment."""
    settings = settings or Settings.from_env()
    configure_logging(settings)
    configure_pool(settings.pool)
    outage = prepare_database(settings)
    settings = resolve_read_only(settings) if outage is None else settings
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False  # answers pass through in the upstream's key order
    register_extensions(app, settings, outage=outage)
    register_error_handlers(app)
    register_blueprints(app, settings)
    return app


def prepare_database(settings: Settings) -> sa.exc.OperationalError | None:
    """Check (or create) the schema; the error instead when the database cannot be reached now.

    The worker then starts without it: its start-up work is owed (``deferred_start``). A schema
    behind the code, a database that refuses us (a wrong password) or a bad setting still stop it.
    """
    if not settings.enable_persistence:
        return None
    if settings.read_only:
        force_read_only(settings.database_url)  # before the schema check: never create a schema here
    return ensure_schema_or_outage(settings.database_url)


def resolve_read_only(settings: Settings) -> Settings:
    """Settings with ``read_only`` set when READ_ONLY=true or the database takes no writes (a hot standby)."""
    if not settings.enable_persistence:
        if settings.read_only:
            raise ConfigError("READ_ONLY=true serves a database's history: not with ENABLE_PERSISTENCE=false")
        return settings
    reason = read_only_for(settings)
    if reason is None:
        return settings
    log.warning("read-only instance: the database is %s; serving history and dashboard reads, refusing model "
                "calls and changes (send those to a gateway on the primary)", reason)
    return dataclasses.replace(settings, read_only=True)


def register_extensions(app: Flask, settings: Settings, *, outage: sa.exc.OperationalError | None = None) -> None:
    audit = None
    indexer = None
    deferred = None
    registry: ProviderSource
    telemetry = make_telemetry(settings)
    if settings.read_only and outage is not None:
        registry = LiveRegistry.without_database(settings.database_url, settings=settings)  # until it answers
    elif settings.read_only:
        # Nothing recorded, seeded or indexed: the providers as the primary's gateways left them.
        registry = LiveRegistry(get_engine(settings.database_url), settings=settings)
    elif settings.enable_persistence:
        # Providers and the active one live in the database; a change reaches every worker.
        registry, deferred = live_providers(settings, outage=outage)
        audit = AuditLog.for_settings(settings, telemetry=telemetry, healthy=deferred is None)
        if settings.search_indexer:
            indexer = SearchIndexer(settings.database_url)  # started with the worker's other background loops
    else:
        if settings.gateway_keys == "required":
            raise ConfigError("GATEWAY_KEYS=required needs the database: not with ENABLE_PERSISTENCE=false")
        log.warning("ENABLE_PERSISTENCE=false: chat calls are NOT being recorded")
        # No database at all: the providers of the environment, fixed until restart.
        registry = ProviderRegistry.from_settings(settings)
    telemetry.names.source = registry
    app.extensions["gateway"] = Gateway(
        settings=settings, registry=registry, telemetry=telemetry,
        health=HealthMonitor(probed=telemetry.sink.provider_probed),
        chat=ChatService(
            registry=registry, audit=audit, request_timeout_s=settings.request_timeout_s, telemetry=telemetry,
            previous_items=partial(previous_items, get_engine(settings.database_url))
            if audit is not None else None,
            store_embedding_vectors=settings.store_embedding_vectors, tracing=make_tracing(settings),
            keys=None if audit is None else KeyGate(
                verifier=KeyVerifier(get_engine(settings.database_url)), limits=audit.sql.limits,
                counters=Counters(audit.engine, wait_s=max(audit.write_timeout_s, 2.0)),
                mode=settings.gateway_keys, prices=settings.model_prices,
            ),
            prices=settings.model_prices,
        ),
        indexer=indexer, deferred=deferred,
    )


def make_telemetry(settings: Settings) -> Telemetry:
    """The metrics (METRICS) and the call log line (LOG_FORMAT=json); prometheus_client is imported only when on."""
    metrics = None
    if settings.metrics:
        from app.services.telemetry.metrics import Metrics

        metrics = Metrics()
    return Telemetry(metrics=metrics, names=ModelNames(None), log_calls=settings.log_format == "json")


def make_tracing(settings: Settings):
    """OpenTelemetry, once an OTLP endpoint is configured; otherwise none of it is even imported."""
    if not settings.tracing:
        return None
    from app.services.telemetry.tracing import Tracing

    return Tracing(capture_content=settings.trace_content)


def register_blueprints(app: Flask, settings: Settings) -> None:
    from app.api import health, model_list, providers, proxy, responses
    from app.api import settings as settings_api

    if settings.read_only:
        from app.api.read_only import refuse_writes

        app.before_request(refuse_writes)
    app.register_blueprint(proxy.bp)
    if settings.metrics:
        from app.api import metrics

        app.register_blueprint(metrics.bp)
    if settings.enable_persistence:
        app.register_blueprint(responses.bp)
    app.register_blueprint(model_list.bp)
    app.register_blueprint(health.bp)
    if settings.enable_crud_api and settings.enable_persistence:
        app.register_blueprint(providers.bp)
        app.register_blueprint(settings_api.bp)
    if settings.expose_worker_pid:
        app.after_request(_worker_header)
    register_history_api(app)


def _worker_header(response: Response) -> Response:
    response.headers["X-Gateway-Worker"] = str(os.getpid())
    return response


def register_history_api(app: Flask) -> None:
    """The history API (sessions, requests, responses, stats) with /openapi.json and /docs."""
    from app.api import history, keys, sessions, stats
    from app.api.model_calls_doc import document_model_calls
    from app.api.rest import create_api

    api = create_api(app)
    document_model_calls(api.spec, app)
    settings = app.extensions["gateway"].settings
    if not settings.enable_crud_api:
        log.info("ENABLE_CRUD_API=false: the history API is off")
        return
    if settings.admin_api_key is None:
        log.warning("history API open to loopback clients only (ADMIN_API_KEY not set)")
    for module in (sessions, history, stats, keys):
        api.register_blueprint(module.blp)
    if settings.enable_persistence:
        from app.api.ui import register_ui

        register_ui(app)
