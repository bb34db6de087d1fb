"""Tags of a call: ``X-Tag-<name>: <value>`` headers and the key's default tags, validated and bounded."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from app.errors import InvalidRequest

TAG_HEADER = "x-tag-"
MAX_TAGS = 16
MAX_VALUE = 128
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
VALUE_PATTERN = re.compile(r"^[\x20-\x7e]{1,128}$")
# A history filter ``name:value`` (names are matched lower-cased).
FILTER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}:[\x20-\x7e]{1,128}$"


class InvalidTag(InvalidRequest):
    code = "invalid_tag"


def check_name(name: str) -> str:
    """A tag name as stored: lower case, 1-32 of ``a-z 0-9 _ . -``."""
    name = name.lower()
    if not NAME_PATTERN.match(name):
        raise InvalidTag(
            f"Invalid tag name {name[:40]!r}: 1-32 characters of a-z, 0-9, '_', '.', '-', starting with a letter "
            "or digit.", param="tags")
    return name


def check_value(name: str, value: str) -> str:
    value = value.strip()
    if not VALUE_PATTERN.match(value):
        raise InvalidTag(
            f"Invalid value for tag {name!r}: 1-{MAX_VALUE} printable ASCII characters.", param=f"tags.{name}")
    return value


def check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Tags validated (names lower-cased); InvalidTag (400) otherwise."""
    checked = {check_name(str(name)): check_value(str(name), str(value)) for name, value in tags.items()}
    if len(checked) > MAX_TAGS:
        raise InvalidTag(f"A call carries at most {MAX_TAGS} tags, got {len(checked)}.", param="tags")
    return checked


def header_tags(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The ``X-Tag-<name>`` headers of a request, as a name -> value mapping (unchecked)."""
    found: dict[str, str] = {}
    for name, value in headers:
        if len(name) > 6 and name[:6].lower() == TAG_HEADER:
            found[name[6:]] = value
    return found


def merge(defaults: Mapping[str, str] | None, sent: Mapping[str, str]) -> dict[str, str] | None:
    """The call's tags: what it sent, and its key's defaults, which a header cannot override."""
    tags = check_tags(sent) if sent else {}
    if defaults:
        tags.update(defaults)
        if len(tags) > MAX_TAGS:
            raise InvalidTag(f"A call carries at most {MAX_TAGS} tags (its key's included).", param="tags")
    return tags or None


def parse_filter(text: str) -> tuple[str, str]:
    """``name:value`` (a history filter) as its parts; InvalidTag otherwise."""
    name, colon, value = text.partition(":")
    if not colon:
        raise InvalidTag("Invalid 'tag': expected name:value, e.g. tag=team:search.", param="tag")
    return check_name(name), check_value(name, value)
