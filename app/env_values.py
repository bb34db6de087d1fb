"""Typed values read from the environment, each refused with an error that names its variable."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
               "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}


class ConfigError(ValueError):
    """An environment variable holds a value the gateway cannot start with."""


def size(env: Mapping[str, str], key: str, default: int) -> int:
    """A size in bytes: 1073741824, 512MiB, 1GiB, 64K."""
    raw = env.get(key, "").strip()
    if not raw:
        return default
    digits = raw.rstrip("BbKkMmGgIi ")
    unit = raw[len(digits):].strip().upper()
    if not digits.isdigit() or unit not in _SIZE_UNITS or int(digits) <= 0:
        raise ConfigError(f"{key} must be a size such as 1073741824, 512MiB or 1GiB, got {raw!r}")
    return int(digits) * _SIZE_UNITS[unit]


def choice(env: Mapping[str, str], key: str, choices: tuple[str, ...]) -> str:
    value = env.get(key, "").strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {env.get(key)!r}")
    return value


def name(env: Mapping[str, str], key: str, default: str) -> str:
    value = env.get(key, "").strip() or default
    if not all(ch.isalnum() or ch in "-_." for ch in value):
        raise ConfigError(f"{key} must be a provider name (letters, digits, - _ .), got {value!r}")
    return value


def url(env: Mapping[str, str], key: str, default: str | None) -> str | None:
    value = env.get(key, "").strip()
    if not value:
        return default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{key} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def positive_int(env: Mapping[str, str], key: str, default: int | None) -> int | None:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a whole number of milliseconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{key} must be greater than 0 (milliseconds), got {raw!r}")
    return value


def count(env: Mapping[str, str], key: str, default: int, *, minimum: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ConfigError(f"{key} must be a whole number of at least {minimum}, got {raw!r}")
    return int(raw)


def flag(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{key} must be true or false, got {raw!r}")


def log_level(env: Mapping[str, str]) -> str:
    value = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if value not in _LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(sorted(_LOG_LEVELS))}, got {value!r}")
    return value
