"""hot path: sessions.expires_at no longer indexed

Every chat call slides its session's expiry, and with an index that moved an
index entry per call: about 7% of the audit hot path's SQLite instructions and
one or two more pages per commit. Only expiry cleanup (DELETE /v1/sessions,
provider-cli prune) filters on it, and a scan of the sessions table serves it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_sessions_expires_at", table_name="sessions")


def downgrade() -> None:
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
