"""gateway keys: teams' keys with budgets and rate limits, their counters, and who made each call

- ``gateway_keys``: a key's name, prefix and SHA-256 (never the key), its budget and period,
  rpm/tpm, model patterns, default tags, and the rotation's grace (``previous_hash`` until
  ``previous_valid_until``) and revocation.
- ``gateway_key_counters``: one row per key, changed by single atomic statements: spend in the
  budget period (and the estimated cost of calls in flight), calls and tokens this UTC minute.
- ``requests.key_id`` and ``requests.tags`` (a JSON object), ``responses.cost_usd``.

Instant on a big table: the new columns are NULL, and the new index is partial (rows with a key).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HAS_KEY = sa.text("key_id IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "gateway_keys",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=True),
        sa.Column("previous_valid_until", sa.BigInteger(), nullable=True),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        sa.Column("budget_period", sa.String(8), nullable=False),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.Integer(), nullable=True),
        sa.Column("models", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("rotated_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_keys"),
        sa.UniqueConstraint("name", name="uq_gateway_keys_name"),
        sa.UniqueConstraint("key_hash", name="uq_gateway_keys_key_hash"),
    )
    op.create_index("ix_gateway_keys_previous_hash", "gateway_keys", ["previous_hash"])
    op.create_table(
        "gateway_key_counters",
        sa.Column("key_id", BigId, autoincrement=False, nullable=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("reserved_usd", sa.Float(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("minute_start", sa.BigInteger(), nullable=False),
        sa.Column("minute_requests", sa.Integer(), nullable=False),
        sa.Column("minute_tokens", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["gateway_keys.id"], name="fk_gateway_key_counters_key_id_gateway_keys", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key_id", name="pk_gateway_key_counters"),
    )
    op.add_column("requests", sa.Column("key_id", sa.BigInteger(), nullable=True))
    op.add_column("requests", sa.Column("tags", sa.Text(), nullable=True))
    op.add_column("responses", sa.Column("cost_usd", sa.Float(), nullable=True))
    op.create_index(
        "ix_requests_key_id_timestamp", "requests", ["key_id", "timestamp"],
        sqlite_where=HAS_KEY, postgresql_where=HAS_KEY,
    )


def downgrade() -> None:
    op.drop_index("ix_requests_key_id_timestamp", table_name="requests")
    with op.batch_alter_table("responses") as batch_op:
        batch_op.drop_column("cost_usd")
    with op.batch_alter_table("requests") as batch_op:
        batch_op.drop_column("tags")
        batch_op.drop_column("key_id")
    op.drop_table("gateway_key_counters")
    op.drop_index("ix_gateway_keys_previous_hash", table_name="gateway_keys")
    op.drop_table("gateway_keys")
