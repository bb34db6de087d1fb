"""providers in the database, upstream attempts, and the provider that answered

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("base_url", sa.String(2048), nullable=False),
        sa.Column("api_key_env", sa.String(128)),
        sa.Column("default_model", sa.String(255)),
        sa.Column("timeout_ms", sa.Integer()),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("options", sa.Text()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_providers")),
    )

    op.create_table(
        "attempts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("request_id", BigId, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"],
            name=op.f("fk_attempts_request_id_requests"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
        sa.UniqueConstraint("request_id", "attempt", name=op.f("uq_attempts_request_id_attempt")),
    )

    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("provider", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("provider")
    op.drop_table("attempts")
    op.drop_table("providers")
