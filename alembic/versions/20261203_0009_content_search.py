"""content search: the text of each call (search_docs) and its per-engine trigram index

search_docs holds the text extracted from a call's messages and answer (case-folded), one
row per request, written by the background indexer, never by the hot path. SQLite gets an
FTS5 table with the trigram tokenizer over it (external content, kept in step by triggers on
search_docs only); PostgreSQL a pg_trgm GIN index. Creating pg_trgm needs a privilege: where
it fails, the migration goes on without the index and searches read every row (same answers,
slower); `CREATE EXTENSION pg_trgm` by a superuser and `provider-cli search accelerate` add it later.

Existing calls are indexed by the gateway's background indexer, or at once with
`provider-cli search reindex` (a progress bar).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Not under "alembic", whose NullHandler would hide the warning wherever nothing configured
# logging (`python -m app check` before gunicorn's workers, `provider-cli db upgrade`).
log = logging.getLogger("app.migrate")

SQLITE_FTS = (
    "CREATE VIRTUAL TABLE search_fts USING fts5(body, content='search_docs', content_rowid='request_id', "
    "tokenize='trigram case_sensitive 1')",
    "CREATE TRIGGER search_docs_ai AFTER INSERT ON search_docs BEGIN "
    "INSERT INTO search_fts(rowid, body) VALUES (new.request_id, new.body); END",
    "CREATE TRIGGER search_docs_ad AFTER DELETE ON search_docs BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, body) VALUES ('delete', old.request_id, old.body); END",
    "CREATE TRIGGER search_docs_au AFTER UPDATE ON search_docs BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, body) VALUES ('delete', old.request_id, old.body); "
    "INSERT INTO search_fts(rowid, body) VALUES (new.request_id, new.body); END",
)
PG_TRGM_INDEX = "CREATE INDEX IF NOT EXISTS ix_search_docs_body_trgm ON search_docs USING gin (body gin_trgm_ops)"


def upgrade() -> None:
    op.create_table(
        "search_docs",
        sa.Column("request_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name="fk_search_docs_request_id_requests", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("request_id", name="pk_search_docs"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        _pg_trigram_index(bind)


def _pg_trigram_index(bind) -> None:
    """pg_trgm and its GIN index, or a warning: the extension may need a privilege this role lacks."""
    savepoint = bind.begin_nested()
    try:
        bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        bind.exec_driver_sql(PG_TRGM_INDEX)
        savepoint.commit()
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        log.warning(
            "content search: pg_trgm is not available (%s); searches will read every row. "
            "Have a superuser run CREATE EXTENSION pg_trgm, then `provider-cli search accelerate`.",
            str(exc.orig).strip().splitlines()[0],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("search_docs_ai", "search_docs_ad", "search_docs_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_search_docs_body_trgm")
    op.drop_table("search_docs")
