"""Writing the search index: the text of calls not indexed yet, a batch at a time, and its state.

Only the background indexer and ``provider-cli search reindex`` write here; the hot path never
does. A call is indexed once its response is recorded (the answer is part of its text).
"""

from __future__ import annotations

import fcntl
import logging
import time
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from app.models import Request, Response
from app.models.search import SearchDoc
from app.services.search.text import document

BATCH = 100
WRITE_CHUNK = 25  # docs per write transaction: SQLite's writers (the hot path) wait meanwhile
REINDEX_BATCH = 2000
LOCKED_RETRIES, LOCKED_PAUSE_S = 50, 0.02  # SQLite's write lock, held by the hot path's commits
# PostgreSQL may commit ids out of order: each pass looks this many responses behind its mark.
PG_SLACK = 500
_LOCK_KEY = zlib.crc32(b"provider-router search indexer")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IndexState:
    calls: int  # responses recorded
    indexed: int  # calls with their text in the index
    accelerated: bool  # FTS5 / pg_trgm present (else searches read every row)


def start_mark(engine: Engine) -> int:
    """The response id up to which calls are indexed: that of the newest indexed request, else 0."""
    with engine.connect() as connection:
        newest = connection.scalar(sa.select(sa.func.max(SearchDoc.request_id)))
        if newest is None:
            return 0
        return connection.scalar(sa.select(Response.id).where(Response.request_id == newest)) or 0


def index_batch(
    engine: Engine, *, after: int, limit: int = BATCH, write_chunk: int = WRITE_CHUNK
) -> tuple[int, int] | None:
    """Index up to ``limit`` calls answered after response id ``after``: ``(indexed, new mark)``.

    None when another process holds the indexer's lock (it does the work meanwhile).
    """
    slack = PG_SLACK if engine.dialect.name == "postgresql" else 0
    with _exclusive(engine) as held:
        if not held:
            return None
        with engine.connect() as connection:
            pending = connection.execute(
                sa.select(Response.id, Response.request_id)
                .outerjoin(SearchDoc, SearchDoc.request_id == Response.request_id)
                .where(Response.id > max(0, after - slack), SearchDoc.request_id.is_(None))
                .order_by(Response.id).limit(limit)
            ).all()
            if not pending:
                return 0, after
            bodies = connection.execute(
                sa.select(Request.id, Request.openai_request, Response.openai_response)
                .join(Response, Response.request_id == Request.id)
                .where(Request.id.in_([row.request_id for row in pending]))
            ).all()
        docs = [{"request_id": row.id, "body": _text(row)} for row in bodies]
        for start in range(0, len(docs), write_chunk):
            _insert(engine, docs[start:start + write_chunk])
    return len(docs), max(after, pending[-1].id)


def _text(row) -> str:
    """A call's document; one whose bodies cannot be read is logged and indexed empty, so the index goes on."""
    try:
        return document(row.openai_request, row.openai_response)
    except Exception:  # noqa: BLE001 - else its batch would fail again on every pass, and no later call be indexed
        log.exception("call %s: its text could not be read; indexed without text", row.id)
        return ""


def _insert(engine: Engine, docs: list[dict]) -> None:
    """Write docs in one short transaction; a busy SQLite is tried again a few times, briefly.

    A call deleted since its text was read (a prune, a deleted session) fails the foreign key:
    its doc is dropped and the others written.
    """
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    for attempt in range(LOCKED_RETRIES + 1):
        try:
            with engine.begin() as connection:
                connection.execute(dialect.insert(SearchDoc).on_conflict_do_nothing(), docs)
            return
        except sa.exc.IntegrityError:
            with engine.connect() as connection:
                alive = set(connection.scalars(
                    sa.select(Request.id).where(Request.id.in_([doc["request_id"] for doc in docs]))))
            if len(alive) == len(docs) or attempt == LOCKED_RETRIES:
                raise
            log.debug("search index: %d call(s) deleted while being indexed", len(docs) - len(alive))
            docs = [doc for doc in docs if doc["request_id"] in alive]
            if not docs:
                return
        except sa.exc.OperationalError as exc:
            if "locked" not in str(exc.orig) or attempt == LOCKED_RETRIES:
                raise
            time.sleep(LOCKED_PAUSE_S)  # a greenlet under gevent: the worker serves meanwhile


@contextmanager
def _exclusive(engine: Engine):
    """One indexer per database at a time: a file lock beside SQLite's file, an advisory lock on PostgreSQL."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            held = connection.scalar(sa.select(sa.func.pg_try_advisory_lock(_LOCK_KEY)))
            try:
                yield held
            finally:
                if held:
                    connection.scalar(sa.select(sa.func.pg_advisory_unlock(_LOCK_KEY)))
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True
        return
    with open(Path(database).with_name(Path(database).name + ".search-lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def reindex(engine: Engine, *, progress: Callable[[int], None] = lambda _n: None) -> int:
    """Index every answered call not indexed yet, oldest first; ``progress(n)`` after each batch.

    Batches are large here (a bulk job: FTS5 writes far fewer, larger segments), unlike the
    background indexer's, which keep SQLite's write lock for a few milliseconds at most.
    """
    total, mark = 0, 0
    while True:
        done = index_batch(engine, after=mark, limit=REINDEX_BATCH, write_chunk=REINDEX_BATCH)
        if done is None:
            raise RuntimeError("another indexer holds the search index's lock; try again when it is done")
        count, mark = done
        if count == 0:
            return total
        total += count
        progress(count)


def state(engine: Engine) -> IndexState:
    with engine.connect() as connection:
        calls = connection.scalar(sa.select(sa.func.count()).select_from(Response)) or 0
        indexed = connection.scalar(sa.select(sa.func.count()).select_from(SearchDoc)) or 0
        return IndexState(calls=calls, indexed=indexed, accelerated=accelerated(connection))


def accelerated(connection: Connection) -> bool:
    """Whether searches use a trigram index here (SQLite's FTS5 table, PostgreSQL's pg_trgm index)."""
    if connection.dialect.name == "sqlite":
        query = "SELECT 1 FROM sqlite_master WHERE name = 'search_fts'"
    else:
        query = "SELECT 1 FROM pg_indexes WHERE indexname = 'ix_search_docs_body_trgm'"
    return connection.exec_driver_sql(query).first() is not None


def accelerate(engine: Engine) -> None:
    """Create pg_trgm and the GIN index (after a superuser allowed the extension); no-op on SQLite."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        connection.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS ix_search_docs_body_trgm ON search_docs USING gin (body gin_trgm_ops)"
        )
