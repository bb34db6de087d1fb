"""/health/live and /health/ready: ready while the call can be routed and recorded somewhere."""

from __future__ import annotations

import os

from app import create_app


def test_live_answers_and_ready_reports_its_checks(client):
    live = client.get("/health/live")
    assert live.get_json() == {"status": "ok"} and live.headers["X-Worker"] == str(os.getpid())
    reply = client.get("/health/ready")
    assert reply.status_code == 200
    assert reply.get_json() == {"status": "ready", "active_provider": "lm-studio", "database": "ok", "journal": "ok"}


def test_a_database_down_is_still_ready_while_the_journal_takes_calls(app, client):
    audit = app.extensions["gateway"].chat.audit
    audit.healthy = False  # what a failed write does (the e2e test fails a real disk)
    reply = client.get("/health/ready")
    assert (reply.status_code, reply.get_json()["database"], reply.get_json()["journal"]) == (200, "down", "ok")


def test_a_database_down_with_the_journal_at_its_cap_is_unready(make_settings):
    app = create_app(make_settings(audit_journal_max_bytes=1))
    client = app.test_client()
    assert client.get("/health/ready").get_json()["journal"] == "unusable"
    assert client.get("/health/ready").status_code == 200  # the database takes the calls
    app.extensions["gateway"].chat.audit.healthy = False
    reply = client.get("/health/ready")
    assert reply.status_code == 503
    assert reply.get_json()["status"] == "unready"
    app.extensions["gateway"].stop_background()


def test_without_persistence_only_routing_counts(make_settings):
    client = create_app(make_settings(enable_persistence=False, default_provider="mock")).test_client()
    assert client.get("/health/ready").get_json() == {"status": "ready", "active_provider": "mock",
                                                      "recording": "off"}
