"""``db upgrade|current|history``: Alembic on the configured database, from any working directory."""

from __future__ import annotations

import click
from alembic.script import ScriptDirectory

from app.cli.common import CliGroup, json_option, print_json
from app.config import Settings
from app.migrate import alembic_config, current_revision, head_revision, upgrade


@click.group("db", cls=CliGroup)
def db_group() -> None:
    """The database schema (Alembic).

    \b
    Examples:
      provider-cli db current
      provider-cli db upgrade
      provider-cli db history --json
    """


@db_group.command("current")
@json_option
def current_command(as_json: bool) -> None:
    """Print the schema revision of the database and whether it is the code's head."""
    url = Settings.from_env().database_url
    current, head = current_revision(url), head_revision(url)
    if as_json:
        print_json({"current": current, "head": head, "up_to_date": current == head})
        return
    state = "(head)" if current == head else f"(behind head {head}: run `provider-cli db upgrade`)"
    click.echo(f"{current or 'none (empty database)'} {state}")


@db_group.command("upgrade")
def upgrade_command() -> None:
    """Bring the schema to head (a new database gets created)."""
    url = Settings.from_env().database_url
    before = current_revision(url)
    upgrade(url)
    after = current_revision(url)
    click.echo(f"Already at head {after}." if before == after else f"Upgraded {before or 'empty'} -> {after}.")


@db_group.command("history")
@json_option
def history_command(as_json: bool) -> None:
    """List the migrations, newest first; the database's current one is marked."""
    url = Settings.from_env().database_url
    current = current_revision(url)
    script = ScriptDirectory.from_config(alembic_config(url))
    revisions = [
        {"revision": rev.revision, "down_revision": rev.down_revision, "message": rev.doc,
         "current": rev.revision == current}
        for rev in script.walk_revisions()
    ]
    if as_json:
        print_json(revisions)
        return
    for rev in revisions:
        click.echo(f"{'*' if rev['current'] else ' '} {rev['revision']}  {rev['message']}")
