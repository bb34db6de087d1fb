"""The content search index: the text of each call's messages and answer, written by the indexer.

Derived data only, filled off the hot path (``app.services.search.indexer``) and rebuilt at any
time with ``provider-cli search reindex``. The engine-specific accelerators beside it are not
models: SQLite's FTS5 trigram table ``search_fts`` (kept in step by triggers on this table) and
PostgreSQL's ``pg_trgm`` GIN index ``ix_search_docs_body_trgm`` (absent where the extension
could not be created: searches then read every row, slower but the same answers).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId

# Schema objects the migration creates per engine outside the models (see the module docstring).
SEARCH_ACCELERATORS = frozenset({
    "search_fts", "search_fts_data", "search_fts_idx", "search_fts_docsize", "search_fts_config",
    "ix_search_docs_body_trgm",
})


class SearchDoc(Base):
    """One call's searchable text: NFKC-normalised and case-folded, so any language matches alike."""

    __tablename__ = "search_docs"

    # The request's id; a deleted request takes its text with it.
    request_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    body: Mapped[str] = mapped_column(sa.Text)


def include_name(name: str | None, type_: str, _parent_names: dict) -> bool:
    """For Alembic's comparison: the search accelerators are created by hand, per engine."""
    return name not in SEARCH_ACCELERATORS
