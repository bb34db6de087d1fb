"""content search: the text of legacy completions, Responses API and embeddings calls

The index used to read only chat messages: the calls of /v1/completions, /v1/responses and
/v1/embeddings were indexed with no text and could not be found. Their empty docs are deleted
here; `provider-cli search reindex` writes them again with their prompts, inputs, instructions
and answers (the background indexer does so only for calls newer than the last one indexed).

Derived data only: the downgrade has nothing to restore.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Not under "alembic", whose NullHandler would hide the warning wherever nothing configured
# logging (`python -m app check` before gunicorn's workers, `provider-cli db upgrade`).
log = logging.getLogger("app.migrate")

NON_CHAT_PATHS = ("/v1/completions", "/v1/responses", "/v1/embeddings")


def upgrade() -> None:
    stale = sa.text(
        "DELETE FROM search_docs WHERE request_id IN (SELECT id FROM requests WHERE path IN :paths)"
    ).bindparams(sa.bindparam("paths", expanding=True))
    deleted = op.get_bind().execute(stale, {"paths": list(NON_CHAT_PATHS)}).rowcount
    if deleted:
        log.warning("content search: %d completions, responses and embeddings calls to index again: "
                    "run `provider-cli search reindex`.", deleted)


def downgrade() -> None:
    pass
