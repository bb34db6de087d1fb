"""Pages of a sorted query: limit/offset, or a keyset cursor that stays fast a million rows deep."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.visitors import InternalTraversal

T = TypeVar("T")
MAX_LIMIT = 1000
# A list's total counts no further: past it, ``total`` says COUNT_CAP + 1, "more than COUNT_CAP".
# Counting 10 million index entries takes PostgreSQL ~2.5 s; 10,001 take a few milliseconds.
COUNT_CAP = 10_000
_MAX_INT64 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the sort value and the tie-break key of its last row."""

    kind: str
    sort_value: int
    tiebreak: int | str

    def encode(self) -> str:
        raw = json.dumps([self.kind, self.sort_value, self.tiebreak], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, *, kind: str) -> Cursor:
        """The cursor ``encode`` made for a list of ``kind``; ValueError for anything else."""
        try:
            decoded = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (ValueError, binascii.Error):
            raise ValueError("not a cursor") from None
        if not (isinstance(decoded, list) and len(decoded) == 3 and decoded[0] == kind):
            raise ValueError("not a cursor of this list")
        _, sort_value, tiebreak = decoded
        if not _is_id(sort_value) or not (_is_id(tiebreak) or _is_key(tiebreak)):
            raise ValueError("not a cursor of this list")
        return cls(kind=kind, sort_value=sort_value, tiebreak=tiebreak)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_INT64


def _is_key(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 255 and value.isprintable()


class unindexed(sa.ColumnElement):  # noqa: N801 - reads like the SQL function it stands for
    """A column SQLite must not pick an index for: it filters rows of a scan in page order.

    Without ANALYZE statistics SQLite takes any indexed equality as very selective, so for
    ``status = 'ok'`` it would read the status index and sort every match to find one page.
    SQLite's unary ``+`` keeps the term out of index selection. Other databases get the
    column unchanged (PostgreSQL plans from its statistics).
    """

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: sa.ColumnElement) -> None:
        self.column = column
        self.type = column.type


@compiles(unindexed)
def _plain(element: unindexed, compiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(unindexed, "sqlite")
def _unary_plus(element: unindexed, compiler, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = 50
    offset: int = 0
    after: Cursor | None = None
    descending: bool = True


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    has_more: bool
    next_cursor: Cursor | None


def fetch_page(
    db: Session,
    query: sa.Select,
    *,
    count: sa.Select | int,
    kind: str,
    sort: tuple[sa.ColumnElement, sa.ColumnElement],
    key: Callable[[Any], tuple[int, int | str]],
    page: PageRequest,
    scalars: bool = True,
) -> Page:
    """Run ``query`` for one page (sorted by ``sort``, then the tie-break) and ``count`` for the total.

    ``count`` is a ``SELECT count(*) ...``, run up to COUNT_CAP + 1 rows (or the total itself, known
    already; not run when the first page holds every row). ``key`` gives a row's (sort value,
    tie-break), the values ``sort`` orders by.
    """
    sort_column, tiebreak_column = sort
    if page.after is not None:
        position = sa.tuple_(sort_column, tiebreak_column)
        bound = sa.tuple_(sa.literal(page.after.sort_value), sa.literal(page.after.tiebreak))
        query = query.where(position < bound if page.descending else position > bound)
    if page.descending:
        query = query.order_by(sort_column.desc(), tiebreak_column.desc())
    else:
        query = query.order_by(sort_column.asc(), tiebreak_column.asc())
    query = query.limit(page.limit + 1).offset(page.offset)
    result = db.execute(query)
    rows: Sequence[Any] = result.scalars().unique().all() if scalars else result.all()
    has_more = len(rows) > page.limit
    items = list(rows[: page.limit])
    next_cursor = None
    if has_more:
        sort_value, tiebreak = key(items[-1])
        next_cursor = Cursor(kind=kind, sort_value=sort_value, tiebreak=tiebreak)
    if page.after is None and page.offset == 0 and not has_more:
        # The whole result is on this page: its size is the total, from the same snapshot as the
        # rows (a second statement could count a call committed in between).
        total = len(items)
    elif isinstance(count, int):
        total = count
    else:
        total = db.execute(capped_count(count)).scalar_one()
    return Page(
        items=items, total=total, limit=page.limit, offset=page.offset,
        has_more=has_more, next_cursor=next_cursor,
    )


def capped_count(count: sa.Select, cap: int | None = None) -> sa.Select:
    """``count`` (a ``SELECT count(*) FROM ... WHERE ...``) stopping at ``cap + 1`` rows: "more than ``cap``"."""
    cap = COUNT_CAP if cap is None else cap
    rows = count.with_only_columns(sa.literal(1), maintain_column_froms=True).limit(cap + 1)
    return sa.select(sa.func.count()).select_from(rows.subquery())
