"""audit trail survives its database: workers, interrupted calls, repaired rows

- ``audit_workers``: each gateway process and when it was last seen; the sweep gives
  the open calls of a dead one their ending.
- ``requests.worker_id``: the process that handled the call.
- ``requests.repaired``, ``responses.repaired``: what was changed so the database would
  take the row (NUL characters escaped, ...).
- ``responses.status`` may be ``interrupted``.

All instant on a big table: the new columns are NULL. The CHECK constraint is
widened without copying the table: on SQLite by rewriting its definition in the
schema (a widened CHECK holds for every existing row, which SQLite documents as
safe), on PostgreSQL with NOT VALID and a VALIDATE that does not block writes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OLD_CHECK = "status IN ('ok', 'error', 'incomplete')"
NEW_CHECK = "status IN ('ok', 'error', 'incomplete', 'interrupted')"
CHECK_NAME = "ck_responses_status_known"


def upgrade() -> None:
    op.create_table(
        "audit_workers",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.BigInteger(), nullable=False),
        sa.Column("oldest_open_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_workers"),
    )
    op.add_column("requests", sa.Column("worker_id", sa.String(40), nullable=True))
    op.add_column("requests", sa.Column("repaired", sa.Text(), nullable=True))
    op.add_column("responses", sa.Column("repaired", sa.Text(), nullable=True))
    _replace_check(OLD_CHECK, NEW_CHECK)


def downgrade() -> None:
    # The older schema has no 'interrupted': such calls become incomplete, saying why.
    op.execute(
        "UPDATE responses SET status = 'incomplete', "
        "error = COALESCE(error, 'interrupted: the process handling the call stopped') "
        "WHERE status = 'interrupted'"
    )
    _replace_check(NEW_CHECK, OLD_CHECK)
    with op.batch_alter_table("responses") as batch_op:
        batch_op.drop_column("repaired")
    with op.batch_alter_table("requests") as batch_op:
        batch_op.drop_column("repaired")
        batch_op.drop_column("worker_id")
    op.drop_table("audit_workers")


def _replace_check(old: str, new: str) -> None:
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        sql = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'responses'"
        ).scalar_one()
        if old not in sql:
            raise RuntimeError(f"responses has no CHECK ({old}) to replace")
        version = connection.exec_driver_sql("PRAGMA schema_version").scalar_one()
        connection.exec_driver_sql("PRAGMA writable_schema = ON")
        connection.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'responses'",
            (sql.replace(old, new),),
        )
        # Other connections reload the schema when its version moves.
        connection.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
        connection.exec_driver_sql("PRAGMA writable_schema = OFF")
        return
    op.drop_constraint(op.f(CHECK_NAME), "responses", type_="check")
    op.execute(f"ALTER TABLE responses ADD CONSTRAINT {CHECK_NAME} CHECK ({new}) NOT VALID")
    op.execute(f"ALTER TABLE responses VALIDATE CONSTRAINT {CHECK_NAME}")
