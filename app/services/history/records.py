"""Reading and pruning the audit trail's requests and responses (sessions: ``session_history``).

Plain functions on an ORM session, shared by the REST API and the CLI. They raise
``NotFound`` for a missing record and only flush: the caller commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.orm import Session, contains_eager, defer, joinedload

from app.errors import NotFound
from app.models import Request, Response
from app.services.history import rollups
from app.services.history.matching import (
    answered_conditions,
    date_conditions,
    model_names,
    plan_filters,
    request_conditions,
    request_matches,
    response_conditions,
)
from app.services.history.paging import Page, PageRequest, fetch_page, unindexed
from app.services.history.sessions import in_session
from app.services.search.query import SearchQuery

RecordId = int | str  # the integer id, or the record's UUID
FEW_MATCHES = 20_000  # responses matching a filter, below which a page starts from their ids
RECORD_ID_PATTERN = r"([1-9][0-9]{0,17}|[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})"
_RECORD_ID = re.compile(RECORD_ID_PATTERN)
_SUMMARY = (
    Response.id, Response.request_id, Response.response_id, Response.status, Response.finish_reason,
    Response.total_tokens, Response.duration_ms, Response.error,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """What to keep; every filter given must match. Dates are ms since the epoch, inclusive."""

    session_id: str | None = None
    endpoint: str | None = None  # chat, embeddings, completions, responses
    model: str | None = None
    provider: str | None = None
    stream: bool | None = None
    status: str | None = None
    finish_reason: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    min_duration_ms: int | None = None
    # Only for responses: the request they answer, and the original's has_error (status != ok).
    request_id: RecordId | None = None
    has_error: bool | None = None
    # Content search: calls whose messages and answer hold every term.
    search: SearchQuery | None = None
    tag: tuple[str, str] | None = None  # (name, value): calls carrying that tag
    key: str | None = None  # calls made with the gateway key of this name
    ids: tuple[int, ...] | None = None  # only these requests (the live tail re-reads the rows it shows pending)


@dataclass(frozen=True, slots=True)
class DeletedRequest:
    id: int
    request_id: str
    deleted: bool = True


def parse_record_id(text: str) -> RecordId:
    """An integer id (1 to 18 digits) or a UUID in its usual form (lower-cased); ValueError otherwise."""
    if not _RECORD_ID.fullmatch(text):
        raise ValueError("not an integer id or a UUID")
    return int(text) if text.isdigit() else text.lower()


def resolve_request_id(db: Session, text: str) -> RecordId:
    """An id, a UUID, or a unique prefix of a request's UUID (at least 4 characters)."""
    try:
        return parse_record_id(text)
    except ValueError:
        pass
    prefix = text.lower()
    if len(prefix) < 4 or any(c not in "0123456789abcdef-" for c in prefix):
        raise NotFound(f"No request with id {text!r}.")
    ids = db.scalars(sa.select(Request.id).where(Request.request_id.startswith(prefix, autoescape=True)).limit(2))
    found = list(ids)
    if not found:
        raise NotFound(f"No request with id {text!r}.")
    if len(found) > 1:
        raise NotFound(f"The id {text!r} matches more than one request: give more of it.")
    return found[0]


# Requests

def list_requests(
    db: Session, *, filters: Filters, page: PageRequest, bodies: bool = False
) -> Page[Request]:
    """Requests, newest first, each with a summary of its response."""
    filters, capped_total = plan_filters(db, filters)
    request_where = request_conditions(filters, dated=Request.timestamp)
    response_where = response_conditions(filters)
    query = sa.select(Request).join(Request.response, isouter=not response_where)
    query = query.options(contains_eager(Request.response).load_only(*_SUMMARY))
    if not bodies:
        query = query.options(defer(Request.openai_request), defer(Request.provider_request))
    query = query.where(*request_where)
    if response_where:
        # The page walks requests in order. Few matching responses (slow calls, rare errors):
        # take their request ids from an index and check each request against that set.
        # Many: check each request's response as it comes, the page fills up soon enough.
        answered = sa.select(Response.request_id).where(*answered_conditions(filters))
        few = db.scalar(sa.select(sa.func.count()).select_from(answered.limit(FEW_MATCHES + 1).subquery()))
        if few <= FEW_MATCHES:
            query = query.where(unindexed(Request.id).in_(answered))
        else:
            query = query.where(*response_conditions(filters, unindexed))
    if capped_total is not None:  # each row's text checked last, after its cheaper filters
        query = query.where(request_matches(filters.search))
    count = _count_requests(filters) if capped_total is None else capped_total
    return fetch_page(
        db, query, count=count, kind="requests", sort=(Request.timestamp, Request.id),
        key=lambda r: (r.timestamp, r.id), page=page,
    )


