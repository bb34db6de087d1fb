"""``audit``: the audit journal from a terminal: its status, replaying it, and its dead letters."""

from __future__ import annotations

import click
import sqlalchemy as sa

from app.cli.common import json_option, print_json, print_table, when
from app.config import Settings
from app.db import get_engine
from app.models import now_ms
from app.services.audit.manual import list_dead_letters, replay_dead_letters, replay_journal
from app.services.audit.segments import status


@click.group("audit")
def audit_group() -> None:
    """The audit journal: where calls wait while the database cannot take them.

    \b
    Examples:
      provider-cli audit status
      provider-cli audit replay
      provider-cli audit dead-letters --json
      provider-cli audit replay --dead-letters
    """


@audit_group.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """The journal's size, its oldest record, dead letters and calls recorded nowhere; the database's state."""
    settings = Settings.from_env()
    journal = status(settings.audit_journal_dir)
    database = _database_state(settings.database_url)
    age = None if journal.oldest_at is None else round((now_ms() - journal.oldest_at) / 1000, 1)
    if as_json:
        print_json({"database": database, **journal.as_dict(), "oldest_record_age_s": age})
        return
    for label, value in (
        ("Database", database),
        ("Journal", journal.directory),
        ("Waiting", f"{journal.records} records in {journal.segments} segments, {journal.bytes} bytes"),
        ("Oldest", "-" if age is None else f"{when(journal.oldest_at)} UTC ({age} s ago)"),
        ("Dead letters", journal.dead_letters),
        ("Unrecorded", f"{journal.unrecorded} calls"),
    ):
        click.echo(f"{label + ':':<14}{value}")


@audit_group.command("replay")
@click.option("--dead-letters", "dead", is_flag=True, help="Try the dead letters again instead of the journal.")
@json_option
def replay_command(dead: bool, as_json: bool) -> None:
    """Write what waits in the journal into the database now (a running gateway does this by itself).

    Segments a running gateway process is still writing are left to it.
    """
    settings = Settings.from_env()
    report = replay_dead_letters(settings) if dead else replay_journal(settings)
    if as_json:
        print_json({"replayed": report.records, "dead_letters": report.dead_letters,
                    "left_to_running_gateway": report.busy_segments, "interrupted": report.interrupted})
        return
    what = "dead letters" if dead else "journal records"
    click.echo(f"Replayed {report.records} {what}; {report.dead_letters} refused and kept as dead letters.")
    if report.interrupted:
        click.echo(f"Ended {report.interrupted} calls of gateway processes that died as interrupted.")
    if report.busy_segments:
        click.echo(f"Left {len(report.busy_segments)} segments to the running gateway that is writing them.")


@audit_group.command("dead-letters")
@json_option
def dead_letters_command(as_json: bool) -> None:
    """Records the database refused even after repair, with the reason; `audit replay --dead-letters` retries them."""
    letters = list_dead_letters(Settings.from_env().audit_journal_dir)
    if as_json:
        print_json(letters)
        return
    print_table(("kind", "request", "session", "error"),
                [(d["kind"], d["request_id"], d["session_id"], d["error"]) for d in letters])
    click.echo(f"{len(letters)} dead letters")


def _database_state(url: str) -> str:
    try:
        with get_engine(url).connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return f"unreachable ({type(getattr(exc, 'orig', None) or exc).__name__})"
    return "reachable"
