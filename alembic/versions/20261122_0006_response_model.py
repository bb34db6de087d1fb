"""history filters: responses carry their request's model, and the outcome index leads with it

A page of requests filtered by model and by outcome (``?model=X&status=error``)
had to join every request of that model to the set of responses with that
outcome to count its total: ~15 ms on a million rows. With the model copied onto
the response (written by the audit hot path with the rest of the row), the total
is one range of the outcome index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("responses", sa.Column("model", sa.String(255), nullable=True))
    op.execute(
        "UPDATE responses SET model = (SELECT requests.model FROM requests WHERE requests.id = responses.request_id)"
    )
    op.drop_index("ix_responses_outcome", table_name="responses")
    op.create_index(
        "ix_responses_outcome", "responses", ["status", "model", "request_id", "finish_reason", "duration_ms"]
    )


def downgrade() -> None:
    op.drop_index("ix_responses_outcome", table_name="responses")
    op.create_index(
        "ix_responses_outcome", "responses", ["status", "request_id", "finish_reason", "duration_ms"]
    )
    with op.batch_alter_table("responses") as batch_op:
        batch_op.drop_column("model")
