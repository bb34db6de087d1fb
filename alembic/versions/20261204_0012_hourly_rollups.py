"""hourly usage rollups: the partial days at a report's edges read from closed hours

- ``usage_rollup_hours``: an hour whose rollups are complete (how many responses they cover).
- ``usage_rollup_hour_cells``: counts and token sums per hour, provider, model and stream kind.
- ``usage_rollup_hour_latencies``: an hour's latency histograms over all its responses.

Derived data, filled on demand by the first report that needs an hour: nothing to backfill.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_SUMS = ("requests", "errors", "incomplete", "prompt_tokens", "completion_tokens", "total_tokens",
         "usage_estimated", "durations", "duration_ms_sum")


def upgrade() -> None:
    op.create_table(
        "usage_rollup_hours",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("responses", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_usage_rollup_hours")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_rollup_hour_cells",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS),
        sa.PrimaryKeyConstraint("hour", "provider", "model", "stream", name=op.f("pk_usage_rollup_hour_cells")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_rollup_hour_latencies",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "hour", "bucket", name=op.f("pk_usage_rollup_hour_latencies")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("usage_rollup_hour_latencies")
    op.drop_table("usage_rollup_hour_cells")
    op.drop_table("usage_rollup_hours")
