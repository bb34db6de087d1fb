"""Filter conditions shared by the history lists: a model as the client named it, and content search."""

from __future__ import annotations

import sqlalchemy as sa

from app.models import Request
from app.services.search.query import SearchQuery, contains


def model_names(model: str) -> list[str]:
    """The stored model names ``model`` may stand for: itself, and after ``provider/`` if it has one."""
    prefix, slash, rest = model.partition("/")
    return [model, rest] if slash and prefix and rest else [model]


def model_matches(model: str, *, model_column: sa.ColumnElement, provider_column: sa.ColumnElement):
    """A call made with ``model`` as the client sent it.

    ``mock/alpha`` routes to provider ``mock``'s model ``alpha`` (stored as provider and model),
    unless no provider is called ``mock``: then the model itself is named ``mock/alpha``.
    """
    names = model_names(model)
    if len(names) == 1:
        return model_column == model
    prefix = model.partition("/")[0]
    return sa.or_(model_column == model, sa.and_(provider_column == prefix, model_column == names[1]))


def request_matches(search: SearchQuery, column: sa.ColumnElement = Request.id) -> sa.ColumnElement:
    """Requests (by id) whose messages and answer hold every term of ``search``."""
    return contains(column, search)
