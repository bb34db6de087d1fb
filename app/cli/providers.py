"""``status``, ``list``, ``test`` and ``providers add|update|remove|enable|disable``: the REST API's checks."""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy as sa

from app.cli.common import Gateway, json_option, open_gateway, print_json, print_table
from app.config import Settings
from app.migrate import current_revision, head_revision
from app.schemas.providers import ProviderSchema
from app.schemas.validation import load
from app.services.admin import providers as provider_admin
from app.services.admin.health import PROBE_TIMEOUT_S
from app.services.history.sessions import row_counts


@click.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """Show the active provider, whether it answers, the schema revision and row counts.

    \b
    Examples:
      provider-cli status
      provider-cli status --json | jq .active_provider
    """
    settings = Settings.from_env()
    current, head = current_revision(settings.database_url), head_revision(settings.database_url)
    if current is not None and current != head:
        raise click.ClickException(
            f"the database schema is at revision {current}, the code needs {head}: run `provider-cli db upgrade`"
        )
    gateway = open_gateway()
    active = next((p for p in _providers(gateway) if p["active"]), None)
    probe = None
    if active is not None:
        probe = provider_admin.test_provider(
            gateway.engine, name=active["name"], default_timeout_s=settings.request_timeout_s,
            timeout_s=PROBE_TIMEOUT_S,
        )
    with gateway.engine.connect() as connection:
        counts = row_counts(connection)
    report = {
        "active_provider": active["name"] if active else settings.default_provider,
        "base_url": active["base_url"] if active else None,
        "reachable": bool(probe and probe["ok"]), "latency_ms": probe["latency_ms"] if probe else None,
        "error": probe["error"] if probe else "the active provider is not configured",
        "database": sa.make_url(settings.database_url).render_as_string(hide_password=True),
        "schema_revision": head, "rows": counts,
    }
    if as_json:
        print_json(report)
        return
    reach = f"reachable ({report['latency_ms']} ms)" if report["reachable"] else f"UNREACHABLE: {report['error']}"
    click.echo(f"Active provider: {report['active_provider']}  {report['base_url'] or '-'}  {reach}")
    click.echo(f"Database:        {report['database']}")
    click.echo(f"Schema:          {head} (head)")
    click.echo("Rows:            " + ", ".join(f"{n} {table}" for table, n in counts.items()))


@click.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """List the providers: type, base URL, enabled, and which one is active (*).

    \b
    Examples:
      provider-cli list
      provider-cli ls --json
    """
    providers = _providers(open_gateway())
    if as_json:
        print_json(providers)
        return
    print_table(
        ("", "name", "type", "base URL", "enabled", "default model"),
        (("*" if p["active"] else "", p["name"], p["type"], p["base_url"], "yes" if p["enabled"] else "no",
          p["default_model"] or "-") for p in providers),
    )


@click.command("test")
@click.argument("provider", required=False)
@json_option
def test_command(provider: str | None, as_json: bool) -> None:
    """Call PROVIDER (default: the active one) now; exit 0 if it answered, 1 if not.

    \b
    Examples:
      provider-cli test
      provider-cli test openai --json
    """
    gateway = open_gateway()
    listed = _providers(gateway)
    name = provider or next((p["name"] for p in listed if p["active"]), gateway.settings.default_provider)
    found = next((p for p in listed if p["name"] == name), None)
    if found is None:
        raise click.ClickException(f"Provider {name!r} does not exist. Known providers: {_names(listed)}.")
    result = provider_admin.test_provider(
        gateway.engine, name=name, default_timeout_s=gateway.settings.request_timeout_s
    )
    model = found["default_model"] or (result["models"][0] if result["models"] else None)
    if as_json:
        print_json({**result, "model": model})
    elif result["ok"]:
        click.echo(f"{name}: ok in {result['latency_ms']} ms, model {model or '-'} ({len(result['models'])} listed)")
    else:
        click.echo(f"{name}: FAILED after {result['latency_ms']} ms: {result['error']}", err=True)
    if not result["ok"]:
        raise SystemExit(1)


