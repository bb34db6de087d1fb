"""Jinja filters of the dashboard: times, numbers, durations, money and JSON, formatted once here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode


def utc(ms: int | None) -> str:
    """``2026-12-03 14:05:09`` (UTC); the page shows it in the viewer's zone, UTC on hover."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{int(value):,}"


def duration(ms: Any) -> str:
    if ms is None:
        return "-"
    ms = float(ms)
    if ms < 10_000:
        return f"{ms:,.0f} ms"
    if ms < 120_000:
        return f"{ms / 1000:,.1f} s"
    if ms < 7_200_000:
        return f"{ms / 60_000:,.0f} min"
    return f"{ms / 3_600_000:,.1f} h"


def percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f} %"


def usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def pretty(value: Any) -> str:
    """A JSON body, indented (text bodies of damaged rows as they are)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def change(now: float | None, before: float | None) -> str:
    """How a measure moved since the previous period: ``+12 %``, ``-3 %``, ``new`` or ``-``."""
    if now is None or before is None:
        return "-"
    if before == 0:
        return "new" if now else "±0 %"
    delta = (now - before) / before * 100
    return f"{delta:+.0f} %"


def query(args: Mapping[str, Any]) -> str:
    """A URL's query string from filters ("?a=1&b=2", or "" for none); any name, ``endpoint`` too."""
    pairs = [(name, value) for name, value in args.items() if value not in (None, "")]
    return "?" + urlencode(pairs) if pairs else ""


FILTERS = {
    "utc": utc, "iso": iso, "number": number, "duration": duration, "percent": percent, "usd": usd,
    "pretty": pretty, "change": change, "query": query,
}
