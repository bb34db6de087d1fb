"""import provenance: legacy ids on sessions, requests, responses; retained sessions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("sessions", "requests", "responses")


def upgrade() -> None:
    # ADD COLUMN and CREATE INDEX work in place on SQLite: no table copy is needed.
    for table in TABLES:
        op.add_column(table, sa.Column("legacy_source", sa.String(32)))
        op.add_column(table, sa.Column("legacy_id", sa.Text()))
        # Partial: the gateway's own rows (NULL) are not indexed, so the hot path pays nothing.
        where = sa.text("legacy_id IS NOT NULL")
        op.create_index(
            op.f(f"ix_{table}_legacy_source_legacy_id"), table, ["legacy_source", "legacy_id"],
            unique=True, sqlite_where=where, postgresql_where=where,
        )
    op.add_column(
        "sessions",
        sa.Column("retained", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_index(op.f(f"ix_{table}_legacy_source_legacy_id"), table_name=table)
        # SQLite cannot drop a column in place everywhere: batch mode copies the table.
        with op.batch_alter_table(table) as batch_op:
            if table == "sessions":
                batch_op.drop_column("retained")
            batch_op.drop_column("legacy_id")
            batch_op.drop_column("legacy_source")
