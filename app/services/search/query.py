"""A content search as SQL: the ids of the requests whose text holds every term of the query.

``alpha beta`` finds calls holding both words anywhere (in different messages too); ``"alpha
beta"`` the exact phrase. Matching is by substring, case- and width-insensitive, in any script.
Terms of 3+ characters are looked up in the trigram index (SQLite FTS5, PostgreSQL pg_trgm);
shorter ones (two Chinese characters, "ok") are checked in the text of the calls the longer
terms found, or of every call when the query has no longer term (slower on a large history).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from app.models.search import SearchDoc
from app.services.search.text import fold

MAX_QUERY_CHARS = 500
MAX_TERMS = 16
TRIGRAM = 3  # characters a term needs for the trigram index to find it
_TERM = re.compile(r'"([^"]*)"?|(\S+)')
_fts = sa.table("search_fts", sa.column("rowid"))


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """The folded terms of a query; each must appear somewhere in a call's text."""

    terms: tuple[str, ...]
    # Many calls match (a common word): check each row of a page instead of listing every match.
    many: bool = False
    # PostgreSQL: the substrings to look up in the trigram index (their trigrams are rare), the
    # terms then checked in each candidate's text; None: the terms are looked up whole.
    probes: tuple[str, ...] | None = None

    @property
    def indexed(self) -> tuple[str, ...]:
        return tuple(term for term in self.terms if len(term) >= TRIGRAM)

    @property
    def short(self) -> tuple[str, ...]:
        return tuple(term for term in self.terms if len(term) < TRIGRAM)


def parse(text: str) -> SearchQuery:
    """Words and "quoted phrases" -> terms (folded, duplicates and empty quotes dropped).

    ValueError when nothing is left to search for, or the query is too long.
    """
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError(f"a search is at most {MAX_QUERY_CHARS} characters")
    terms: list[str] = []
    for match in _TERM.finditer(fold(text)):
        term = " ".join((match.group(1) if match.group(1) is not None else match.group(2)).split())
        if term and term not in terms:
            terms.append(term)
    if not terms:
        raise ValueError("nothing to search for")
    if len(terms) > MAX_TERMS:
        raise ValueError(f"a search has at most {MAX_TERMS} words or phrases")
    return SearchQuery(terms=tuple(terms))


class contains(sa.ColumnElement):  # noqa: N801 - reads like the SQL it stands for
    """``column IN (the ids of the calls whose text holds every term)``, compiled per engine."""

    inherit_cache = False  # the terms are part of the SQL's shape
    # Not Boolean: SQLite (no native booleans) would get "... IN (...) = 1", which no index serves.
    type = sa.types.NullType()

    def __init__(self, column: sa.ColumnElement, query: SearchQuery) -> None:
        self.column = column
        self.query = query


def _in_text(term: str) -> sa.ColumnElement:
    return sa.func.instr(SearchDoc.body, term) > 0


def _like(term: str) -> sa.ColumnElement:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return SearchDoc.body.like(f"%{escaped}%", escape="\\")


def fts_expression(terms: tuple[str, ...]) -> str:
    """An FTS5 query: each term a quoted string (a substring, with the trigram tokenizer), all ANDed."""
    return " AND ".join('"' + term.replace('"', '""') + '"' for term in terms)


def sqlite_ids(query: SearchQuery) -> sa.Select:
    """The matching ids on SQLite: the FTS5 trigram table, then a check of the short terms."""
    if query.indexed:
        hits = sa.select(_fts.c.rowid).where(
            sa.literal_column("search_fts").op("MATCH")(sa.literal(fts_expression(query.indexed)))
        )
        if not query.short:
            return hits
        select = sa.select(SearchDoc.request_id).where(SearchDoc.request_id.in_(hits))
    else:
        select = sa.select(SearchDoc.request_id)
    return select.where(*(_in_text(term) for term in query.short))


def like_ids(query: SearchQuery) -> sa.Select:
    """The matching ids elsewhere: LIKE on the folded text, which pg_trgm's GIN index serves.

    With probes, only they are LIKE conditions (the index's); strpos, which no index serves,
    checks the whole terms in the text of the calls they find.
    """
    if query.probes is None:
        return sa.select(SearchDoc.request_id).where(*(_like(term) for term in query.terms))
    return sa.select(SearchDoc.request_id).where(
        *(_like(probe) for probe in query.probes),
        *(sa.func.strpos(SearchDoc.body, term) > 0 for term in query.terms),
    )


def sqlite_row_matches(query: SearchQuery, column: Any) -> sa.ColumnElement:
    """One row's check, for a page walked in order: its text read by key (cheaper than the index per row)."""
    return sa.exists(sa.select(sa.literal(1)).where(
        SearchDoc.request_id == column, *(_in_text(term) for term in query.terms)
    ))


def like_row_matches(query: SearchQuery, column: Any) -> sa.ColumnElement:
    return sa.exists(sa.select(sa.literal(1)).where(
        SearchDoc.request_id == column, *(_like(term) for term in query.terms)
    ))


def count_matches(query: SearchQuery, *, dialect: str, cap: int) -> sa.Select:
    """How many calls match, counting no further than ``cap`` (cheap even for a word every call holds)."""
    ids = sqlite_ids(query) if dialect == "sqlite" else like_ids(query)
    return sa.select(sa.func.count()).select_from(ids.limit(cap).subquery())


@compiles(contains, "sqlite")
def _sqlite(element: contains, compiler, **kw: Any) -> str:
    query, column = element.query, element.column
    condition = sqlite_row_matches(query, column) if query.many else column.in_(sqlite_ids(query))
    return compiler.process(condition, **kw)


@compiles(contains)
def _other(element: contains, compiler, **kw: Any) -> str:
    query, column = element.query, element.column
    condition = like_row_matches(query, column) if query.many else column.in_(like_ids(query))
    return compiler.process(condition, **kw)