@click.group("providers", context_settings={"help_option_names": ["-h", "--help"]})
def providers_group() -> None:
    """Add, change, remove, enable and disable providers (checked like the REST API).

    \b
    Examples:
      provider-cli providers add openai --type openai --base-url https://api.openai.com/v1 --api-key-env OPENAI_API_KEY
      provider-cli providers update openai --default-model gpt-4o-mini
      provider-cli providers disable openai
    """


def _fields(function):
    for option in reversed((
        click.option("--type", "type_", help="Provider type (openai, lm-studio, qwen, mock...)."),
        click.option("--base-url", help="The upstream's http(s) URL."),
        click.option("--api-key-env", help="NAME of the environment variable holding the key (never the key)."),
        click.option("--default-model", help="Model used when a request names none."),
        click.option("--timeout-ms", type=int, help="Upstream timeout."),
        click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
                     help="A type-specific option, e.g. serves=chat (the endpoints an OpenAI-compatible server has)."),
    )):
        function = option(function)
    return function


def _body(type_, base_url, api_key_env, default_model, timeout_ms, options) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": type_, "base_url": base_url, "api_key_env": api_key_env, "default_model": default_model,
        "timeout_ms": timeout_ms,
    }
    body = {key: value for key, value in body.items() if value is not None}
    if options:
        pairs = [option.partition("=") for option in options]
        if any(not sep or not key for key, sep, _ in pairs):
            raise click.ClickException("invalid --option: use KEY=VALUE")
        body["options"] = {key: value for key, _, value in pairs}
    return body


@providers_group.command("add")
@click.argument("name")
@_fields
@click.option("--disabled", is_flag=True, help="Add it disabled.")
@json_option
def add_command(name: str, disabled: bool, as_json: bool, **fields: Any) -> None:
    """Add provider NAME."""
    gateway = open_gateway()
    body = {"name": name, **_body(**fields)}
    if disabled:
        body["enabled"] = False
    created = provider_admin.create_provider(
        gateway.engine, fields=load(ProviderSchema(), body), default_provider=gateway.settings.default_provider
    )
    _done(created, f"Added provider {name} ({created['type']}, {created['base_url']}).", as_json)


@providers_group.command("update")
@click.argument("name")
@_fields
@json_option
def update_command(name: str, as_json: bool, **fields: Any) -> None:
    """Change some fields of provider NAME."""
    body = _body(**fields)
    if not body:
        raise click.ClickException("nothing to change: give at least one option (see --help)")
    _change(name, body, f"Updated provider {name}.", as_json)


@providers_group.command("enable")
@click.argument("name")
@json_option
def enable_command(name: str, as_json: bool) -> None:
    """Enable provider NAME."""
    _change(name, {"enabled": True}, f"Enabled provider {name}.", as_json)


@providers_group.command("disable")
@click.argument("name")
@json_option
def disable_command(name: str, as_json: bool) -> None:
    """Disable provider NAME (not the active one)."""
    _change(name, {"enabled": False}, f"Disabled provider {name}.", as_json)


@providers_group.command("remove")
@click.argument("name")
@json_option
def remove_command(name: str, as_json: bool) -> None:
    """Delete provider NAME (not the active one); it is dropped from the fallbacks too."""
    gateway = open_gateway()
    provider_admin.delete_provider(gateway.engine, name=name, default_provider=gateway.settings.default_provider)
    _done({"deleted": True, "provider": name}, f"Removed provider {name}.", as_json)


def _change(name: str, body: dict[str, Any], message: str, as_json: bool) -> None:
    gateway = open_gateway()
    changed = provider_admin.update_provider(
        gateway.engine, name=name, changes=load(ProviderSchema(), body, partial=True),
        default_provider=gateway.settings.default_provider,
    )
    _done(changed, message, as_json)


def _done(data: dict[str, Any], message: str, as_json: bool) -> None:
    if as_json:
        print_json(data)
    else:
        click.echo(message)


def _providers(gateway: Gateway) -> list[dict[str, Any]]:
    return provider_admin.list_providers(gateway.engine, default_provider=gateway.settings.default_provider)


def _names(providers: list[dict[str, Any]]) -> str:
    return ", ".join(p["name"] for p in providers)

