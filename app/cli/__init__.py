"""provider-cli: manage providers and read the audit trail from a terminal."""

from __future__ import annotations

import click

from app.cli.audit import audit_group
from app.cli.common import CliGroup
from app.cli.db import db_group
from app.cli.export import export_command
from app.cli.history import history_command, sessions_group, show_command
from app.cli.importer import import_command
from app.cli.keys import keys_group
from app.cli.providers import list_command, providers_group, status_command, test_command
from app.cli.prune import prune_command
from app.cli.search import search_group
from app.cli.settings import set_command
from app.cli.stats import stats_command


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Manage the provider-router gateway from its host, on the configured database (DATABASE_URL).

    No running server needed; a running gateway sees changes within a second.
    """


for command in (
    status_command, set_command, list_command, test_command, providers_group, history_command, show_command,
    sessions_group, stats_command, export_command, prune_command, db_group, import_command, audit_group,
    search_group, keys_group,
):
    cli.add_command(command)
cli.add_command(list_command, name="ls")


def main() -> None:
    cli()
