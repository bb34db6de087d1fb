"""Filter conditions shared by the history lists: what a ``Filters`` keeps of requests and responses,
a model as the client named it, and content search."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.models import Request, Response
from app.providers.base import CLIENT_PATHS
from app.services.history.paging import COUNT_CAP
from app.services.history.tag_sql import key_matches, tag_matches
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


# The conditions a Filters becomes

def matching_requests(filters: Any) -> list[sa.ColumnElement]:
    """The conditions a request and its (outer-joined) response meet to match ``filters``."""
    return [*request_conditions(filters, dated=Request.timestamp), *response_conditions(filters)]


def _same(column: sa.ColumnElement) -> sa.ColumnElement:
    return column


def request_conditions(
    filters: Any, *, dated: sa.ColumnElement | None, column: Callable = _same
) -> list[sa.ColumnElement]:
    """Conditions on the request; ``dated`` the column its dates are checked on (None: no dates)."""
    where = []
    for attribute, value in (
        (Request.session_id, filters.session_id), (Request.provider, filters.provider),
        (Request.stream, filters.stream), (Request.path, CLIENT_PATHS.get(filters.endpoint or "")),
    ):
        if value is not None:
            where.append(column(attribute) == value)
    if filters.model is not None:
        where.append(model_matches(
            filters.model, model_column=column(Request.model), provider_column=column(Request.provider)
        ))
    if filters.ids is not None:
        where.append(Request.id.in_(filters.ids))
    if filters.tag is not None:
        where.append(tag_matches(filters.tag))
    if filters.key is not None:
        where.append(key_matches(filters.key))
    if filters.search is not None and not filters.search.many:  # many: list_requests adds it last
        where.append(request_matches(filters.search))
    if dated is not None:
        where.extend(date_conditions(filters, dated))
    return where


def response_conditions(filters: Any, column: Callable = _same) -> list[sa.ColumnElement]:
    """Conditions on the response's outcome; ``column=unindexed`` to check them during a scan."""
    where = []
    status = column(Response.status)
    if filters.status is not None:
        where.append(status == filters.status)
    if filters.has_error is not None:
        where.append(status != "ok" if filters.has_error else status == "ok")
    if filters.finish_reason is not None:
        where.append(column(Response.finish_reason) == filters.finish_reason)
    if filters.min_duration_ms is not None:
        where.append(column(Response.duration_ms) >= filters.min_duration_ms)
    return where


def answered_conditions(filters: Any) -> list[sa.ColumnElement]:
    """The response conditions, narrowed by the model each response copies from its request."""
    where = response_conditions(filters)
    if filters.model is not None:
        where.append(Response.model.in_(model_names(filters.model)))
    return where


def date_conditions(filters: Any, column: sa.ColumnElement) -> list[sa.ColumnElement]:
    """``column`` within the filters' start and end (ms since the epoch, inclusive)."""
    where = []
    if filters.start_ms is not None:
        where.append(column >= filters.start_ms)
    if filters.end_ms is not None:
        where.append(column <= filters.end_ms)
    return where
