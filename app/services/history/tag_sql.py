"""A call's tag in SQL: ``requests.tags`` is a JSON object kept as text, read per engine."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from app.models import GatewayKey, Request
from app.services.keys.tags import check_name


class TagValue(sa.sql.expression.ColumnElement):
    """The value of tag ``name`` of a request (NULL without it); names are checked, so inlined."""

    inherit_cache = True
    type = sa.String()
    _traverse_internals = [("name", InternalTraversal.dp_string)]

    def __init__(self, name: str) -> None:
        self.name = check_name(name)


@compiles(TagValue, "sqlite")
def _sqlite(element: TagValue, compiler, **kw) -> str:
    tags = compiler.process(Request.__table__.c.tags, **kw)
    return f"json_extract({tags}, '$.\"{element.name}\"')"


@compiles(TagValue, "postgresql")
def _postgresql(element: TagValue, compiler, **kw) -> str:
    tags = compiler.process(Request.__table__.c.tags, **kw)
    return f"(CAST({tags} AS jsonb) ->> '{element.name}')"


def tag_matches(tag: tuple[str, str]) -> sa.ColumnElement:
    """Requests whose tag ``name`` is ``value`` (``tag=name:value``)."""
    return TagValue(tag[0]) == tag[1]


def key_matches(name: str) -> sa.ColumnElement:
    """Requests made with the gateway key of this name."""
    return Request.key_id == sa.select(GatewayKey.id).where(GatewayKey.name == name).scalar_subquery()
