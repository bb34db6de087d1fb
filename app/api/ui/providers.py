"""/ui/providers: health and latency, switching the active provider, the fallback order.

Changes go through the management API's schema and service functions (same validation, same
config version bump), and this worker applies them at once as the API does.
"""

from __future__ import annotations

from flask import redirect, render_template, request, url_for

from app.api.management import admin_context
from app.api.ui.blueprint import bp
from app.errors import InvalidRequest
from app.extensions import gateway
from app.schemas.providers import SettingsSchema
from app.schemas.validation import load
from app.services.admin import providers as provider_admin
from app.services.admin import settings as settings_admin


def _page(*, error: str | None = None, status: int = 200):
    context = admin_context()
    health = gateway().health.report(gateway().registry.snapshot())
    return render_template(
        "ui/providers.html", providers=provider_admin.list_providers(**context),
        settings=settings_admin.get_settings(**context), health=health["providers"], error=error,
        saved=request.args.get("saved"),
    ), status


@bp.get("/providers")
def providers():
    return _page()


def _save(values: dict) -> object:
    try:
        settings_admin.put_settings(values=load(SettingsSchema(), values), **admin_context())
    except InvalidRequest as exc:
        return _page(error=exc.message, status=400)
    gateway().registry.check()  # this worker routes by the change at once; the others within a second
    return redirect(url_for("ui.providers", saved=next(iter(values))), 303)


@bp.post("/providers/active")
def set_active_provider():
    return _save({"active_provider": request.form.get("name", "")})


@bp.post("/providers/fallbacks")
def set_fallbacks():
    names = [name.strip() for name in request.form.get("fallbacks", "").split(",") if name.strip()]
    return _save({"fallback_providers": names})
