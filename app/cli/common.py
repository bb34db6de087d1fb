"""What every provider-cli command shares: the database, `--json`, tables, times, and `Error:` lines."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from app.config import ConfigError, Settings
from app.db import configure_pool, get_engine
from app.db.read_only import read_only_for
from app.errors import GatewayError
from app.migrate import SchemaOutdated, ensure_schema
from app.services.admin.config_store import seed

F = TypeVar("F", bound=Callable[..., Any])
_SPAN = re.compile(r"^(\d+)\s*([smhdw])$")
_SPAN_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class CliGroup(click.Group):
    """A group whose commands fail as one ``Error: <message>`` line on stderr and exit 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GatewayError as exc:
            raise click.ClickException(exc.message) from None
        except (ConfigError, SchemaOutdated) as exc:
            raise click.ClickException(str(exc)) from None
        except sa.exc.OperationalError as exc:
            raise click.ClickException(f"cannot open the database: {exc.orig}") from None
        except sa.exc.SQLAlchemyError as exc:
            raise click.ClickException(f"database error: {getattr(exc, 'orig', None) or exc}") from None
        except BrokenPipeError:  # `provider-cli history | head`
            sys.stderr.close()
            ctx.exit(0)
        except OSError as exc:  # a file to write that cannot be opened
            where = f": {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from None


@dataclass(frozen=True, slots=True)
class Gateway:
    """The configured database, ready to use: settings and its engine."""

    settings: Settings
    engine: Engine


def open_gateway() -> Gateway:
    """Settings from the environment and the database at head (a new one is created and seeded)."""
    settings = Settings.from_env()
    configure_pool(settings.pool)
    ensure_schema(settings.database_url)
    engine = get_engine(settings.database_url)
    if read_only_for(settings) is None:  # a standby's reads need no seed (and take none)
        seed(engine, settings)  # a database no gateway has started on yet
    return Gateway(settings=settings, engine=engine)


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(function)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def console() -> Console:
    """A console on the current stdout; wide and plain when piped so rows are never cut."""
    out = sys.stdout
    tty = out.isatty()
    return Console(file=out, width=None if tty else 250, no_color=not tty, highlight=False, soft_wrap=not tty)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    table = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(table)


def progress_wanted() -> bool:
    """A progress bar only for a person at a terminal, never when piped."""
    return sys.stderr.isatty()


def parse_since(text: str | None, *, now_ms: int) -> int | None:
    """``30m``, ``2h``, ``7d``, ``1w`` before now, or an ISO date/time (UTC unless it says): ms since the epoch."""
    if text is None:
        return None
    match = _SPAN.match(text.strip())
    if match:
        return now_ms - int(match.group(1)) * _SPAN_MS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.ClickException(
            f"invalid --since {text!r}: use a span like 30m, 2h, 7d or an ISO time like 2026-01-31T12:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_span(text: str, *, option: str) -> int:
    """A span like ``30d`` in ms."""
    match = _SPAN.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise click.ClickException(f"invalid {option} {text!r}: use a span like 12h, 30d or 8w")
    return int(match.group(1)) * _SPAN_MS[match.group(2)]


def when(ms: int | None) -> str:
    """Milliseconds since the epoch as a UTC time to the second."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
