"""provider-cli: manage providers and read the audit trail from a terminal."""

from __future__ import annotations

import click

from app.cli.importer import import_command
from app.cli.settings import set_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Manage the provider-router gateway from its host."""


cli.add_command(import_command)
cli.add_command(set_command)


def main() -> None:
    cli()
