"""/ui/login and /ui/logout: the admin key for a signed session cookie, and back."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for

from app.api.ui import auth
from app.api.ui.blueprint import bp


@bp.get("/login")
def login():
    if not auth.key_required():
        return redirect(url_for("ui.overview"))
    return render_template("ui/login.html", next=request.args.get("next", ""), error=None)


@bp.post("/login")
def login_post():
    if not auth.key_required():
        return redirect(url_for("ui.overview"))
    auth.check_csrf()
    target = auth.safe_next(request.form.get("next"))
    if not auth.key_matches(request.form.get("key", "")):
        return render_template("ui/login.html", next=target, error="That is not the admin key."), 401
    return auth.sign_in(redirect(target, 303))


@bp.post("/logout")
def logout():
    return auth.sign_out(redirect(url_for("ui.login" if auth.key_required() else "ui.overview"), 303))
