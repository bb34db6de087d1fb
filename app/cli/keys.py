"""``keys``: issue and manage teams' gateway keys (the same service functions as /v1/keys)."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.orm import Session

from app.cli.common import CliGroup, json_option, open_gateway, print_json, print_table, when
from app.errors import InvalidRequest
from app.services.keys import store


@click.group("keys", cls=CliGroup)
def keys_group() -> None:
    """Gateway keys: who may call models, within which budget and rate (GATEWAY_KEYS)."""


def _tags(values: tuple[str, ...]) -> dict[str, str] | None:
    tags = {}
    for value in values:
        name, equals, text = value.partition("=")
        if not equals:
            raise InvalidRequest(f"Invalid --tag {value!r}: expected NAME=VALUE.")
        tags[name] = text
    return tags or None


@keys_group.command("create")
@click.argument("name")
@click.option("--budget-usd", type=float, help="Spend allowed per period (by MODEL_PRICES).")
@click.option("--period", type=click.Choice(["day", "month"]), default="month", show_default=True)
@click.option("--rpm", type=int, help="Calls per minute.")
@click.option("--tpm", type=int, help="Tokens per minute.")
@click.option("--models", help="Allowed model patterns, comma-separated (e.g. 'mock/*,gpt-4o*').")
@click.option("--tag", "tags", multiple=True, help="A default tag NAME=VALUE of the key's calls (repeatable).")
@json_option
def create_command(name: str, budget_usd: float | None, period: str, rpm: int | None, tpm: int | None,
                   models: str | None, tags: tuple[str, ...], as_json: bool) -> None:
    """Issue a key NAME; the key is printed this once and never stored.

    \b
    Examples:
      provider-cli keys create search --budget-usd 50 --period month --rpm 60 --tag team=search
      provider-cli keys create batch --models 'mock/*,qwen/*' --tpm 100000
    """
    spec = store.KeySpec(
        name=name, budget_usd=budget_usd, period=period, rpm=rpm, tpm=tpm,
        models=tuple(p.strip() for p in (models or "").split(",") if p.strip()), tags=_tags(tags),
    )
    with Session(open_gateway().engine) as db:
        described, key = store.create_key(db, spec)
        db.commit()
    _issued(described, key, as_json=as_json)


@keys_group.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """Every key: prefix, status, limits, spend this period."""
    with Session(open_gateway().engine) as db:
        keys = store.list_keys(db)
    if as_json:
        print_json(keys)
        return
    print_table(("name", "prefix", "status", "budget", "spent", "calls", "rpm", "tpm", "models", "tags"),
                (_row(key) for key in keys))


@keys_group.command("show")
@click.argument("name")
@json_option
def show_command(name: str, as_json: bool) -> None:
    """One key's limits, status and spend this period."""
    with Session(open_gateway().engine) as db:
        key = store.show_key(db, name)
    if as_json:
        print_json(key)
        return
    for field, value in key.items():
        click.echo(f"{field:21} {when(value) if field.endswith('_at') and value else value}")


@keys_group.command("revoke")
@click.argument("name")
def revoke_command(name: str) -> None:
    """Refuse key NAME from now on (every running gateway within a second)."""
    with Session(open_gateway().engine) as db:
        store.revoke_key(db, name)
        db.commit()
    click.echo(f"Key {name} revoked.")


@keys_group.command("rotate")
@click.argument("name")
@click.option("--grace", "grace_s", type=int, default=store.DEFAULT_GRACE_S, show_default=True,
              help="Seconds the replaced key keeps working.")
@json_option
def rotate_command(name: str, grace_s: int, as_json: bool) -> None:
    """A new key for NAME (same limits and spend); the old one works --grace more seconds."""
    with Session(open_gateway().engine) as db:
        described, key = store.rotate_key(db, name, grace_s=grace_s)
        db.commit()
    _issued(described, key, as_json=as_json)


def _issued(described: dict[str, Any], key: str, *, as_json: bool) -> None:
    if as_json:
        print_json({**described, "key": key})
        return
    click.echo(key)
    click.echo(f"Key {described['name']} ({described['prefix']}...): keep it now, it is not shown again.", err=True)


def _row(key: dict[str, Any]) -> tuple:
    budget = "-" if key["budget_usd"] is None else f"${key['budget_usd']:g}/{key['period']}"
    return (key["name"], key["prefix"], key["status"], budget, f"${key['spent_usd']:.4f}", key["calls"],
            key["rpm"] or "-", key["tpm"] or "-", ",".join(key["models"]) or "*",
            ",".join(f"{k}={v}" for k, v in key["tags"].items()))
