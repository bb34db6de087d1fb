"""history API: indexes for lists and statistics, daily usage rollups

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _dimensions() -> list[sa.Column]:
    return [
        sa.Column("day", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
    ]


def upgrade() -> None:
    # Every index costs the audit hot path a page write per commit. These three grow only at the
    # end of a few key ranges (time-ordered keys after a low-cardinality column), so a batch of
    # rows dirties the same few pages; indexes keyed on random values were left out.
    # Streams or not, newest first: the page in index order, the total from the index alone.
    op.create_index("ix_requests_stream_timestamp", "requests", ["stream", "timestamp"])
    # The requests with a given outcome without reading response rows (history filters).
    op.create_index(
        "ix_responses_outcome", "responses", ["status", "request_id", "finish_reason", "duration_ms"]
    )
    # Lead with timestamp and carry what usage statistics read: replaces the single-column index.
    op.create_index(
        "ix_responses_timestamp_usage", "responses",
        ["timestamp", "status", "duration_ms", "ttft_ms", "prompt_tokens", "completion_tokens",
         "total_tokens", "usage_estimated", "request_id"],
    )
    op.drop_index("ix_responses_timestamp", table_name="responses")

    op.create_table(
        "usage_rollup_days",
        sa.Column("day", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("responses", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_usage_rollup_days")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_rollups",
        *_dimensions(),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in (
            "requests", "errors", "incomplete", "prompt_tokens", "completion_tokens",
            "total_tokens", "usage_estimated", "durations", "duration_ms_sum",
        )),
        sa.PrimaryKeyConstraint("day", "provider", "model", "stream", name=op.f("pk_usage_rollups")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_rollup_latencies",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("day", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        *_dimensions()[1:],
        sa.Column("count", sa.BigInteger(), nullable=False),
        # kind, day, bucket first: a report merges a day's buckets in key order, without sorting.
        # Rows live in that key's b-tree (SQLite WITHOUT ROWID), so a scan reads no other page.
        sa.PrimaryKeyConstraint(
            "kind", "day", "bucket", "provider", "model", "stream", name=op.f("pk_usage_rollup_latencies")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_rollup_day_latencies",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("day", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "day", "bucket", name=op.f("pk_usage_rollup_day_latencies")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("usage_rollup_day_latencies")
    op.drop_table("usage_rollup_latencies")
    op.drop_table("usage_rollups")
    op.drop_table("usage_rollup_days")
    op.create_index("ix_responses_timestamp", "responses", ["timestamp"])
    op.drop_index("ix_responses_timestamp_usage", table_name="responses")
    op.drop_index("ix_responses_outcome", table_name="responses")
    op.drop_index("ix_requests_stream_timestamp", table_name="requests")
