"""Filter conditions shared by the history lists: a model as the client named it, and content search."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.models import Request
from app.services.history.paging import COUNT_CAP
from app.services.search.query import SearchQuery, contains, count_matches
from app.services.search.trigrams import common_trigrams, rare_parts

# A search matching more calls than this checks each row of a page in order instead of listing
# every match first; its total says SEARCH_COUNT_CAP + 1, "more than SEARCH_COUNT_CAP", as every
# list's does past COUNT_CAP.
SEARCH_COUNT_CAP = COUNT_CAP


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
    # The IN first: the (model, timestamp) index serves it; the OR only sorts out the provider.
    return sa.and_(
        model_column.in_(names),
        sa.or_(model_column == model, sa.and_(provider_column == prefix, model_column == names[1])),
    )


def request_matches(search: SearchQuery, column: sa.ColumnElement = Request.id) -> sa.ColumnElement:
    """Requests (by id) whose messages and answer hold every term of ``search``."""
    return contains(column, search)


def plan_filters(db: Session, filters: Any) -> tuple[Any, int | None]:
    """``filters`` ready to run (the model resolved, the search planned), and a capped total or None."""
    return plan_search(db, resolve_model(db, filters))


def resolve_model(db: Session, filters: Any) -> Any:
    """``provider/model`` as provider and model when no stored model bears the whole name.

    One equality on the model keeps the (model, timestamp) index walk in time order, where the
    either-or form makes the database sort every call of both names. Two one-row lookups decide.
    """
    if filters.model is None or len(model_names(filters.model)) == 1 or filters.provider is not None:
        return filters
    prefix, _, rest = filters.model.partition("/")
    if db.scalar(sa.select(Request.id).where(Request.model == filters.model).limit(1)) is not None:
        return filters
    return replace(filters, model=rest, provider=prefix)


def plan_search(db: Session, filters: Any) -> tuple[Any, int | None]:
    """``filters`` ready to run, and the total to report when the search matches too many calls to count.

    A word that most calls hold would make the database list and sort every match for one page
    and count them all for its total; past SEARCH_COUNT_CAP matches, the page checks each row it
    walks instead, and the total is capped.
    """
    if filters.search is None:
        return filters, None
    dialect = db.get_bind().dialect.name
    search = filters.search
    if dialect == "postgresql":
        search = replace(search, probes=rare_parts(search.terms, common_trigrams(db)))
    hits = db.scalar(count_matches(search, dialect=dialect, cap=SEARCH_COUNT_CAP + 1))
    if hits <= SEARCH_COUNT_CAP:
        return replace(filters, search=search), None
    return replace(filters, search=replace(search, many=True)), hits
