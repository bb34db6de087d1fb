"""The original gateway's values read as ours: text, JSON bodies, numbers, times and flags, every oddity noted."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

INT32_MAX = 2**31 - 1
# A timestamp this large cannot be seconds (year 5138); this small cannot be ms (April 1970).
_MS_FLOOR = 10**10
_SECONDS_CEILING = 10**11
_TRUE = {"1", "true", "t", "yes"}


def text(value: Any, *, name: str, problems: list[str]) -> str | None:
    """A text value; numbers stored in TEXT columns keep their digits."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            problems.append(f"{name} is not UTF-8; undecodable bytes replaced")
            value = value.decode(errors="replace")
    value = value if isinstance(value, str) else str(value)
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL characters.
        problems.append(f"{name} contains NUL characters; replaced")
        value = value.replace("\x00", "\ufffd")
    return value


def body(value: Any, *, name: str, problems: list[str]) -> tuple[str | None, Any]:
    """A JSON document's text exactly as stored, and its parsed value when it parses."""
    raw = text(value, name=name, problems=problems)
    if raw is None:
        return None, None
    try:
        return raw, json.loads(raw)
    except ValueError:
        problems.append(f"{name} is not valid JSON; kept as text")
        return raw, None


def integer(value: Any, *, name: str, problems: list[str], limit: int | None = INT32_MAX) -> int | None:
    """A whole number, or None with a problem noted when the value is not one."""
    if value is None:
        return None
    number = _number(value)
    if number is None or (limit is not None and abs(number) > limit):
        problems.append(f"{name} is not a usable number ({value!r}); left empty")
        return None
    return round(number)


def millis(value: Any, *, name: str, problems: list[str], seconds: bool) -> int:
    """A timestamp in ms from the original's seconds (v1, settings) or ms (v2)."""
    number = _number(value)
    if number is None and isinstance(value, str):
        moment = _date(value)
        if moment is not None:
            return moment
    if number is None:
        problems.append(f"{name} missing or not a time ({value!r}); set to 0 (1970-01-01)")
        return 0
    if seconds and abs(number) >= _SECONDS_CEILING:
        problems.append(f"{name} was already in milliseconds; kept")
        seconds = False
    elif not seconds and 0 < abs(number) < _MS_FLOOR:
        problems.append(f"{name} was in seconds; converted to milliseconds")
        seconds = True
    return round(number * 1000) if seconds else round(number)


def flag(value: Any) -> bool:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


def string(
    value: Any, *, name: str, problems: list[str], size: int, required: bool = False, default: str = ""
) -> str | None:
    """Text cut to the column's size, noting the cut (PostgreSQL would refuse it whole)."""
    result = text(value, name=name, problems=problems)
    if result is None and required:
        problems.append(f"{name} missing")
        result = default
    if result is not None and len(result) > size:
        problems.append(f"{name} longer than {size} characters; cut")
        result = result[:size]
    return result


def _number(value: Any) -> float | int | None:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        try:
            value = float(value) if any(ch in value for ch in ".eE") else int(value)
        except ValueError:
            return None
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _date(value: str) -> int | None:
    """SQLite's own date text (CURRENT_TIMESTAMP), read as UTC."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