def _count_requests(filters: Filters) -> sa.Select:
    """The total, counted from the side whose indexes narrow it (one response per request)."""
    request_where = request_conditions(filters, dated=Request.timestamp)
    response_where = response_conditions(filters)
    if not response_where:
        return sa.select(sa.func.count()).select_from(Request).where(*request_where)
    if not request_where:
        return sa.select(sa.func.count()).select_from(Response).where(*response_where)
    if len(model_names(filters.model or "")) == 1 and not request_conditions(
        replace(filters, model=None), dated=Request.timestamp
    ):
        # Model and outcome only: one range of the (status, model, ...) index counts them.
        return sa.select(sa.func.count()).select_from(Response).where(*answered_conditions(filters))
    if filters.session_id is not None or filters.search is not None:  # a handful: check each response
        return (
            sa.select(sa.func.count()).select_from(Request)
            .join(Response, Response.request_id == Request.id)
            .where(*request_where, *response_conditions(filters, unindexed))
        )
    # The ids of the matching responses come from an (outcome, request_id) index alone. With an
    # indexed request filter, walk those requests and check each id against that set; the
    # unary + keeps SQLite from looking each id up in the table of big rows instead.
    answered = sa.select(Response.request_id).where(*answered_conditions(filters))
    indexed = any(
        value is not None for value in (filters.model, filters.provider, filters.start_ms, filters.end_ms)
    )
    member = (unindexed(Request.id) if indexed else Request.id).in_(answered)
    return sa.select(sa.func.count()).select_from(Request).where(*request_where, member)


def count_requests(filters: Filters) -> sa.Select:
    """How many requests match: the count ``list_requests`` reports as its total."""
    return _count_requests(filters)


def get_request(db: Session, record_id: RecordId) -> Request:
    """One request with its bodies and its response."""
    query = sa.select(Request).options(joinedload(Request.response)).where(_by_id(Request, record_id))
    request = db.scalar(query)
    if request is None:
        raise NotFound(f"No request with id {record_id!r}.", param="id", code="request_not_found")
    return request


def get_request_response(db: Session, record_id: RecordId) -> Response:
    request = get_request(db, record_id)
    if request.response is None:
        raise NotFound(
            f"Request {record_id!r} has no response yet.", param="id", code="response_not_found"
        )
    return request.response


def delete_request(db: Session, record_id: RecordId) -> DeletedRequest:
    """Delete a request and its response."""
    row = db.execute(
        sa.select(Request.id, Request.request_id, Response.timestamp)
        .outerjoin(Response, Response.request_id == Request.id).where(_by_id(Request, record_id))
    ).first()
    if row is None:
        raise NotFound(f"No request with id {record_id!r}.", param="id", code="request_not_found")
    db.execute(sa.delete(Request).where(Request.id == row.id))
    if row.timestamp is not None:
        rollups.invalidate(db, [rollups.day_of(row.timestamp)])
    return DeletedRequest(id=row.id, request_id=row.request_id)


# Responses

def list_responses(
    db: Session, *, filters: Filters, page: PageRequest, bodies: bool = False
) -> Page[Response]:
    """Responses, newest first."""
    filters, capped_total = plan_filters(db, filters)
    where = [*date_conditions(filters, Response.timestamp)]
    if filters.session_id is not None:
        where.append(in_session(filters.session_id))
    if filters.request_id is not None:
        where.append(Response.request_id == _request_pk(filters.request_id))
    if filters.search is not None:
        where.append(request_matches(filters.search, Response.request_id))
    request_where = request_conditions(
        Filters(model=filters.model, provider=filters.provider, stream=filters.stream), dated=None
    )
    # The page walks responses in order and checks the rest as it goes.
    query = sa.select(Response).where(*where, *response_conditions(filters, unindexed))
    count = sa.select(sa.func.count()).select_from(Response).where(*where, *response_conditions(filters))
    if request_where:
        query = query.join(Response.request).where(
            *request_conditions(
                Filters(model=filters.model, provider=filters.provider, stream=filters.stream),
                dated=None, column=unindexed,
            )
        )
        # Matching request ids from the requests' indexes; checked against while walking an
        # index of the responses when they have a filter of their own.
        ids = sa.select(Request.id).where(*request_where)
        own_filter = bool(where or response_conditions(filters))
        count = count.where((unindexed(Response.request_id) if own_filter else Response.request_id).in_(ids))
    if not bodies:
        query = query.options(defer(Response.openai_response), defer(Response.provider_response))
    return fetch_page(
        db, query, count=count if capped_total is None else capped_total, kind="responses",
        sort=(Response.timestamp, Response.id), key=lambda r: (r.timestamp, r.id), page=page,
    )


def get_response(db: Session, record_id: RecordId) -> Response:
    response = db.scalar(sa.select(Response).where(_by_id(Response, record_id)))
    if response is None:
        raise NotFound(f"No response with id {record_id!r}.", param="id", code="response_not_found")
    return response


# Query pieces

def _by_id(model: type[Request] | type[Response], record_id: RecordId) -> sa.ColumnElement:
    if isinstance(record_id, int):
        return model.id == record_id
    return (model.request_id if model is Request else model.response_id) == record_id


def _request_pk(record_id: RecordId) -> sa.ColumnElement | int:
    if isinstance(record_id, int):
        return record_id
    return sa.select(Request.id).where(Request.request_id == record_id).scalar_subquery()
