"""``provider-cli set PROVIDER``: switch the active provider of every running gateway."""

from __future__ import annotations

import click
import sqlalchemy as sa

from app.config import ConfigError, Settings
from app.db import get_engine
from app.errors import InvalidRequest
from app.migrate import SchemaOutdated, ensure_schema
from app.services.admin.config_store import seed
from app.services.admin.providers import list_providers
from app.services.admin.settings import get_settings, put_settings


@click.command("set")
@click.argument("provider")
def set_command(provider: str) -> None:
    """Make PROVIDER the active provider; every worker follows within a second, no restart.

    \b
    Examples:
      provider-cli set mock
      provider-cli set openai
    """
    try:
        settings = Settings.from_env()
        ensure_schema(settings.database_url)
        engine = get_engine(settings.database_url)
        seed(engine, settings)  # a database no gateway has started on yet
        before = get_settings(engine, default_provider=settings.default_provider)["active_provider"]
        try:
            put_settings(engine, values={"active_provider": provider}, default_provider=settings.default_provider)
        except InvalidRequest as exc:
            names = [p["name"] for p in list_providers(engine, default_provider=settings.default_provider)]
            raise click.ClickException(f"{exc.message} Known providers: {', '.join(names)}.") from None
    except (ConfigError, SchemaOutdated) as exc:
        raise click.ClickException(str(exc)) from None
    except sa.exc.OperationalError as exc:
        raise click.ClickException(f"cannot open the database: {exc.orig}") from None
    click.echo(f"Active provider: {before} -> {provider}")
