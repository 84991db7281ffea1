"""The audit table (docs/security.md, Audit): one row per audited API action (cancel,
rerun, Run, prune), keyed by the id the API made for it so a retry stores it once, listed
newest first by (time, id), filtered by user, namespace or action.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("time", TIME, nullable=False),
        sa.Column("user", sa.String, nullable=False),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("namespace", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("result", sa.String, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("created", sa.String),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_log_time", "audit_log", ["time", "id"])
    op.create_index("ix_audit_log_user", "audit_log", ["user", "time", "id"])
    op.create_index("ix_audit_log_namespace", "audit_log", ["namespace", "time", "id"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "time", "id"])


def downgrade() -> None:
    op.drop_table("audit_log")
