"""The dashboard at /ui: server-rendered pages over the same services as the REST API."""

from __future__ import annotations

from flask import Flask


def register_ui(app: Flask) -> None:
    """Register /ui (its views are imported here, once, so that each module adds its routes)."""
    from app.api.ui import call, calls, keys, login, overview, providers, sessions  # noqa: F401 - they add routes
    from app.api.ui.blueprint import bp

    app.register_blueprint(bp)
