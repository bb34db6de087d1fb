"""history API: covering indexes for lists and statistics, daily usage rollups

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
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
    op.create_index("ix_requests_id_dimensions", "requests", ["id", "provider", "model", "stream"])
    # Leads with timestamp, so it replaces the single-column index.
    op.create_index(
        "ix_responses_timestamp_usage", "responses",
        ["timestamp", "status", "duration_ms", "ttft_ms", "prompt_tokens", "completion_tokens",
         "total_tokens", "usage_estimated", "request_id"],
    )
    op.drop_index("ix_responses_timestamp", table_name="responses")
    op.create_index(
        "ix_responses_request_id_outcome", "responses",
        ["request_id", "status", "finish_reason", "duration_ms"],
    )

    op.create_table(
        "usage_rollup_days",
        sa.Column("day", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("responses", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_usage_rollup_days")),
    )
    op.create_table(
        "usage_rollups",
        *_dimensions(),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in (
            "requests", "errors", "incomplete", "prompt_tokens", "completion_tokens",
            "total_tokens", "usage_estimated",
        )),
        sa.PrimaryKeyConstraint("day", "provider", "model", "stream", name=op.f("pk_usage_rollups")),
    )
    op.create_table(
        "usage_rollup_latencies",
        *_dimensions(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "provider", "model", "stream", "kind", "bucket", name=op.f("pk_usage_rollup_latencies")
        ),
    )


def downgrade() -> None:
    op.drop_table("usage_rollup_latencies")
    op.drop_table("usage_rollups")
    op.drop_table("usage_rollup_days")
    op.drop_index("ix_responses_request_id_outcome", table_name="responses")
    op.create_index("ix_responses_timestamp", "responses", ["timestamp"])
    op.drop_index("ix_responses_timestamp_usage", table_name="responses")
    op.drop_index("ix_requests_id_dimensions", table_name="requests")
