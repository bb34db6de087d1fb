"""hot path: responses.session_id keeps its value but loses its foreign key and index

A response belongs to its session through its request (responses.request_id ->
requests.session_id, both indexed, both cascading on delete). The second path,
a foreign key and an index of its own, cost every chat call one more index
insert, one more parent lookup and one more page per commit. Queries by session
go through requests.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_responses_session_id", table_name="responses")
    # SQLite cannot drop a constraint in place: batch mode copies the table.
    with op.batch_alter_table("responses") as batch_op:
        batch_op.drop_constraint("fk_responses_session_id_sessions", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch_op:
        batch_op.create_foreign_key(
            "fk_responses_session_id_sessions", "sessions", ["session_id"], ["id"], ondelete="CASCADE"
        )
    op.create_index("ix_responses_session_id", "responses", ["session_id"])
