"""core schema: sessions, requests, responses, settings

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("chat_id", sa.String(128)),
        sa.Column("parent_id", sa.String(128)),
        sa.Column("first_user_message", sa.Text()),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_accessed", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    for column in ("created_at", "expires_at"):
        op.create_index(op.f(f"ix_sessions_{column}"), "sessions", [column])

    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )

    op.create_table(
        "requests",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("openai_request", sa.Text()),
        sa.Column("provider_request", sa.Text()),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"],
            name=op.f("fk_requests_session_id_sessions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
        sa.UniqueConstraint("request_id", name=op.f("uq_requests_request_id")),
    )
    for column in ("session_id", "timestamp"):
        op.create_index(op.f(f"ix_requests_{column}"), "requests", [column])
    op.create_index("ix_requests_model_timestamp", "requests", ["model", "timestamp"])
    op.create_index("ix_requests_provider_timestamp", "requests", ["provider", "timestamp"])

    op.create_table(
        "responses",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("request_id", BigId, nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("response_id", sa.String(36), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("provider_response", sa.Text()),
        sa.Column("openai_response", sa.Text()),
        sa.Column("parent_id", sa.String(128)),
        sa.Column("prompt_tokens", sa.Integer()),
        sa.Column("completion_tokens", sa.Integer()),
        sa.Column("total_tokens", sa.Integer()),
        sa.Column("usage_estimated", sa.Boolean(), nullable=False),
        sa.Column("finish_reason", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("duration_ms", sa.Integer()),
        sa.Column("ttft_ms", sa.Integer()),
        sa.Column("client_disconnected", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'error', 'incomplete')", name=op.f("ck_responses_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"],
            name=op.f("fk_responses_request_id_requests"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"],
            name=op.f("fk_responses_session_id_sessions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses")),
        sa.UniqueConstraint("request_id", name=op.f("uq_responses_request_id")),
        sa.UniqueConstraint("response_id", name=op.f("uq_responses_response_id")),
    )
    for column in ("session_id", "timestamp"):
        op.create_index(op.f(f"ix_responses_{column}"), "responses", [column])


def downgrade() -> None:
    op.drop_table("responses")
    op.drop_table("requests")
    op.drop_table("settings")
    op.drop_table("sessions")
