"""/v1/keys: issue, list, show, revoke and rotate gateway keys (admin only)."""

from __future__ import annotations

from app.api.rest import HistoryBlueprint, db
from app.extensions import gateway
from app.schemas.keys import KeyCreateArgs, KeyIssuedSchema, KeyListSchema, KeyRotateArgs, KeySchema
from app.services.keys import store

blp = HistoryBlueprint("keys", __name__, url_prefix="/v1", description="Gateway keys of teams: budgets, rates, tags.")


def _changed() -> None:
    """Commit, and let this worker see the change at once (the others within a second)."""
    db().commit()
    keys = gateway().chat.keys
    if keys is not None:
        keys.verifier.forget()


@blp.route("/keys", methods=["GET"])
@blp.response(200, KeyListSchema)
def list_keys():
    """Every key, without the keys themselves: name, prefix, limits, spend this period."""
    return {"object": "list", "data": store.list_keys(db())}


@blp.route("/keys", methods=["POST"], errors=(400, 409))
@blp.arguments(KeyCreateArgs, error_status_code=400)
@blp.response(201, KeyIssuedSchema)
def create_key(spec):
    """A new key; the answer holds the key itself, the only time it is shown."""
    described, key = store.create_key(db(), spec)
    _changed()
    return {**described, "key": key}


@blp.route("/keys/<name>", methods=["GET"], errors=(404,))
@blp.response(200, KeySchema)
def show_key(name: str):
    """One key: limits, status, spend this period."""
    return store.show_key(db(), name)


@blp.route("/keys/<name>/revoke", methods=["POST"], errors=(404,))
@blp.response(200, KeySchema)
def revoke_key(name: str):
    """Refuse the key (and a rotated-out one) from now on: every worker within a second."""
    described = store.revoke_key(db(), name)
    _changed()
    return described


@blp.route("/keys/<name>/rotate", methods=["POST"], errors=(400, 404, 409))
@blp.arguments(KeyRotateArgs, location="query", error_status_code=400)
@blp.response(200, KeyIssuedSchema)
def rotate_key(args, name: str):
    """A new key for the same name and counters; the old one works ``grace_seconds`` more (default 3600)."""
    described, key = store.rotate_key(db(), name, grace_s=args["grace_seconds"])
    _changed()
    return {**described, "key": key}
